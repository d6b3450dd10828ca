// ProxyStore against an in-test HTTP server that speaks the proxy's block API
// (docs: /work/notes/proxy-design.md, "Proxy HTTP API"): bearer tokens, PUT with the CRC32C
// header and the holder reply header, GET with Range, HEAD, DELETE, 404, 503 SlowDown, 401/403,
// BadDigest, and connection reuse.
#include "blockstore/proxy_store.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/crc32c.h"
#include "common/http_server.h"
#include "common/tls_certs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kVolume[] = "vol1";
constexpr char kWriteToken[] = "write-secret";
constexpr char kReadToken[] = "read-secret";
constexpr char kHolder[] = "proxy-a.example:7430";

ServerResponse S3Error(int status, const std::string& code, const std::string& message) {
  ServerResponse r;
  r.status = status;
  r.content_type = "application/xml";
  r.body = absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>", code,
                        "</Code><Message>", message, "</Message></Error>");
  return r;
}

// A fake nighfs-proxy: blocks in memory, the same answers the real one gives.
class FakeProxy {
 public:
  explicit FakeProxy(HttpServerOptions options = {}) {
    auto s = HttpServer::Start(options, [this](const ServerRequest& r) { return Handle(r); });
    EXPECT_OK(s);
    if (s.ok()) server_ = std::move(*s);
  }

  std::string address() const { return absl::StrCat("http://127.0.0.1:", server_->port()); }
  uint16_t port() const { return server_->port(); }

  // The next `n` block requests get 503 SlowDown with "Retry-After: <retry_after>".
  void SlowDownNext(int n, int retry_after = 0) {
    retry_after_.store(retry_after);
    slow_down_.store(n);
  }
  // PUT replies carry no holder header (a write-through proxy).
  void SetHolder(std::string holder) {
    absl::MutexLock l(&mu_);
    holder_ = std::move(holder);
  }
  // Ignore the Range header and answer 200 with the whole object (HTTP allows it).
  void IgnoreRanges() { ignore_ranges_ = true; }
  // Answer ranges starting elsewhere than asked.
  void ShiftRanges() { shift_ranges_ = true; }

  std::string Object(const std::string& key) {
    absl::MutexLock l(&mu_);
    auto it = objects_.find(key);
    return it == objects_.end() ? "<absent>" : it->second;
  }
  void SetObject(const std::string& key, std::string data) {
    absl::MutexLock l(&mu_);
    objects_[key] = std::move(data);
  }
  int block_requests() const { return block_requests_.load(); }
  int pings() const { return pings_.load(); }
  std::set<std::string> remotes() {
    absl::MutexLock l(&mu_);
    return remotes_;
  }
  std::string last_auth() {
    absl::MutexLock l(&mu_);
    return last_auth_;
  }
  std::string last_checksum() {
    absl::MutexLock l(&mu_);
    return last_checksum_;
  }

 private:
  ServerResponse Handle(const ServerRequest& req) {
    {
      absl::MutexLock l(&mu_);
      remotes_.insert(req.remote);
    }
    if (req.target == "/ping") {
      pings_.fetch_add(1);
      ServerResponse r;
      r.content_type = "text/plain";
      r.body = "pong\n";
      return r;
    }
    block_requests_.fetch_add(1);
    const std::string auth = req.Header("Authorization");
    {
      absl::MutexLock l(&mu_);
      last_auth_ = auth;
    }
    const std::string prefix = absl::StrCat("/", kVolume, "/");
    if (!absl::StartsWith(req.target, prefix)) {
      return S3Error(403, "AccessDenied", "the token is not for this volume");
    }
    const std::string key = req.target.substr(prefix.size());
    if (!absl::StartsWith(key, "blk/")) return S3Error(400, "InvalidObjectName", key);
    const bool write = req.method == "PUT" || req.method == "DELETE";
    if (auth != absl::StrCat("Bearer ", kWriteToken) &&
        auth != absl::StrCat("Bearer ", kReadToken)) {
      return S3Error(401, "Unauthorized", "no valid bearer token");
    }
    if (write && auth != absl::StrCat("Bearer ", kWriteToken)) {
      return S3Error(403, "AccessDenied", "a READ token cannot write");
    }
    if (int n = slow_down_.load(); n > 0 && slow_down_.compare_exchange_strong(n, n - 1)) {
      ServerResponse r = S3Error(503, "SlowDown", "dirty data at quota");
      r.headers.emplace_back("Retry-After", absl::StrCat(retry_after_.load()));
      return r;
    }
    absl::MutexLock l(&mu_);
    if (req.method == "PUT") {
      const std::string sent = req.Header("x-amz-checksum-crc32c");
      last_checksum_ = sent;
      const std::string have = Crc32cHeaderValue(Crc32c(req.body));
      if (!sent.empty() && sent != have) return S3Error(400, "BadDigest", "checksum mismatch");
      objects_[key] = req.body;
      ServerResponse r;
      r.headers.emplace_back("ETag", "\"x\"");
      r.headers.emplace_back("x-amz-checksum-crc32c", have);
      if (!holder_.empty()) r.headers.emplace_back("x-nighfs-holder", holder_);
      return r;
    }
    auto it = objects_.find(key);
    if (req.method == "DELETE") {
      if (it != objects_.end()) objects_.erase(it);
      ServerResponse r;
      r.status = 204;
      return r;
    }
    if (it == objects_.end()) return S3Error(404, "NoSuchKey", "no such block");
    const std::string& data = it->second;
    if (req.method == "HEAD") {
      ServerResponse r;
      r.headers.emplace_back("Content-Length", absl::StrCat(data.size()));
      return r;
    }
    ServerResponse r;
    const std::string range = req.Header("Range");
    if (range.empty() || ignore_ranges_) {
      r.body = data;
      return r;
    }
    // "bytes=a-b" or "bytes=a-".
    uint64_t a = 0, b = data.empty() ? 0 : data.size() - 1;
    const std::string spec = range.substr(6);
    const size_t dash = spec.find('-');
    EXPECT_TRUE(absl::SimpleAtoi(spec.substr(0, dash), &a)) << range;
    if (dash + 1 < spec.size()) {
      EXPECT_TRUE(absl::SimpleAtoi(spec.substr(dash + 1), &b));
    }
    if (a >= data.size()) return S3Error(416, "InvalidRange", "past the end");
    b = std::min<uint64_t>(b, data.size() - 1);
    if (shift_ranges_) a = a > 0 ? a - 1 : a + 1;
    r.status = 206;
    r.headers.emplace_back("Content-Range", absl::StrCat("bytes ", a, "-", b, "/", data.size()));
    r.body = data.substr(a, b - a + 1);
    return r;
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> slow_down_{0};
  std::atomic<int> retry_after_{0};
  std::atomic<int> block_requests_{0};
  std::atomic<int> pings_{0};
  std::atomic<bool> ignore_ranges_{false};
  std::atomic<bool> shift_ranges_{false};
  absl::Mutex mu_;
  std::map<std::string, std::string> objects_ ABSL_GUARDED_BY(mu_);
  std::string holder_ ABSL_GUARDED_BY(mu_) = kHolder;
  std::set<std::string> remotes_ ABSL_GUARDED_BY(mu_);
  std::string last_auth_ ABSL_GUARDED_BY(mu_);
  std::string last_checksum_ ABSL_GUARDED_BY(mu_);
};

ProxyStoreOptions Options(const std::string& address, const std::string& token = kWriteToken) {
  ProxyStoreOptions o;
  o.address = address;
  o.volume = kVolume;
  o.token = token;
  o.retry.initial_backoff = absl::Milliseconds(5);
  o.retry.max_backoff = absl::Milliseconds(20);
  return o;
}

std::unique_ptr<ProxyStore> Open(const ProxyStoreOptions& o) {
  auto s = ProxyStore::Create(o);
  EXPECT_OK(s);
  return s.ok() ? std::move(*s) : nullptr;
}

std::string Data(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

TEST(Crc32cHeader, BigEndianBase64) {
  // CRC32C("123456789") = 0xE3069283, the standard check value.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32cHeaderValue(0xE3069283u), "4waSgw==");
  EXPECT_EQ(ParseCrc32cHeader("4waSgw=="), 0xE3069283u);
  EXPECT_EQ(ParseCrc32cHeader("AAAAAA=="), 0u);
  EXPECT_EQ(ParseCrc32cHeader("AAAA"), std::nullopt);  // 3 bytes
  EXPECT_EQ(ParseCrc32cHeader("not base64!"), std::nullopt);
}

TEST(ProxyStoreCreate, AddressForms) {
  auto https = Open(Options("proxy.example:7431"));
  ASSERT_NE(https, nullptr);
  EXPECT_EQ(https->url(), "https://proxy.example:7431");
  EXPECT_EQ(https->Describe(), "proxy https://proxy.example:7431");
  auto defaulted = Open(Options("proxy.example"));
  ASSERT_NE(defaulted, nullptr);
  EXPECT_EQ(defaulted->url(), "https://proxy.example:7430");
  auto plain = Open(Options("http://[::1]:80/"));
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->url(), "http://[::1]:80");
  for (const char* bad : {"", "ftp://h:1", "h:0", "h:x", "h:1/path", "u:p@h:1", "http://"}) {
    EXPECT_THAT(ProxyStore::Create(Options(bad)), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  ProxyStoreOptions no_volume = Options("h:1");
  no_volume.volume.clear();
  EXPECT_THAT(ProxyStore::Create(no_volume), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ProxyStore, DescribeNeverShowsTheToken) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Describe(), Not(HasSubstr(kWriteToken)));
  // Nor does an error message.
  auto bad = Open(Options(proxy.address(), "wrong-token"));
  absl::Status s = bad->Put(BlockKey(1), "x");
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("wrong-token")));
}

TEST(ProxyStore, PutSendsChecksumAndTokenAndReturnsHolder) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  ASSERT_NE(store, nullptr);
  const std::string data = Data(100000, 1);
  auto holder = store->PutAndLocate(BlockKey(7), data);
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, kHolder);
  EXPECT_EQ(proxy.last_auth(), absl::StrCat("Bearer ", kWriteToken));
  EXPECT_EQ(proxy.last_checksum(), Crc32cHeaderValue(Crc32c(data)));
  EXPECT_TRUE(proxy.Object(BlockKey(7)) == data);
  // Put is PutAndLocate without the answer.
  ASSERT_OK(store->Put(BlockKey(8), "eight"));
  EXPECT_EQ(proxy.Object(BlockKey(8)), "eight");
}

TEST(ProxyStore, PutWithoutHolderHeaderMeansTheStoreHasIt) {
  FakeProxy proxy;
  proxy.SetHolder("");
  auto store = Open(Options(proxy.address()));
  auto holder = store->PutAndLocate(BlockKey(7), "data");
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, "");
}

TEST(ProxyStore, GetWholeRangesAndMissing) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  const std::string data = Data(5000, 2);
  proxy.SetObject(BlockKey(3), data);
  auto all = store->Get(BlockKey(3));
  ASSERT_OK(all);
  EXPECT_TRUE(*all == data);
  auto mid = store->Get(BlockKey(3), 100, 200);
  ASSERT_OK(mid);
  EXPECT_TRUE(*mid == data.substr(100, 200));
  auto tail = store->Get(BlockKey(3), 4990);
  ASSERT_OK(tail);
  EXPECT_TRUE(*tail == data.substr(4990));
  auto past = store->Get(BlockKey(3), 6000, 10);
  ASSERT_OK(past);
  EXPECT_EQ(*past, "");
  auto head = store->Head(BlockKey(3));
  ASSERT_OK(head);
  EXPECT_EQ(head->size, data.size());
  EXPECT_THAT(store->Get(BlockKey(4)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Get(BlockKey(4), 0, 0), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Head(BlockKey(4)), StatusIs(absl::StatusCode::kNotFound));
  // A proxy that ignores Range still gives the right bytes.
  proxy.IgnoreRanges();
  auto ignored = store->Get(BlockKey(3), 100, 200);
  ASSERT_OK(ignored);
  EXPECT_TRUE(*ignored == data.substr(100, 200));
}

TEST(ProxyStore, RangeFromElsewhereIsDataLoss) {
  FakeProxy proxy;
  proxy.ShiftRanges();
  auto store = Open(Options(proxy.address()));
  proxy.SetObject(BlockKey(3), Data(5000, 2));
  EXPECT_THAT(store->Get(BlockKey(3), 100, 200), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ProxyStore, DeleteRemovesAndMissingIsOk) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  ASSERT_OK(store->Put(BlockKey(5), "five"));
  ASSERT_OK(store->Delete(BlockKey(5)));
  EXPECT_EQ(proxy.Object(BlockKey(5)), "<absent>");
  EXPECT_OK(store->Delete(BlockKey(5)));
}

TEST(ProxyStore, SlowDownIsRetriedWithBackoff) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  proxy.SlowDownNext(3);
  auto holder = store->PutAndLocate(BlockKey(9), "nine");
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, kHolder);
  EXPECT_EQ(proxy.block_requests(), 4);  // three 503s, then the 200
  EXPECT_EQ(proxy.Object(BlockKey(9)), "nine");
}

TEST(ProxyStore, RetryAfterIsWaited) {
  FakeProxy proxy;
  ProxyStoreOptions o = Options(proxy.address());
  o.retry.max_backoff = absl::Seconds(2);  // Retry-After is capped by it
  auto store = Open(o);
  proxy.SlowDownNext(1, /*retry_after=*/1);
  const absl::Time start = absl::Now();
  ASSERT_OK(store->Put(BlockKey(9), "nine"));
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(proxy.block_requests(), 2);
}

TEST(ProxyStore, SlowDownIsRetriedUntilTheDeadline) {
  FakeProxy proxy;
  ProxyStoreOptions o = Options(proxy.address());
  o.retry.deadline = absl::Milliseconds(300);
  auto store = Open(o);
  proxy.SlowDownNext(1000000);
  const absl::Time start = absl::Now();
  EXPECT_THAT(store->Put(BlockKey(9), "nine"), StatusIs(absl::StatusCode::kUnavailable));
  // No attempt starts past the deadline; the last backoff may stop short of it.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_GT(proxy.block_requests(), 5);  // attempts are bounded by time, not by a count
}

TEST(ProxyStore, SlowDownPastTheBudgetFailsUnavailableAndNamesIt) {
  FakeProxy proxy;
  ProxyStoreOptions o = Options(proxy.address());
  o.retry.max_attempts = 3;
  auto store = Open(o);
  proxy.SlowDownNext(100);
  absl::Status s = store->Put(BlockKey(9), "nine");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("SlowDown"));
  EXPECT_EQ(proxy.block_requests(), 3);
  EXPECT_EQ(proxy.Object(BlockKey(9)), "<absent>");
}

TEST(ProxyStore, BadTokenIsPermissionDeniedAndNotRetried) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address(), "nope"));
  absl::Status s = store->Put(BlockKey(1), "x");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), HasSubstr("token"));
  EXPECT_EQ(proxy.block_requests(), 1);
  // A READ token reads, and cannot write (403).
  auto reader = Open(Options(proxy.address(), kReadToken));
  proxy.SetObject(BlockKey(2), "two");
  EXPECT_OK(reader->Get(BlockKey(2)));
  absl::Status w = reader->Put(BlockKey(3), "x");
  EXPECT_THAT(w, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(w.message()), HasSubstr("read-only token cannot write"));
}

TEST(ProxyStore, OtherClientErrorsAreNotRetried) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  // Not a block key: the proxy answers 400 InvalidObjectName.
  EXPECT_THAT(store->Put("other/key", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(proxy.block_requests(), 1);
  // Nor is a key that fails ValidateKey sent at all.
  EXPECT_THAT(store->Put("blk/../x", "x"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(proxy.block_requests(), 1);
}

TEST(ProxyStore, BadDigestIsDataLoss) {
  // What the proxy answers when the bytes it received do not match the header (damage on the
  // way): nothing was stored, and retrying the same damaged path is not the store's call.
  auto server = HttpServer::Start({}, [](const ServerRequest&) {
    return S3Error(400, "BadDigest", "The CRC32C you specified did not match the calculated");
  });
  ASSERT_OK(server);
  auto store = Open(Options(absl::StrCat("http://127.0.0.1:", (*server)->port())));
  absl::Status s = store->Put(BlockKey(1), "x");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(s.message()), HasSubstr("BadDigest"));
}

TEST(ProxyStore, AcknowledgedChecksumThatDiffersIsDataLoss) {
  auto server = HttpServer::Start({}, [](const ServerRequest&) {
    ServerResponse r;
    r.headers.emplace_back("x-amz-checksum-crc32c", Crc32cHeaderValue(12345));
    r.headers.emplace_back("x-nighfs-holder", kHolder);
    return r;
  });
  ASSERT_OK(server);
  auto store = Open(Options(absl::StrCat("http://127.0.0.1:", (*server)->port())));
  EXPECT_THAT(store->PutAndLocate(BlockKey(1), "x"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ProxyStore, ListIsUnimplementedWithAReason) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  auto page = store->List("blk/", "");
  EXPECT_THAT(page, StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_THAT(std::string(page.status().message()), HasSubstr("object store"));
}

TEST(ProxyStore, KeptAliveConnectionsAreReused) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  for (int i = 0; i < 20; ++i) ASSERT_OK(store->Put(BlockKey(100 + i), Data(1000, i)));
  for (int i = 0; i < 20; ++i) ASSERT_OK(store->Get(BlockKey(100 + i)));
  // One thread, one connection: all 40 requests came from the same peer port.
  EXPECT_EQ(proxy.remotes().size(), 1u);
  // Pings have a connection of their own, reused too.
  for (int i = 0; i < 5; ++i) ASSERT_OK(store->Ping());
  EXPECT_EQ(proxy.remotes().size(), 2u);
}

TEST(ProxyStore, PingMeasuresARoundTrip) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address()));
  auto rtt = store->Ping();
  ASSERT_OK(rtt);
  EXPECT_GT(*rtt, absl::ZeroDuration());
  EXPECT_LT(*rtt, absl::Seconds(2));
  EXPECT_EQ(proxy.pings(), 1);
  EXPECT_EQ(proxy.block_requests(), 0);  // no auth, no block touched
}

TEST(ProxyStore, OnePingInFlight) {
  absl::Notification release;
  std::atomic<int> pings{0};
  auto server = HttpServer::Start({}, [&](const ServerRequest&) {
    pings.fetch_add(1);
    release.WaitForNotificationWithTimeout(absl::Seconds(5));
    ServerResponse r;
    r.body = "pong\n";
    return r;
  });
  ASSERT_OK(server);
  auto store = Open(Options(absl::StrCat("http://127.0.0.1:", (*server)->port())));
  absl::StatusOr<absl::Duration> first;
  std::thread t([&] { first = store->Ping(); });
  ASSERT_TRUE(testing::WaitFor([&] { return pings.load() == 1; }, absl::Seconds(5)));
  auto second = store->Ping();
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("still unanswered"));
  release.Notify();
  t.join();
  EXPECT_OK(first);
  EXPECT_EQ(pings.load(), 1);
  EXPECT_OK(store->Ping());  // and free again once answered
}

TEST(ProxyStore, PingTimesOut) {
  absl::Notification release;
  auto server = HttpServer::Start({}, [&](const ServerRequest&) {
    release.WaitForNotificationWithTimeout(absl::Seconds(5));
    return ServerResponse{};
  });
  ASSERT_OK(server);
  ProxyStoreOptions o = Options(absl::StrCat("http://127.0.0.1:", (*server)->port()));
  o.ping_timeout = absl::Milliseconds(200);
  auto store = Open(o);
  const absl::Time start = absl::Now();
  EXPECT_THAT(store->Ping(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  release.Notify();
}

TEST(ProxyStore, CheckPassesWithAGoodToken) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address(), kReadToken));
  EXPECT_OK(store->Check());
  EXPECT_EQ(proxy.pings(), 1);
  EXPECT_EQ(proxy.block_requests(), 1);  // the HEAD of a block that never exists
}

TEST(ProxyStore, CheckNamesARefusedToken) {
  FakeProxy proxy;
  auto store = Open(Options(proxy.address(), "bad"));
  absl::Status s = store->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), HasSubstr("did not accept the token"));
}

TEST(ProxyStore, CheckPassesWhenOnlyTheStoreBehindTheProxyIsDown) {
  // The proxy answers pings and takes the token, but cannot reach its store: a mount through
  // it can still write (the proxy holds the blocks until the store is back).
  std::atomic<int> heads{0};
  auto server = HttpServer::Start({}, [&](const ServerRequest& req) {
    if (req.target == "/ping") return ServerResponse{.body = "pong\n"};
    heads.fetch_add(1);
    return S3Error(503, "ServiceUnavailable", "the object store does not answer");
  });
  ASSERT_OK(server);
  auto store = Open(Options(absl::StrCat("http://127.0.0.1:", (*server)->port())));
  EXPECT_OK(store->Check());
  EXPECT_EQ(heads.load(), 1);  // one attempt, no retries at mount time
}

TEST(ProxyStore, CheckOfAnUnreachableProxyFails) {
  const int port = testing::FreeLoopbackPort();
  ProxyStoreOptions o = Options(absl::StrCat("http://127.0.0.1:", port));
  auto store = Open(o);
  absl::Status s = store->Check();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("cannot reach"));
}

TEST(ProxyStore, TlsIsVerifiedWithTheCaFile) {
  testing::TempDir dir;
  ASSERT_OK(WriteLabTls(dir.path()));
  HttpServerOptions so;
  so.tls_cert_file = dir.path() + "/" + kLabServerCert;
  so.tls_key_file = dir.path() + "/" + kLabServerKey;
  FakeProxy proxy(so);
  const std::string address = absl::StrCat("127.0.0.1:", proxy.port());  // bare = https
  ProxyStoreOptions o = Options(address);
  o.ca_file = dir.path() + "/" + kLabCaCert;
  auto store = Open(o);
  EXPECT_OK(store->Check());
  auto holder = store->PutAndLocate(BlockKey(1), "over tls");
  ASSERT_OK(holder);
  EXPECT_EQ(proxy.Object(BlockKey(1)), "over tls");
  // Without the CA the certificate is refused, and not retried.
  auto unverified = Open(Options(address));
  EXPECT_THAT(unverified->Put(BlockKey(2), "x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(proxy.Object(BlockKey(2)), "<absent>");
}

TEST(ProxyStores, OneStorePerAddress) {
  FakeProxy a, b;
  b.SetHolder("proxy-b:7430");
  ProxyStores stores(Options(""));
  auto sa = stores.For(a.address());
  auto sb = stores.For(b.address());
  ASSERT_OK(sa);
  ASSERT_OK(sb);
  EXPECT_NE(*sa, *sb);
  auto again = stores.For(a.address());
  ASSERT_OK(again);
  EXPECT_EQ(*sa, *again);
  auto put = (*sb)->PutAndLocate(BlockKey(1), "b");
  ASSERT_OK(put);
  EXPECT_EQ(*put, "proxy-b:7430");
  EXPECT_EQ(b.Object(BlockKey(1)), "b");
  EXPECT_EQ(a.Object(BlockKey(1)), "<absent>");
  EXPECT_THAT(stores.For("bad address/"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace nighfs::blockstore
