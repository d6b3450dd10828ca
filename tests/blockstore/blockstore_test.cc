// Unit tests of the block-store core (URLs, credentials, factory, folder and memory stores,
// the fault injector) and the conformance suite run against the in-process stores.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "common/errno_status.h"
#include "common/retry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/blockstore/conformance.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"
#include "tests/testing/scoped_env.h"

namespace nighfs::blockstore {
namespace {

namespace fs = std::filesystem;
using ::nighfs::testing::ScopedEnv;
using conformance::BlockStoreConformance;
using conformance::StoreFactory;
using conformance::StoreFactoryName;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Op = FaultInjectingStore::Op;

// A store that owns the temporary folder it lives in, so the folder outlives the store.
class TempFolderStore : public BlockStore {
 public:
  TempFolderStore() {
    // A root two levels below the temp dir: Check() must create it (mkdir -p).
    url_ = absl::StrCat("file://", dir_.path(), "/nested/blocks");
    absl::StatusOr<std::unique_ptr<BlockStore>> store = OpenBlockStore(url_, {});
    if (store.ok()) store_ = *std::move(store);
  }
  bool ok() { return store_ != nullptr && store_->Check().ok(); }

  absl::StatusOr<std::string> Get(std::string_view k, uint64_t o, uint64_t l) override {
    return store_->Get(k, o, l);
  }
  absl::Status Put(std::string_view k, std::string_view d) override { return store_->Put(k, d); }
  absl::Status Delete(std::string_view k) override { return store_->Delete(k); }
  absl::StatusOr<ObjectInfo> Head(std::string_view k) override { return store_->Head(k); }
  absl::StatusOr<ListPage> List(std::string_view p, std::string_view t, int m) override {
    return store_->List(p, t, m);
  }
  absl::Status Check() override { return store_->Check(); }
  std::string Describe() const override { return store_->Describe(); }

 private:
  testing::TempDir dir_;
  std::string url_;
  std::unique_ptr<BlockStore> store_;
};

std::unique_ptr<BlockStore> MakeFolderStore() {
  auto store = std::make_unique<TempFolderStore>();
  if (!store->ok()) {
    ADD_FAILURE() << "cannot set up a folder store";
    return nullptr;
  }
  return store;
}

std::unique_ptr<BlockStore> MakeMemUrlStore() {
  static std::atomic<int> n{0};
  absl::StatusOr<std::unique_ptr<BlockStore>> store =
      OpenBlockStore(absl::StrCat("mem://conformance-", n++), {});
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

INSTANTIATE_TEST_SUITE_P(
    Core, BlockStoreConformance,
    ::testing::Values(StoreFactory{"local_folder", MakeFolderStore},
                      StoreFactory{"memory", [] { return NewMemoryStore(); }},
                      StoreFactory{"mem_url", MakeMemUrlStore},
                      // The fault injector with no faults programmed must be invisible.
                      StoreFactory{"fault_wrapped_memory",
                                   [] {
                                     return std::unique_ptr<BlockStore>(
                                         new FaultInjectingStore(NewMemoryStore()));
                                   },
                                   /*run_large=*/false}),
    StoreFactoryName);

// ---------------------------------------------------------------------------------------------
// ParseStoreUrl

StoreUrl MustParse(const std::string& url) {
  absl::StatusOr<StoreUrl> parsed = ParseStoreUrl(url);
  EXPECT_OK(parsed) << url;
  return parsed.ok() ? *parsed : StoreUrl{};
}

void ExpectSameUrl(const StoreUrl& a, const StoreUrl& b) {
  EXPECT_EQ(a.scheme, b.scheme);
  EXPECT_EQ(a.authority, b.authority);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.params, b.params);
}

TEST(ParseStoreUrlTest, FileUrls) {
  StoreUrl u = MustParse("file:///srv/blocks");
  EXPECT_EQ(u.scheme, "file");
  EXPECT_EQ(u.authority, "");
  EXPECT_EQ(u.path, "/srv/blocks");
  EXPECT_TRUE(u.params.empty());
  EXPECT_EQ(u.ToString(), "file:///srv/blocks");

  EXPECT_EQ(MustParse("file:///srv//blocks/").path, "/srv/blocks");
  EXPECT_EQ(MustParse("file:///").path, "/");
  u = MustParse("file:///data/my%20blocks");
  EXPECT_EQ(u.path, "/data/my blocks");
  EXPECT_EQ(u.ToString(), "file:///data/my%20blocks");
  EXPECT_EQ(MustParse("  FILE:///srv/blocks\n").scheme, "file");
}

TEST(ParseStoreUrlTest, CloudUrls) {
  StoreUrl u = MustParse("s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1"
                         "&style=path");
  EXPECT_EQ(u.scheme, "s3");
  EXPECT_EQ(u.authority, "bucket");
  EXPECT_EQ(u.path, "prefix");
  EXPECT_EQ(u.Param("endpoint"), "http://127.0.0.1:9000");
  EXPECT_EQ(u.Param("region"), "us-east-1");
  EXPECT_EQ(u.Param("style"), "path");
  EXPECT_EQ(u.Param("missing"), "");
  EXPECT_EQ(u.Param("missing", "fallback"), "fallback");

  EXPECT_EQ(MustParse("s3://bucket").path, "");
  EXPECT_EQ(MustParse("s3://bucket/").path, "");
  EXPECT_EQ(MustParse("s3://bucket//a/b//").path, "a/b");
  EXPECT_EQ(MustParse("S3://bucket/a").scheme, "s3");

  u = MustParse("gs://my-bucket/vol1/");
  EXPECT_EQ(u.scheme, "gs");
  EXPECT_EQ(u.authority, "my-bucket");
  EXPECT_EQ(u.path, "vol1");

  u = MustParse("oci://tenancyns/bucket/pre/fix?region=us-ashburn-1");
  EXPECT_EQ(u.authority, "tenancyns");
  EXPECT_EQ(u.path, "bucket/pre/fix");
  EXPECT_EQ(u.Param("region"), "us-ashburn-1");

  u = MustParse("azure://account/container/prefix?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Fdev");
  EXPECT_EQ(u.authority, "account");
  EXPECT_EQ(u.path, "container/prefix");
  EXPECT_EQ(u.Param("endpoint"), "http://127.0.0.1:10000/dev");
  EXPECT_EQ(MustParse("azure://account/container").path, "container");

  u = MustParse("mem://scratch");
  EXPECT_EQ(u.authority, "scratch");
  EXPECT_EQ(u.path, "");
}

TEST(ParseStoreUrlTest, QueryDecoding) {
  StoreUrl u = MustParse("s3://b?a=1+2&b=x%26y%3Dz&c&d=&&e=%41%7e");
  EXPECT_EQ(u.Param("a"), "1+2");  // '+' is not a space in store URLs
  EXPECT_EQ(u.Param("b"), "x&y=z");
  EXPECT_EQ(u.Param("c", "unset"), "");
  EXPECT_EQ(u.Param("d", "unset"), "");
  EXPECT_EQ(u.Param("e"), "A~");
  EXPECT_EQ(u.params.size(), 5u);
}

TEST(ParseStoreUrlTest, ToStringRoundTrips) {
  for (const char* url : {"file:///srv/blocks", "file:///a%20b/c%25d", "s3://b",
                          "s3://b/p/q?endpoint=http://127.0.0.1:9000&region=us-east-1",
                          "gs://b/p", "oci://ns/b/p?region=r", "azure://a/c/p?x=1%262%3D3+4",
                          "mem://x"}) {
    const StoreUrl u = MustParse(url);
    const std::string s = u.ToString();
    SCOPED_TRACE(s);
    ExpectSameUrl(MustParse(s), u);
  }
  EXPECT_EQ(MustParse("s3://b/p?region=r&endpoint=http://h:1").ToString(),
            "s3://b/p?endpoint=http://h:1&region=r");
}

struct BadUrl {
  std::string url;
  std::string message_part;
};

TEST(ParseStoreUrlTest, RejectsBadUrls) {
  const BadUrl cases[] = {
      {"", "empty"},
      {"/srv/blocks", "scheme://"},
      {"srv/blocks", "scheme://"},
      {"file:relative", "scheme://"},
      {"file://srv/blocks", "three slashes"},
      {"file://localhost/srv", "no host"},
      {"file://", "missing the folder path"},
      {"file:///srv/../etc", "'..'"},
      {"ftp://host/x", "supported: file, s3, gs, oci, azure, mem"},
      {"s3://", "missing bucket"},
      {"s3:///prefix", "missing bucket"},
      {"s3://bucket:9000/p", "may contain only"},
      {"s3://bu%20cket", "may contain only"},
      {"s3://b/../x", "bad prefix"},
      {"s3://b/pre fix", "space"},
      {"s3://b/pre%20fix", "bad prefix"},
      {"s3://b#frag", "fragment"},
      {"s3://b?x=%zz", "percent-escape"},
      {"s3://b?x=%4", "percent-escape"},
      {"s3://b?x=%00", "percent-escape"},
      {"s3://b?a=1&a=2", "given twice"},
      {"s3://b?=1", "empty name"},
      {"azure://account", "missing container"},
      {"azure://account/", "missing container"},
      {"oci://namespace", "missing bucket"},
      {"mem://", "missing name"},
      {"mem://x/y", "only a name"},
  };
  for (const BadUrl& c : cases) {
    absl::StatusOr<StoreUrl> parsed = ParseStoreUrl(c.url);
    ASSERT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument)) << c.url;
    EXPECT_THAT(std::string(parsed.status().message()), HasSubstr(c.message_part)) << c.url;
    if (!c.url.empty()) {
      EXPECT_THAT(std::string(parsed.status().message()), StartsWith("store URL '")) << c.url;
    }
  }
}

TEST(ParseStoreUrlTest, RejectsEmbeddedSecretsWithoutEchoingThem) {
  const std::string secret = "wJalrXUtnFEMIK7MDENG";
  for (const std::string& url :
       {absl::StrCat("s3://AKIDEXAMPLE:", secret, "@bucket/p"),
        absl::StrCat("s3://", secret, "@bucket"),
        absl::StrCat("s3://bucket?secret=", secret),
        absl::StrCat("s3://bucket?region=r&aws_secret_access_key=", secret),
        absl::StrCat("s3://bucket?AWSAccessKeyId=", secret),
        absl::StrCat("s3://bucket?X-Amz-Signature=", secret),
        absl::StrCat("s3://bucket?X-Amz-Security-Token=", secret),
        absl::StrCat("azure://acct/c?sv=2020&sig=", secret),
        absl::StrCat("azure://acct/c?account_key=", secret),
        absl::StrCat("azure://acct/c?token=", secret),
        absl::StrCat("gs://b?password=", secret),
        // A second problem in the same URL must not leak the secret either.
        absl::StrCat("s3://b?x=%zz&key=", secret),
        absl::StrCat("ftp://u:", secret, "@host")}) {
    absl::StatusOr<StoreUrl> parsed = ParseStoreUrl(url);
    ASSERT_THAT(parsed, StatusIs(absl::StatusCode::kInvalidArgument)) << url;
    const std::string message(parsed.status().message());
    EXPECT_THAT(message, Not(HasSubstr(secret))) << message;
  }
  absl::StatusOr<StoreUrl> parsed = ParseStoreUrl("s3://bucket?secret=abc");
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("put secrets in the credentials file, not the URL"));
  parsed = ParseStoreUrl("s3://user:pw@bucket");
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr("put secrets in the credentials file, not the URL"));
}

TEST(ValidateKeyTest, AcceptsAndRejects) {
  for (const char* good : {"a", "blk/00/0000000000000000", "A-Z_a.z/0-9", ".hidden", "a..b",
                           "x/...", "-"}) {
    EXPECT_OK(ValidateKey(good)) << good;
  }
  for (const std::string& bad : std::vector<std::string>{"", "/a", "a/", "a//b", ".", "..", "a/../b", "a/./b", "a b",
                                "a\\b", "a:b", "é", ".nighfs-tmp", "x/.nighfs-tmp.12",
                                std::string(1025, 'a')}) {
    EXPECT_THAT(ValidateKey(bad), StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_OK(ValidateKey(std::string(1024, 'a')));
}

// ---------------------------------------------------------------------------------------------
// LoadCredentials


class CredentialsTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& content, mode_t mode) {
    const std::string path = dir_.path() + "/credentials";
    std::ofstream(path, std::ios::trunc) << content;
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }

  testing::TempDir dir_;
  // A clean environment: the machine running the tests may have real credentials set.
  ScopedEnv e1_{"AWS_ACCESS_KEY_ID", nullptr};
  ScopedEnv e2_{"AWS_SECRET_ACCESS_KEY", nullptr};
  ScopedEnv e3_{"AWS_SESSION_TOKEN", nullptr};
  ScopedEnv e4_{"AZURE_STORAGE_KEY", nullptr};
  ScopedEnv e5_{"AZURE_STORAGE_SAS_TOKEN", nullptr};
};

TEST_F(CredentialsTest, ParsesPrivateFile) {
  const std::string path = Write(
      "# nighfs credentials\n"
      "\n"
      "AWS_ACCESS_KEY_ID=AKIDEXAMPLE\n"
      "  AWS_SECRET_ACCESS_KEY =  \"wJalrXUtnFEMI/K7MDENG+bPxRfiCY=\"  \r\n"
      "export AWS_SESSION_TOKEN='tok#en with spaces'\n"
      "AZURE_STORAGE_KEY=a2V5a2V5==\n"
      "   # indented comment\n"
      "AZURE_STORAGE_SAS_TOKEN=sv=2021&sig=abc%3D",  // no final newline
      0600);
  absl::StatusOr<StoreCredentials> creds = LoadCredentials(path);
  ASSERT_OK(creds);
  EXPECT_EQ(creds->access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(creds->secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=");
  EXPECT_EQ(creds->session_token, "tok#en with spaces");
  EXPECT_EQ(creds->azure_account_key, "a2V5a2V5==");
  EXPECT_EQ(creds->azure_sas_token, "sv=2021&sig=abc%3D");
}

TEST_F(CredentialsTest, RejectsFilesOthersCanRead) {
  for (mode_t mode : {0644, 0640, 0604, 0660, 0602, 0610}) {
    const std::string path = Write("AWS_SECRET_ACCESS_KEY=topsecret\n", mode);
    absl::StatusOr<StoreCredentials> creds = LoadCredentials(path);
    ASSERT_THAT(creds, StatusIs(absl::StatusCode::kFailedPrecondition)) << std::oct << mode;
    const std::string message(creds.status().message());
    EXPECT_THAT(message, HasSubstr(path));
    EXPECT_THAT(message, HasSubstr("chmod 600"));
    EXPECT_THAT(message, Not(HasSubstr("topsecret")));
  }
  for (mode_t mode : {0600, 0400}) {
    EXPECT_OK(LoadCredentials(Write("AWS_SECRET_ACCESS_KEY=topsecret\n", mode)));
  }
}

TEST_F(CredentialsTest, MissingFileIsNotFound) {
  const std::string path = dir_.path() + "/nope";
  absl::StatusOr<StoreCredentials> creds = LoadCredentials(path);
  ASSERT_THAT(creds, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(creds.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(creds.status().message()), HasSubstr("does not exist"));
}

TEST_F(CredentialsTest, RejectsDirectoriesAndMalformedLinesWithoutEchoingThem) {
  EXPECT_THAT(LoadCredentials(dir_.path()), StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<StoreCredentials> creds =
      LoadCredentials(Write("AWS_ACCESS_KEY_ID=x\nwJalrXUtnFEMI\n", 0600));
  ASSERT_THAT(creds, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(creds.status().message()), HasSubstr("line 2"));
  EXPECT_THAT(std::string(creds.status().message()), Not(HasSubstr("wJalrXUtnFEMI")));
}

TEST_F(CredentialsTest, EnvironmentFillsOnlyEmptyFields) {
  ScopedEnv id("AWS_ACCESS_KEY_ID", "from-env-id");
  ScopedEnv token("AWS_SESSION_TOKEN", "from-env-token");
  ScopedEnv sas("AZURE_STORAGE_SAS_TOKEN", "from-env-sas");
  const std::string path =
      Write("AWS_ACCESS_KEY_ID=from-file-id\nAWS_SECRET_ACCESS_KEY=from-file-secret\n", 0600);
  absl::StatusOr<StoreCredentials> creds = LoadCredentials(path);
  ASSERT_OK(creds);
  EXPECT_EQ(creds->access_key_id, "from-file-id");  // the file wins
  EXPECT_EQ(creds->secret_access_key, "from-file-secret");
  EXPECT_EQ(creds->session_token, "from-env-token");
  EXPECT_EQ(creds->azure_account_key, "");
  EXPECT_EQ(creds->azure_sas_token, "from-env-sas");

  creds = LoadCredentials("");  // the environment alone
  ASSERT_OK(creds);
  EXPECT_EQ(creds->access_key_id, "from-env-id");
  EXPECT_EQ(creds->secret_access_key, "");
  EXPECT_EQ(creds->session_token, "from-env-token");
}

// ---------------------------------------------------------------------------------------------
// OpenBlockStore

TEST(OpenBlockStoreTest, MemUrlsShareDataByName) {
  absl::StatusOr<std::unique_ptr<BlockStore>> a = OpenBlockStore("mem://shared-test", {});
  absl::StatusOr<std::unique_ptr<BlockStore>> b = OpenBlockStore("mem://shared-test", {});
  absl::StatusOr<std::unique_ptr<BlockStore>> other = OpenBlockStore("mem://other-test", {});
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK(other);
  ASSERT_OK((*a)->Put("k", "v"));
  absl::StatusOr<std::string> got = (*b)->Get("k");
  ASSERT_OK(got);
  EXPECT_EQ(*got, "v");
  EXPECT_THAT((*other)->Get("k"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ((*a)->Describe(), "mem://shared-test");
  a->reset();  // the data outlives every handle
  got = (*b)->Get("k");
  ASSERT_OK(got);
}

TEST(OpenBlockStoreTest, DispatchesAndRejects) {
  testing::TempDir dir;
  const std::string url = absl::StrCat("file://", dir.path());
  absl::StatusOr<std::unique_ptr<BlockStore>> local = OpenBlockStore(url, {});
  ASSERT_OK(local);
  EXPECT_EQ((*local)->Describe(), url);

  absl::StatusOr<std::unique_ptr<BlockStore>> bad = OpenBlockStore("ftp://x/y", {});
  ASSERT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("file, s3, gs, oci, azure, mem"));
  EXPECT_THAT(OpenBlockStore(absl::StrCat(url, "?sync=off"), {}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenBlockStore("file://host/x", {}), StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------------------------
// The folder store

class LocalStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() + "/root";
    absl::StatusOr<std::unique_ptr<BlockStore>> store =
        OpenBlockStore(absl::StrCat("file://", root_), {});
    ASSERT_OK(store);
    store_ = *std::move(store);
  }

  // Every file and folder below the root, relative to it.
  std::set<std::string> Tree() const {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(root_)) {
      out.insert(fs::relative(e.path(), root_).string() + (e.is_directory() ? "/" : ""));
    }
    return out;
  }

  testing::TempDir dir_;
  std::string root_;
  std::unique_ptr<BlockStore> store_;
};

TEST_F(LocalStoreTest, ObjectsArePlainFilesAndNoTempFilesRemain) {
  ASSERT_OK(store_->Check());
  ASSERT_OK(store_->Put("top", "1"));
  ASSERT_OK(store_->Put("blk/ab/00000000000000ab", "block"));
  ASSERT_OK(store_->Put("blk/ab/00000000000001ab", ""));
  ASSERT_OK(store_->Put("blk/ab/00000000000001ab", ""));  // over an existing object
  EXPECT_EQ(Tree(), (std::set<std::string>{"top", "blk/", "blk/ab/", "blk/ab/00000000000000ab",
                                           "blk/ab/00000000000001ab"}));
  EXPECT_EQ(testing::ReadFileOrEmpty(root_ + "/blk/ab/00000000000000ab"), "block");
  struct stat st;
  ASSERT_EQ(::stat((root_ + "/top").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // block data stays private to the daemon
}

TEST_F(LocalStoreTest, FailedPutLeavesNoTempFile) {
  ASSERT_OK(store_->Check());
  ASSERT_OK(store_->Put("a/b", "x"));
  // Storing "a/b/c" needs "a/b" to be a folder; the temp file must not survive the failure.
  absl::Status s = store_->Put("a/b/c", "y");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(StatusToErrno(s), ENOTDIR) << s;
  // And an object cannot replace a folder of objects.
  s = store_->Put("a", "z");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("folder of other objects"));
  EXPECT_EQ(Tree(), (std::set<std::string>{"a/", "a/b"}));
}

// Issue 10: kill -9 of a writer leaves ".nighfs-tmp*" files behind. The store removes those
// untouched for an hour from the folders it writes to, and never a fresh one, which may be a
// live writer's in another process.
TEST_F(LocalStoreTest, StaleTempFilesOfCrashedWritersAreRemoved) {
  ASSERT_OK(store_->Check());
  ASSERT_OK(store_->Put("blk/00/0000000000000000", "first"));
  auto make = [&](const std::string& rel, absl::Duration age) {
    const std::string path = root_ + "/" + rel;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << std::string(4096, 't');
    const timespec when = absl::ToTimespec(absl::Now() - age);
    const timespec times[2] = {when, when};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  };
  make("blk/01/.nighfs-tmp.deadbeef00000001", absl::Hours(2));
  make("blk/01/.nighfs-tmp.deadbeef00000002", absl::Minutes(5));   // maybe a live writer's
  make("blk/01/.nighfs-tmp.deadbeef00000003", absl::Minutes(61));
  make(".nighfs-tmp.check.deadbeef00000004", absl::Hours(30));
  make(".nighfs-tmp.deadbeef00000005", absl::Seconds(1));
  // A fresh store (a new mount): its first Put into blk/01 sweeps that folder, Check the root.
  absl::StatusOr<std::unique_ptr<BlockStore>> reopened =
      OpenBlockStore(absl::StrCat("file://", root_), {});
  ASSERT_OK(reopened);
  ASSERT_OK((*reopened)->Put("blk/01/0000000000000001", "second"));
  ASSERT_OK((*reopened)->Check());
  EXPECT_EQ(Tree(), (std::set<std::string>{
                        "blk/", "blk/00/", "blk/00/0000000000000000", "blk/01/",
                        "blk/01/0000000000000001", "blk/01/.nighfs-tmp.deadbeef00000002",
                        ".nighfs-tmp.deadbeef00000005"}));
}

TEST_F(LocalStoreTest, CheckCreatesTheRootButPutDoesNot) {
  // Blocks must never land in a fresh folder because the real one is missing (unmounted).
  absl::Status put = store_->Put("blk/00/0000000000000000", "x");
  EXPECT_THAT(put, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(put.message()), HasSubstr("does not exist"));
  EXPECT_FALSE(fs::exists(root_));
  EXPECT_THAT(store_->List("", "", 10), StatusIs(absl::StatusCode::kFailedPrecondition));

  absl::StatusOr<std::unique_ptr<BlockStore>> deep =
      OpenBlockStore(absl::StrCat("file://", dir_.path(), "/x/y/z"), {});
  ASSERT_OK(deep);
  ASSERT_OK((*deep)->Check());
  EXPECT_TRUE(fs::is_directory(dir_.path() + "/x/y/z"));
  ASSERT_OK((*deep)->Check());  // idempotent
  EXPECT_TRUE(fs::is_empty(dir_.path() + "/x/y/z"));  // the probe file is gone
}

TEST_F(LocalStoreTest, CheckRejectsAFileAsRoot) {
  std::ofstream(root_) << "not a folder";
  absl::Status s = store_->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a directory"));
}

TEST_F(LocalStoreTest, CheckRejectsAnUnwritableRoot) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores permission bits";
  ASSERT_EQ(::mkdir(root_.c_str(), 0500), 0);
  absl::Status s = store_->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), HasSubstr("not writable"));
  ::chmod(root_.c_str(), 0700);
}

TEST_F(LocalStoreTest, ListSkipsWhatIsNotAnObject) {
  ASSERT_OK(store_->Check());
  ASSERT_OK(store_->Put("blk/00/0000000000000100", "x"));
  // Debris a crash, an admin or the file system may leave behind.
  std::ofstream(root_ + "/blk/00/.nighfs-tmp.0123456789abcdef") << "torn";
  std::ofstream(root_ + "/blk/00/has space") << "x";
  fs::create_directories(root_ + "/lost+found/deep");
  std::ofstream(root_ + "/lost+found/deep/file") << "x";
  fs::create_symlink("/etc", root_ + "/link");
  fs::create_symlink(root_ + "/blk/00/0000000000000100", root_ + "/blk/00/symlink");
  absl::StatusOr<ListPage> page = store_->List("", "", 1000);
  ASSERT_OK(page);
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(page->objects[0].key, "blk/00/0000000000000100");
  EXPECT_EQ(page->objects[0].size, 1u);
  EXPECT_EQ(page->next_token, "");
  EXPECT_THAT(store_->Get("blk/00/.nighfs-tmp.0123456789abcdef"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // Prefixes no key can have match nothing, without walking outside the root.
  for (const char* prefix : {"../", "/", "a//", "lost+found/", "./blk", "blk/../"}) {
    page = store_->List(prefix, "", 1000);
    ASSERT_OK(page);
    EXPECT_TRUE(page->objects.empty()) << prefix;
  }
  EXPECT_THAT(store_->List("", "", 0), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(LocalStoreTest, KeysCannotEscapeTheRoot) {
  ASSERT_OK(store_->Check());
  std::ofstream(dir_.path() + "/outside") << "secret";
  for (const char* key : {"../outside", "/etc/passwd", "a/../../outside"}) {
    EXPECT_THAT(store_->Get(key), StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(store_->Put(key, "x"), StatusIs(absl::StatusCode::kInvalidArgument));
    EXPECT_THAT(store_->Delete(key), StatusIs(absl::StatusCode::kInvalidArgument));
  }
  EXPECT_EQ(testing::ReadFileOrEmpty(dir_.path() + "/outside"), "secret");
  EXPECT_TRUE(Tree().empty());
}

TEST_F(LocalStoreTest, ListTokenSkipsWholeFolders) {
  ASSERT_OK(store_->Check());
  std::vector<std::string> keys;
  for (uint64_t id = 0; id < 300; ++id) {
    keys.push_back(BlockKey(id * 37));
    ASSERT_OK(store_->Put(keys.back(), ""));
  }
  std::sort(keys.begin(), keys.end());
  // Resuming from any key returns exactly the keys after it.
  for (size_t i : {0ul, 1ul, 150ul, 298ul, 299ul}) {
    absl::StatusOr<ListPage> page = store_->List("blk/", keys[i], 1000);
    ASSERT_OK(page);
    std::vector<std::string> got;
    for (const ObjectInfo& o : page->objects) got.push_back(o.key);
    EXPECT_EQ(got, std::vector<std::string>(keys.begin() + i + 1, keys.end())) << i;
  }
  // A token that is not itself a key ("blk/3" sorts between folders) works too.
  absl::StatusOr<ListPage> page = store_->List("", "blk/3", 1000);
  ASSERT_OK(page);
  ASSERT_FALSE(page->objects.empty());
  EXPECT_GT(page->objects.front().key, "blk/3");
  EXPECT_EQ(page->objects.back().key, keys.back());
}

// ---------------------------------------------------------------------------------------------
// The memory store

TEST(MemoryStoreTest, DescribesItself) {
  EXPECT_THAT(NewMemoryStore()->Describe(), StartsWith("mem://anonymous-"));
  EXPECT_NE(NewMemoryStore()->Describe(), NewMemoryStore()->Describe());
  EXPECT_EQ(NewMemoryStore("scratch")->Describe(), "mem://scratch");
  EXPECT_THAT(NewMemoryStore()->List("", "", 0), StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------------------------------------
// FaultInjectingStore

class FaultStoreTest : public ::testing::Test {
 protected:
  FaultStoreTest() : store_(NewMemoryStore("faulty")) {}
  FaultInjectingStore store_;
};

TEST_F(FaultStoreTest, FailNextFailsExactlyCountCallsInOrder) {
  ASSERT_OK(store_.base().Put("k", "v"));
  store_.FailNext(Op::kGet, absl::UnavailableError("503"), 2);
  store_.FailNext(Op::kGet, absl::DeadlineExceededError("timeout"));
  EXPECT_THAT(store_.Get("k"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_.Get("k"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_.Get("k"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<std::string> got = store_.Get("k");
  ASSERT_OK(got);
  EXPECT_EQ(*got, "v");
  EXPECT_EQ(store_.calls(Op::kGet), 4);
  EXPECT_EQ(store_.calls(Op::kPut), 0);  // base() bypasses counting
  ASSERT_OK(store_.Head("k"));           // other operations are unaffected
  EXPECT_EQ(store_.calls(Op::kHead), 1);
  EXPECT_EQ(store_.Describe(), "mem://faulty");
}

TEST_F(FaultStoreTest, FailNextStopsTheRequestButAfterApplyingDoesNot) {
  store_.FailNext(Op::kPut, absl::UnavailableError("connection reset"));
  EXPECT_THAT(store_.Put("lost", "x"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_.base().Head("lost"), StatusIs(absl::StatusCode::kNotFound));

  store_.FailNextAfterApplying(Op::kPut, absl::DeadlineExceededError("reply lost"));
  EXPECT_THAT(store_.Put("landed", "x"), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_OK(store_.base().Head("landed"));

  store_.FailNextAfterApplying(Op::kDelete, absl::UnavailableError("reply lost"));
  EXPECT_THAT(store_.Delete("landed"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(store_.base().Head("landed"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(FaultStoreTest, CorruptAndTruncateGets) {
  const std::string data = "0123456789";
  ASSERT_OK(store_.Put("k", data));
  ASSERT_OK(store_.Put("empty", ""));
  store_.CorruptNextGet();
  absl::StatusOr<std::string> got = store_.Get("empty");  // nothing to corrupt: not consumed
  ASSERT_OK(got);
  EXPECT_EQ(*got, "");
  got = store_.Get("k");
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), data.size());
  int differing = 0;
  for (size_t i = 0; i < data.size(); ++i) differing += (*got)[i] != data[i];
  EXPECT_EQ(differing, 1);
  got = store_.Get("k");
  ASSERT_OK(got);
  EXPECT_EQ(*got, data);

  store_.TruncateNextGet(2);
  got = store_.Get("k", 2, 4);
  ASSERT_OK(got);
  EXPECT_EQ(*got, "234");
  got = store_.Get("k");
  ASSERT_OK(got);
  EXPECT_EQ(*got, "012345678");
  got = store_.Get("k");
  ASSERT_OK(got);
  EXPECT_EQ(*got, data);
}

TEST_F(FaultStoreTest, ForeverUntilCleared) {
  store_.FailNext(Op::kCheck, absl::PermissionDeniedError("403"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kList, absl::InternalError("500"), FaultInjectingStore::kForever);
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(store_.Check(), StatusIs(absl::StatusCode::kPermissionDenied));
    EXPECT_THAT(store_.List("", "", 10), StatusIs(absl::StatusCode::kInternal));
  }
  store_.ClearFaults();
  ASSERT_OK(store_.Check());
  ASSERT_OK(store_.List("", "", 10));
  EXPECT_EQ(store_.calls(Op::kCheck), 6);
}

TEST_F(FaultStoreTest, ExactCountUnderConcurrency) {
  ASSERT_OK(store_.Put("k", "v"));
  store_.FailNext(Op::kGet, absl::UnavailableError("503"), 50);
  std::atomic<int> failures{0};
  conformance::RunConcurrently(8, [&](int) {
    for (int i = 0; i < 100; ++i) {
      if (!store_.Get("k").ok()) ++failures;
    }
  });
  EXPECT_EQ(failures.load(), 50);
  EXPECT_EQ(store_.calls(Op::kGet), 800);
}

TEST_F(FaultStoreTest, RetriesRideThroughTransientFailures) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Milliseconds(1);
  policy.max_backoff = absl::Milliseconds(2);
  store_.FailNext(Op::kPut, absl::UnavailableError("503 Slow Down"), 3);
  ASSERT_OK(RetryWithBackoff(policy, [&] { return store_.Put("k", "v"); }));
  EXPECT_EQ(store_.calls(Op::kPut), 4);

  store_.FailNext(Op::kPut, absl::PermissionDeniedError("403"), 1);
  EXPECT_THAT(RetryWithBackoff(policy, [&] { return store_.Put("k", "v"); }),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(store_.calls(Op::kPut), 5);  // not retried
}

TEST_F(FaultStoreTest, ConformanceHelpersSeeFailures) {
  store_.FailNext(Op::kGet, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kPut, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kDelete, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kHead, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kList, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  store_.FailNext(Op::kCheck, absl::UnavailableError("x"), FaultInjectingStore::kForever);
  conformance::ExpectEveryOpFails(store_, absl::StatusCode::kUnavailable, "k", {"secret"});
  store_.ClearFaults();
  conformance::ExpectRoundTrip(store_, "round/trip", 12345);
}

}  // namespace
}  // namespace nighfs::blockstore
