// The Azure Blob store against Azurite (the Azure Storage emulator, blob service only), which
// checks Shared Key signatures and account SAS tokens exactly as the service does: the
// conformance suite, retries through a fault-injecting proxy, and the errors users see for a
// wrong key, a missing container or a dead endpoint.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/azure_auth.h"
#include "blockstore/azure_store.h"
#include "blockstore/block_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/blockstore/conformance.h"
#include "tests/testing/emulators.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

using ::nighfs::testing::FaultProxy;
using ::nighfs::testing::TempDir;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The emulator's well-known development account, published by Microsoft; not a secret.
constexpr const char* kAccount = testing::kAzuriteAccount;
constexpr const char* kKey = testing::kAzuriteKey;
// Same length and alphabet as kKey, different bytes.
constexpr char kWrongKey[] =
    "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
constexpr char kContainer[] = "nighfs";

// Why the emulator tests cannot run, or "" when they can. Outside CI a missing emulator skips
// them; in CI it fails them.
std::string MissingEmulator() {
  return testing::AzuriteBinary().empty() ? "azurite-blob is not installed (run scripts/setup.sh)"
                                          : "";
}

// One Azurite for the whole binary, started on first use and stopped by the environment below.
class SharedAzurite {
 public:
  static SharedAzurite* Get() {
    static SharedAzurite* instance = new SharedAzurite();
    return instance;
  }

  // Starts the emulator and creates kContainer once; the error is kept for later callers.
  absl::Status EnsureStarted() {
    if (!started_) {
      started_ = true;
      status_ = Start();
    }
    return status_;
  }

  std::string endpoint() const { return server_->endpoint(); }
  std::string origin() const { return server_->origin(); }

  void Stop() {
    server_.reset();
    dir_.reset();
  }

 private:
  absl::Status Start() {
    dir_ = std::make_unique<TempDir>();
    absl::StatusOr<std::unique_ptr<testing::Azurite>> server =
        testing::Azurite::Start(dir_->path());
    if (!server.ok()) return server.status();
    server_ = std::move(*server);
    return server_->CreateContainer(kContainer);
  }

  bool started_ = false;
  absl::Status status_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<testing::Azurite> server_;  // stopped before dir_ is removed
};

class AzuriteEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { SharedAzurite::Get()->Stop(); }
};
[[maybe_unused]] ::testing::Environment* const kAzuriteEnv =
    ::testing::AddGlobalTestEnvironment(new AzuriteEnvironment);

// Fast retries so failure-path tests take milliseconds, not the production minute.
AzureStoreOptions FastRetries() {
  AzureStoreOptions o;
  o.retry.max_attempts = 4;
  o.retry.initial_backoff = absl::Milliseconds(5);
  o.retry.max_backoff = absl::Milliseconds(50);
  o.retry.deadline = absl::Seconds(20);
  return o;
}

StoreUrl AzureUrl(const std::string& endpoint, const std::string& path = kContainer) {
  StoreUrl url;
  url.scheme = "azure";
  url.authority = kAccount;
  url.path = path;
  url.params["endpoint"] = endpoint;
  return url;
}

StoreCredentials KeyCredentials(const std::string& key = kKey) {
  StoreCredentials c;
  c.azure_account_key = key;
  return c;
}

std::unique_ptr<BlockStore> MustOpen(const StoreUrl& url, const StoreCredentials& creds,
                                     const AzureStoreOptions& options = AzureStoreOptions()) {
  auto store = NewAzureStore(url, creds, options);
  EXPECT_OK(store);
  return store.ok() ? std::move(*store) : nullptr;
}

std::vector<conformance::StoreFactory> Factories() {
  // Outside CI, with no emulator, the suite is not instantiated (EmulatorPresent says why).
  if (!MissingEmulator().empty() && !testing::InCi()) return {};
  auto make = [](StoreCredentials creds) {
    return [creds]() -> std::unique_ptr<BlockStore> {
      if (absl::Status s = SharedAzurite::Get()->EnsureStarted(); !s.ok()) {
        ADD_FAILURE() << s;
        return nullptr;
      }
      // The URL goes through the public parser, as a user's would.
      auto url = ParseStoreUrl(absl::StrCat("azure://", kAccount, "/", kContainer,
                                            "/conformance-root?endpoint=",
                                            SharedAzurite::Get()->endpoint()));
      EXPECT_OK(url);
      if (!url.ok()) return nullptr;
      return MustOpen(*url, creds);
    };
  };
  // Only Shared Key runs the whole suite: it is what proves the signer against Azurite.
  // SAS differs only in how requests are authorized; AzureStoreTest.AccountSasToken covers
  // every operation with it without repeating the slow emulator-bound cases.
  return {{"azurite_shared_key", make(KeyCredentials()), /*run_large=*/true}};
}

using conformance::BlockStoreConformance;
INSTANTIATE_TEST_SUITE_P(Azure, BlockStoreConformance,
                         ::testing::ValuesIn(Factories()), conformance::StoreFactoryName);

class AzureStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string missing = MissingEmulator();
    if (!missing.empty()) {
      if (!testing::InCi()) GTEST_SKIP() << missing;
      FAIL() << missing << " (CI=true: the emulator tests must run)";
    }
    ASSERT_OK(SharedAzurite::Get()->EnsureStarted());
    prefix_ = conformance::UniqueTestPrefix();
  }

  // A store reaching Azurite through a FaultProxy.
  void StartProxy() {
    auto proxy = FaultProxy::Start(SharedAzurite::Get()->origin());
    ASSERT_OK(proxy);
    proxy_ = std::move(*proxy);
    store_ = MustOpen(AzureUrl(proxy_->url() + "/" + kAccount), KeyCredentials(), FastRetries());
    ASSERT_NE(store_, nullptr);
  }

  std::string prefix_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<BlockStore> store_;
};

TEST(AzureEmulator, EmulatorPresent) {
  const std::string missing = MissingEmulator();
  if (!missing.empty() && !testing::InCi()) GTEST_SKIP() << missing;
  EXPECT_EQ(missing, "");
}

TEST_F(AzureStoreTest, ServiceUnavailableOnceIsRetried) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  const std::string key = prefix_ + "retried";
  proxy_->InjectNext(FaultProxy::Fault::kServiceUnavailable);
  ASSERT_OK(store_->Put(key, "payload"));
  EXPECT_EQ(proxy_->requests_seen(), 2);

  proxy_->ResetCounters();
  proxy_->InjectNext(FaultProxy::Fault::kServiceUnavailable);
  auto got = store_->Get(key);
  ASSERT_OK(got);
  EXPECT_EQ(*got, "payload");
  EXPECT_EQ(proxy_->requests_seen(), 2);
}

TEST_F(AzureStoreTest, ThrottlingIsRetried) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  const std::string key = prefix_ + "throttled";
  ASSERT_OK(store_->Put(key, "x"));
  proxy_->ResetCounters();
  proxy_->InjectNext(FaultProxy::Fault::kTooManyRequests, 2);
  auto head = store_->Head(key);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, 1u);
  EXPECT_EQ(proxy_->requests_seen(), 3);
}

TEST_F(AzureStoreTest, DroppedConnectionIsRetried) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  const std::string key = prefix_ + "dropped";
  proxy_->InjectNext(FaultProxy::Fault::kDropConnection);
  ASSERT_OK(store_->Put(key, "survives"));
  EXPECT_GE(proxy_->requests_seen(), 2);

  proxy_->ResetCounters();
  proxy_->InjectNext(FaultProxy::Fault::kDropConnection);
  auto page = store_->List(prefix_, "", 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, key);
  EXPECT_GE(proxy_->requests_seen(), 2);
}

TEST_F(AzureStoreTest, EveryOperationRetries) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  // Before each operation the next request fails, in turn with each kind of transient fault.
  const FaultProxy::Fault kFaults[] = {FaultProxy::Fault::kServiceUnavailable,
                                       FaultProxy::Fault::kDropConnection,
                                       FaultProxy::Fault::kTooManyRequests};
  int n = 0;
  auto fail_next = [&] {
    proxy_->ResetCounters();
    proxy_->InjectNext(kFaults[n++ % 3]);
  };
  const std::string key = prefix_ + "flaky";
  const std::string data = conformance::TestData(300 * 1024, 7);
  fail_next();
  ASSERT_OK(store_->Put(key, data));
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  auto head = store_->Head(key);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, data.size());
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  auto got = store_->Get(key, 1000, 5000);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(1000, 5000));
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  got = store_->Get(key);
  ASSERT_OK(got);
  EXPECT_TRUE(*got == data);
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  auto page = store_->List(prefix_, "", 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].size, data.size());
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  ASSERT_OK(store_->Delete(key));
  EXPECT_GE(proxy_->requests_seen(), 2);
  fail_next();
  ASSERT_OK(store_->Check());
  EXPECT_GE(proxy_->requests_seen(), 2);
  EXPECT_THAT(store_->Get(key), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(proxy_->faults_pending(), 0);
}

TEST_F(AzureStoreTest, PersistentFailureGivesUpWithTheLastError) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  proxy_->InjectNext(FaultProxy::Fault::kServiceUnavailable, 100);
  absl::Status s = store_->Put(prefix_ + "never", "x");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("503"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("after 4 attempts"));
  EXPECT_EQ(proxy_->requests_seen(), 4);  // FastRetries().retry.max_attempts
  proxy_->ClearFaults();
}

TEST_F(AzureStoreTest, ForbiddenIsNotRetried) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  proxy_->InjectNext(FaultProxy::Fault::kForbidden);
  absl::Status s = store_->Put(prefix_ + "denied", "x");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), HasSubstr("403"));
  EXPECT_EQ(proxy_->requests_seen(), 1);
}

TEST_F(AzureStoreTest, WrongKeyIsRejectedByAzurite) {
  // Azurite verifies Shared Key signatures: the right key passing (the conformance suite) and
  // a wrong one failing is what proves the signer computes what the service computes.
  auto store = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint()), KeyCredentials(kWrongKey),
                        FastRetries());
  ASSERT_NE(store, nullptr);
  absl::Status s = store->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  // Azure says AuthenticationFailed; Azurite 3.x says AuthorizationFailure.
  EXPECT_THAT(std::string(s.message()),
              AnyOf(HasSubstr("403 AuthenticationFailed"), HasSubstr("403 AuthorizationFailure")));
  EXPECT_THAT(std::string(s.message()), HasSubstr("credentials"));
  conformance::ExpectEveryOpFails(*store, absl::StatusCode::kPermissionDenied,
                                  prefix_ + "nope", {kWrongKey, kKey});
}

TEST_F(AzureStoreTest, MissingContainerIsAClearError) {
  auto store = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint(), "no-such-container"),
                        KeyCredentials(), FastRetries());
  ASSERT_NE(store, nullptr);
  absl::Status s = store->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(s.message()), HasSubstr("no-such-container"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("ContainerNotFound"));
  // Deleting from a container that does not exist is not "already gone".
  EXPECT_THAT(store->Delete("blk/00/0000000000000000"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Put("blk/00/0000000000000000", "x"), StatusIs(absl::StatusCode::kNotFound));
}

TEST(AzureStoreConfigTest, UnreachableEndpointIsUnavailable) {
  // A port nothing listens on: connection refused on every attempt.
  const int port = testing::FreeLoopbackPort();
  auto store = MustOpen(AzureUrl(absl::StrCat("http://127.0.0.1:", port, "/", kAccount)),
                        KeyCredentials(), FastRetries());
  ASSERT_NE(store, nullptr);
  absl::Status s = store->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("cannot reach"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("127.0.0.1:", port)));
  conformance::ExpectEveryOpFails(*store, absl::StatusCode::kUnavailable, "k", {kKey});
}

TEST_F(AzureStoreTest, AccountSasToken) {
  auto signer = azure::SharedKeySigner::Create(kAccount, kKey);
  ASSERT_OK(signer);
  azure::AccountSasOptions o;
  o.expiry = absl::Now() + absl::Hours(1);
  StoreCredentials creds;
  creds.azure_sas_token = "?" + azure::MakeAccountSasToken(*signer, o);  // as users paste it
  auto store = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint()), creds, FastRetries());
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Check());
  conformance::ExpectRoundTrip(*store, prefix_ + "sas", 1000);

  // Read-only SAS: reads work, writes are refused without retries.
  o.permissions = "rl";
  creds.azure_sas_token = azure::MakeAccountSasToken(*signer, o);
  auto read_only = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint()), creds, FastRetries());
  ASSERT_NE(read_only, nullptr);
  ASSERT_OK(read_only->Check());
  absl::Status s = read_only->Put(prefix_ + "ro", "x");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sig=")));

  // A token signed with the wrong key.
  auto wrong = azure::SharedKeySigner::Create(kAccount, kWrongKey);
  ASSERT_OK(wrong);
  o.permissions = "rwdlac";
  creds.azure_sas_token = azure::MakeAccountSasToken(*wrong, o);
  auto forged = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint()), creds, FastRetries());
  ASSERT_NE(forged, nullptr);
  conformance::ExpectEveryOpFails(*forged, absl::StatusCode::kPermissionDenied, prefix_ + "f",
                                  {creds.azure_sas_token});
}

TEST_F(AzureStoreTest, PrefixIsolatesStores) {
  auto root = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint()), KeyCredentials());
  auto vol = MustOpen(AzureUrl(SharedAzurite::Get()->endpoint(),
                               absl::StrCat(kContainer, "/", prefix_, "vol1")),
                      KeyCredentials());
  ASSERT_NE(root, nullptr);
  ASSERT_NE(vol, nullptr);
  ASSERT_OK(vol->Put("blk/01/0000000000000001", "one"));
  // The volume sees its own key; the container root sees it under the prefix.
  auto page = vol->List("", "", 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "blk/01/0000000000000001");
  auto got = root->Get(prefix_ + "vol1/blk/01/0000000000000001");
  ASSERT_OK(got);
  EXPECT_EQ(*got, "one");
  ASSERT_OK(root->Put(prefix_ + "vol10/blk/x", "neighbour"));  // shares the text prefix
  page = vol->List("", "", 10);
  ASSERT_OK(page);
  EXPECT_EQ(page->objects.size(), 1u);
}

TEST(AzureStoreConfigTest, DescribeShowsTheUrlWithoutSecrets) {
  const std::string endpoint = "http://127.0.0.1:10000/devstoreaccount1";
  auto store = MustOpen(AzureUrl(endpoint, "nighfs/vol"), KeyCredentials());
  ASSERT_NE(store, nullptr);
  const std::string d = store->Describe();
  EXPECT_EQ(d, absl::StrCat("azure://devstoreaccount1/nighfs/vol?endpoint=", endpoint));
  EXPECT_THAT(d, Not(HasSubstr(kKey)));
  auto parsed = ParseStoreUrl(d);
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->Param("endpoint"), endpoint);
}

// Configuration errors need no emulator.
TEST(AzureStoreConfigTest, RejectsBadConfiguration) {
  const StoreUrl good = AzureUrl("http://127.0.0.1:1/devstoreaccount1");
  EXPECT_THAT(NewAzureStore(good, StoreCredentials()),
              StatusIs(absl::StatusCode::kInvalidArgument));  // no credentials
  auto bad_key = NewAzureStore(good, KeyCredentials("not base64!"));
  EXPECT_THAT(bad_key, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad_key.status().message()), Not(HasSubstr("not base64!")));
  StoreCredentials no_sig;
  no_sig.azure_sas_token = "sv=2021-08-06&ss=b";
  EXPECT_THAT(NewAzureStore(good, no_sig), StatusIs(absl::StatusCode::kInvalidArgument));

  StoreUrl url = good;
  url.params["region"] = "x";
  EXPECT_THAT(NewAzureStore(url, KeyCredentials()), StatusIs(absl::StatusCode::kInvalidArgument));
  url = good;
  url.params["endpoint"] = "ftp://host/";
  EXPECT_THAT(NewAzureStore(url, KeyCredentials()), StatusIs(absl::StatusCode::kInvalidArgument));
  url = good;
  url.path = "Bad_Container";
  EXPECT_THAT(NewAzureStore(url, KeyCredentials()), StatusIs(absl::StatusCode::kInvalidArgument));
  url = good;
  url.authority = "UPPER";
  EXPECT_THAT(NewAzureStore(url, KeyCredentials()), StatusIs(absl::StatusCode::kInvalidArgument));

  // The default endpoint is the public service; the URL needs no endpoint parameter.
  url = good;
  url.params.clear();
  auto store = NewAzureStore(url, KeyCredentials());
  ASSERT_OK(store);
  EXPECT_EQ((*store)->Describe(), "azure://devstoreaccount1/nighfs");
  // Keys are validated before any request is made (the endpoint here is unreachable).
  EXPECT_THAT((*store)->Put("../escape", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*store)->List("sp ace", "", 10), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace nighfs::blockstore
