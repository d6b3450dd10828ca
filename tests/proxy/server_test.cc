// The proxy's HTTP routes over real loopback HTTP, with a fake metadata server and an in-memory
// store behind a fault-injecting wrapper.
#include "proxy/server.h"

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "blockstore/store_wrapper.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "common/tls_certs.h"
#include "gtest/gtest.h"
#include "tests/common/raw_connection.h"
#include "tests/proxy/fake_meta.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::proxy {
namespace {

using blockstore::FaultInjectingStore;
using ::nighfs::proxy::testing::FakeMeta;
using ::nighfs::testing::TempDir;
using Op = FaultInjectingStore::Op;

constexpr uint64_t kVolume = 7;

// Counts Gets and holds each one for `delay`, so that concurrent misses overlap.
class SlowGetStore : public blockstore::BlockStoreWrapper {
 public:
  using BlockStoreWrapper::BlockStoreWrapper;
  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset = 0,
                                  uint64_t length = blockstore::kToEnd) override {
    gets_.fetch_add(1);
    absl::SleepFor(delay_);
    return BlockStoreWrapper::Get(key, offset, length);
  }
  std::atomic<int> gets_{0};
  absl::Duration delay_ = absl::ZeroDuration();
};

std::string CrcHeader(std::string_view data) {
  const uint32_t crc = Crc32c(data);
  return Base64Encode(std::string{static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                                  static_cast<char>(crc >> 8), static_cast<char>(crc)});
}

class ProxyServerTest : public ::testing::Test {
 protected:
  ProxyServerTest() {
    meta_.AddVolume(kVolume, "vol", "mem://proxy-server-test");
    meta_.AddVolume(8, "vol2", "mem://proxy-server-test-2");
    meta_.AddToken("w-secret", "vol", pb::ACCESS_WRITE);
    meta_.AddToken("r-secret", "vol", pb::ACCESS_READ);
    meta_.AddToken("other-secret", "vol2", pb::ACCESS_WRITE);
    meta_.AddToken("admin-secret", "", pb::ACCESS_WRITE);
    auto slow = std::make_unique<SlowGetStore>(blockstore::NewMemoryStore());
    slow_ = slow.get();
    store_ = std::make_shared<FaultInjectingStore>(std::move(slow));
    client_ = HttpClient::Create();
  }
  ~ProxyServerTest() override {
    if (server_ != nullptr) server_->Stop();
  }

  void Start(std::function<void(ProxyOptions&)> tweak = {}) {
    ProxyOptions o;
    o.http.bind_address = "127.0.0.1";
    o.http.port = 0;
    o.http.threads = 16;
    o.advertise = "proxy.test:7430";
    o.cache.folder = dir_.path() + "/cache";
    o.cache.journal_path = dir_.path() + "/proxy.db";
    o.cache.quota_bytes = 64 << 20;
    o.writeback_options.initial_backoff = absl::Milliseconds(10);
    o.writeback_options.max_backoff = absl::Milliseconds(50);
    o.token_cache_ttl = absl::Seconds(10);
    if (tweak) tweak(o);
    absl::StatusOr<std::unique_ptr<ProxyServer>> server = ProxyServer::Start(
        o, &meta_,
        [this](const std::string& url)
            -> absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> {
          if (url == "mem://proxy-server-test") {
            return std::static_pointer_cast<blockstore::BlockStore>(store_);
          }
          return std::shared_ptr<blockstore::BlockStore>(blockstore::NewMemoryStore());
        });
    ASSERT_OK(server);
    server_ = *std::move(server);
  }

  HttpResponse Do(const std::string& method, const std::string& path,
                  const std::string& token = "w-secret", std::string_view body = "",
                  HttpHeaders headers = {}) {
    HttpRequest req;
    req.method = method;
    req.url = absl::StrCat("http://127.0.0.1:", server_->port(), path);
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    req.headers = std::move(headers);
    req.body = body;
    absl::StatusOr<HttpResponse> r = client_->Do(req);
    EXPECT_OK(r);
    return r.ok() ? *std::move(r) : HttpResponse{};
  }
  // The status line and headers of a raw request (paths curl would normalize).
  std::string Raw(const std::string& request_line) {
    RawConnection c(server_->port());
    EXPECT_TRUE(c.connected());
    c.Send(absl::StrCat(request_line,
                        "\r\nHost: x\r\nAuthorization: Bearer w-secret\r\nContent-Length: 0\r\n"
                        "Connection: close\r\n\r\n"));
    return c.ReadAll();
  }
  static std::string Path(uint64_t id) { return absl::StrCat("/vol/", blockstore::BlockKey(id)); }
  static std::string Data(uint64_t id, size_t n = 10000) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + id * 7) & 0xff);
    return s;
  }
  bool InStore(uint64_t id) { return slow_->base().Head(blockstore::BlockKey(id)).ok(); }

  TempDir dir_;
  FakeMeta meta_;
  SlowGetStore* slow_;  // owned by store_
  std::shared_ptr<FaultInjectingStore> store_;
  std::unique_ptr<HttpClient> client_;
  std::unique_ptr<ProxyServer> server_;
};

TEST_F(ProxyServerTest, ProbesNeedNoToken) {
  Start();
  HttpResponse ping = Do("GET", "/ping", "");
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(ping.body, "pong\n");
  HttpResponse health = Do("GET", "/healthz", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "ok\n");
  HttpResponse metrics = Do("GET", "/metrics", "");
  EXPECT_EQ(metrics.status, 200);
  for (const char* name :
       {"nighfs_proxy_hits_total", "nighfs_proxy_misses_total", "nighfs_proxy_bytes_in_total",
        "nighfs_proxy_bytes_out_total", "nighfs_proxy_dirty_bytes", "nighfs_proxy_dirty_blocks",
        "nighfs_proxy_cached_bytes", "nighfs_proxy_flushed_blocks_total",
        "nighfs_proxy_flush_errors_total", "nighfs_proxy_evictions_total",
        "nighfs_proxy_request_seconds_bucket", "nighfs_proxy_corrupt_blocks_total",
        "nighfs_proxy_dead_blocks_dropped_total"}) {
    EXPECT_TRUE(absl::StrContains(metrics.body, name)) << name;
  }
  EXPECT_EQ(meta_.authorize_calls(), 0);
  EXPECT_EQ(store_->calls(Op::kGet) + store_->calls(Op::kHead), 0);
}

TEST_F(ProxyServerTest, PutGetHeadDelete) {
  Start();
  const std::string data = Data(1);
  HttpResponse put = Do("PUT", Path(1), "w-secret", data, {{"x-amz-checksum-crc32c", CrcHeader(data)}});
  ASSERT_EQ(put.status, 200) << put.body;
  EXPECT_EQ(put.Header("x-nighfs-holder"), "proxy.test:7430");
  EXPECT_EQ(put.Header("x-amz-checksum-crc32c"), CrcHeader(data));
  EXPECT_FALSE(put.Header("ETag").empty());
  EXPECT_EQ(meta_.last_proxy_address(), "proxy.test:7430");

  HttpResponse get = Do("GET", Path(1), "r-secret");
  ASSERT_EQ(get.status, 200);
  EXPECT_EQ(get.body, data);
  EXPECT_EQ(get.Header("x-amz-checksum-crc32c"), CrcHeader(data));
  HttpResponse head = Do("HEAD", Path(1), "r-secret");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("Content-Length"), absl::StrCat(data.size()));
  EXPECT_EQ(head.Header("x-amz-checksum-crc32c"), CrcHeader(data));

  ASSERT_TRUE(server_->writeback()->WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(*slow_->base().Get(blockstore::BlockKey(1)), data);

  HttpResponse del = Do("DELETE", Path(1));
  EXPECT_EQ(del.status, 204);
  EXPECT_FALSE(InStore(1));
  HttpResponse gone = Do("GET", Path(1));
  EXPECT_EQ(gone.status, 404);
  EXPECT_TRUE(absl::StrContains(gone.body, "<Code>NoSuchKey</Code>")) << gone.body;
  EXPECT_EQ(Do("HEAD", Path(1)).status, 404);
}

TEST_F(ProxyServerTest, DeleteBeforeTheFlushNeverReachesTheStore) {
  Start([](ProxyOptions& o) { o.writeback_options.delay = absl::Seconds(30); });
  ASSERT_EQ(Do("PUT", Path(2), "w-secret", Data(2)).status, 200);
  EXPECT_EQ(Do("DELETE", Path(2)).status, 204);
  EXPECT_EQ(store_->calls(Op::kPut), 0);
  EXPECT_EQ(server_->writeback()->pending(), 0u);
  EXPECT_EQ(Do("GET", Path(2)).status, 404);
}

TEST_F(ProxyServerTest, Ranges) {
  Start();
  const std::string data = Data(3, 100);
  ASSERT_EQ(Do("PUT", Path(3), "w-secret", data).status, 200);
  HttpResponse r = Do("GET", Path(3), "r-secret", "", {{"Range", "bytes=2-5"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, data.substr(2, 4));
  EXPECT_EQ(r.Header("Content-Range"), "bytes 2-5/100");
  r = Do("GET", Path(3), "r-secret", "", {{"Range", "bytes=90-"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, data.substr(90));
  r = Do("GET", Path(3), "r-secret", "", {{"Range", "bytes=-3"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, data.substr(97));
  r = Do("GET", Path(3), "r-secret", "", {{"Range", "bytes=95-1000"}});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, data.substr(95));
  r = Do("GET", Path(3), "r-secret", "", {{"Range", "bytes=100-"}});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(r.Header("Content-Range"), "bytes */100");
}

TEST_F(ProxyServerTest, BadDigestIsRefusedAndLeavesNothing) {
  Start();
  const std::string data = Data(4);
  HttpResponse put = Do("PUT", Path(4), "w-secret", data,
                        {{"x-amz-checksum-crc32c", CrcHeader(data + "x")}});
  EXPECT_EQ(put.status, 400);
  EXPECT_TRUE(absl::StrContains(put.body, "<Code>BadDigest</Code>")) << put.body;
  put = Do("PUT", Path(4), "w-secret", data, {{"x-amz-checksum-crc32c", "!!"}});
  EXPECT_EQ(put.status, 400);
  EXPECT_EQ(Do("GET", Path(4)).status, 404);
  EXPECT_EQ(server_->cache().Gauges().cached_blocks, 0u);
}

TEST_F(ProxyServerTest, TooLargeBodiesGet413) {
  Start([](ProxyOptions& o) { o.max_object_size = 4096; });
  EXPECT_EQ(Do("PUT", Path(5), "w-secret", std::string(4097, 'x')).status, 413);
  EXPECT_EQ(Do("PUT", Path(5), "w-secret", std::string(4096, 'x')).status, 200);
}

TEST_F(ProxyServerTest, KeysOutsideTheBlockSyntaxAreRefused) {
  Start();
  for (const char* target :
       {"/vol/blk/../../etc/passwd", "/vol/../etc/passwd", "/vol/blk/./x", "/vol/notblk/x",
        "/vol/blk//x", "/vol/blk/.nighfs-tmp-1", "/vol/blk/%2e%2e/x", "/vol", "/vol/"}) {
    for (const char* method : {"GET", "PUT"}) {
      std::string reply = Raw(absl::StrCat(method, " ", target, " HTTP/1.1"));
      EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 400")) << method << " " << target << ": "
                                                          << reply.substr(0, 60);
    }
  }
  EXPECT_EQ(server_->cache().Gauges().cached_blocks, 0u);
  EXPECT_EQ(meta_.authorize_calls(), 0);
}

TEST_F(ProxyServerTest, TokensAreChecked) {
  Start();
  EXPECT_EQ(Do("GET", Path(6), "").status, 401);
  EXPECT_EQ(Do("GET", Path(6), "nonsense").status, 401);
  EXPECT_EQ(Do("PUT", Path(6), "", "x").status, 401);
  HttpResponse ro = Do("PUT", Path(6), "r-secret", "x");
  EXPECT_EQ(ro.status, 403);
  EXPECT_TRUE(absl::StrContains(ro.body, "<Code>AccessDenied</Code>"));
  EXPECT_EQ(Do("DELETE", Path(6), "r-secret").status, 403);
  EXPECT_EQ(Do("PUT", Path(6), "other-secret", "x").status, 403);
  EXPECT_EQ(Do("GET", Path(6), "other-secret").status, 403);
  EXPECT_EQ(Do("PUT", "/nosuchvolume/blk/00/x", "admin-secret", "x").status, 404);
  EXPECT_EQ(Do("PUT", Path(6), "admin-secret", "x").status, 200);
  EXPECT_EQ(server_->cache().Gauges().cached_blocks, 1u);
}

// A PUT's token is checked when its header arrives: refused writers are answered at once, their
// bodies never read nor counted against the body budget.
TEST_F(ProxyServerTest, RefusedPutsAreAnsweredBeforeTheirBodyIsRead) {
  Start();
  for (const std::string& auth : {std::string(), std::string("Authorization: Bearer nonsense\r\n"),
                                 std::string("Authorization: Bearer r-secret\r\n")}) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    // The header only: a body that never comes.
    ASSERT_TRUE(c.Send(absl::StrCat("PUT ", Path(9), " HTTP/1.1\r\nHost: x\r\n", auth,
                                    "Content-Length: 1000000\r\n\r\n")));
    bool closed = false;
    const std::string reply = c.ReadAll(&closed);
    EXPECT_TRUE(absl::StartsWith(reply, auth.empty() || absl::StrContains(auth, "nonsense")
                                            ? "HTTP/1.1 401"
                                            : "HTTP/1.1 403"))
        << reply;
    EXPECT_TRUE(closed) << "the unread body would be taken for the next request";
  }
  EXPECT_EQ(server_->load().peak_buffered_body_bytes, 0u);
  // A writer's PUT of the same shape waits for its body and is stored.
  RawConnection w(server_->port());
  const std::string data = Data(9);
  ASSERT_TRUE(w.Send(absl::StrCat("PUT ", Path(9),
                                  " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer w-secret\r\n"
                                  "Content-Length: ",
                                  data.size(), "\r\n\r\n")));
  ASSERT_TRUE(w.Send(data));
  EXPECT_TRUE(absl::StartsWith(w.ReadUntil("\r\n\r\n"), "HTTP/1.1 200"));
  EXPECT_EQ(Do("GET", Path(9)).body, data);
}

TEST_F(ProxyServerTest, BlocksAreImmutable) {
  Start();
  ASSERT_EQ(Do("PUT", Path(7), "w-secret", "first").status, 200);
  EXPECT_EQ(Do("PUT", Path(7), "w-secret", "first").status, 200);
  HttpResponse other = Do("PUT", Path(7), "w-secret", "second");
  EXPECT_EQ(other.status, 409);
  EXPECT_EQ(Do("GET", Path(7)).body, "first");
}

TEST_F(ProxyServerTest, DirtyBlocksFillingTheQuotaGet503) {
  // Nothing flushes while the store is down.
  Start([](ProxyOptions& o) { o.cache.quota_bytes = 4 * 10000; });
  store_->FailNext(Op::kPut, absl::UnavailableError("store down"), FaultInjectingStore::kForever);
  for (uint64_t id = 10; id < 14; ++id) {
    ASSERT_EQ(Do("PUT", Path(id), "w-secret", Data(id)).status, 200);
  }
  HttpResponse full = Do("PUT", Path(14), "w-secret", Data(14));
  EXPECT_EQ(full.status, 503);
  EXPECT_TRUE(absl::StrContains(full.body, "<Code>SlowDown</Code>")) << full.body;
  EXPECT_EQ(full.Header("Retry-After"), "1");
  EXPECT_EQ(Do("GET", "/healthz", "").status, 503);
  EXPECT_EQ(server_->cache().Gauges().cached_blocks, 4u);
  // The store comes back: the flush catches up and writes are accepted again.
  store_->ClearFaults();
  ASSERT_TRUE(server_->writeback()->WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(Do("PUT", Path(14), "w-secret", Data(14)).status, 200);
  for (uint64_t id = 10; id < 14; ++id) EXPECT_TRUE(InStore(id));
}

TEST_F(ProxyServerTest, SixtyFourConcurrentClients) {
  Start();
  constexpr int kClients = 64, kBlocksEach = 4;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::unique_ptr<HttpClient> client = HttpClient::Create();
      for (int b = 0; b < kBlocksEach; ++b) {
        const uint64_t id = 1000 + c * kBlocksEach + b;
        const std::string data = Data(id, 64 << 10);
        HttpRequest put;
        put.method = "PUT";
        put.url = absl::StrCat("http://127.0.0.1:", server_->port(), Path(id));
        put.headers = {{"Authorization", "Bearer w-secret"},
                       {"x-amz-checksum-crc32c", CrcHeader(data)}};
        put.body = data;
        absl::StatusOr<HttpResponse> r = client->Do(put);
        if (!r.ok() || r->status != 200) failures.fetch_add(1);
        HttpRequest get;
        get.url = put.url;
        get.headers = {{"Authorization", "Bearer r-secret"}};
        r = client->Do(get);
        if (!r.ok() || r->status != 200 || r->body != data) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(server_->writeback()->WaitIdle(absl::Seconds(30)));
  for (int id = 1000; id < 1000 + kClients * kBlocksEach; ++id) {
    EXPECT_EQ(*slow_->base().Get(blockstore::BlockKey(id)), Data(id, 64 << 10));
  }
}

TEST_F(ProxyServerTest, ConcurrentMissesMakeOneStoreRequest) {
  Start();
  const std::string data = Data(20, 1 << 20);
  ASSERT_OK(slow_->base().Put(blockstore::BlockKey(20), data));
  slow_->delay_ = absl::Milliseconds(300);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      std::unique_ptr<HttpClient> client = HttpClient::Create();
      HttpRequest get;
      get.url = absl::StrCat("http://127.0.0.1:", server_->port(), Path(20));
      get.headers = {{"Authorization", "Bearer r-secret"}};
      absl::StatusOr<HttpResponse> r = client->Do(get);
      if (r.ok() && r->status == 200 && r->body == data) good.fetch_add(1);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(good.load(), 16);
  EXPECT_EQ(slow_->gets_.load(), 1);
  // Cached now: served without the store.
  EXPECT_EQ(Do("GET", Path(20), "r-secret").body, data);
  EXPECT_EQ(slow_->gets_.load(), 1);
  EXPECT_GE(server_->metrics().hits.load(), 1u);
}

TEST_F(ProxyServerTest, CorruptCachedCopyIsRefetchedNeverServed) {
  Start();
  const std::string data = Data(21, 50000);
  ASSERT_EQ(Do("PUT", Path(21), "w-secret", data).status, 200);
  ASSERT_TRUE(server_->writeback()->WaitIdle(absl::Seconds(10)));
  {
    std::fstream f(absl::StrCat(dir_.path(), "/cache/", kVolume, "/", blockstore::BlockKey(21)),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12345);
    f.put(static_cast<char>(data[12345] ^ 0x55));
  }
  const int gets_before = slow_->gets_.load();
  HttpResponse get = Do("GET", Path(21), "r-secret");
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, data);
  EXPECT_EQ(slow_->gets_.load(), gets_before + 1);
  EXPECT_EQ(server_->metrics().corrupt_blocks.load(), 1u);
  EXPECT_EQ(Do("GET", Path(21), "r-secret").body, data);
  EXPECT_EQ(slow_->gets_.load(), gets_before + 1);  // the fresh copy is cached
}

TEST_F(ProxyServerTest, ReadThroughOfAMissingBlockIs404) {
  Start();
  HttpResponse r = Do("GET", Path(22), "r-secret");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(absl::StrContains(r.body, "NoSuchKey"));
}

TEST_F(ProxyServerTest, StoreFailuresAreTheProxysNotTheClientsToken) {
  Start();
  ASSERT_OK(slow_->base().Put(blockstore::BlockKey(25), "x"));
  store_->FailNext(Op::kGet, absl::PermissionDeniedError("store says: bad key"), 1);
  HttpResponse r = Do("GET", Path(25), "r-secret");
  EXPECT_EQ(r.status, 502);
  EXPECT_TRUE(absl::StrContains(r.body, "BadGateway")) << r.body;
  store_->FailNext(Op::kGet, absl::UnavailableError("store down"), 1);
  r = Do("GET", Path(25), "r-secret");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.Header("Retry-After"), "1");
  r = Do("GET", Path(25), "r-secret");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "x");
}

TEST_F(ProxyServerTest, WriteThroughAcknowledgesAfterTheStore) {
  Start([](ProxyOptions& o) { o.writeback = false; });
  EXPECT_EQ(server_->writeback(), nullptr);
  const std::string data = Data(23);
  HttpResponse put = Do("PUT", Path(23), "w-secret", data);
  ASSERT_EQ(put.status, 200);
  EXPECT_TRUE(put.Header("x-nighfs-holder").empty());
  EXPECT_EQ(*slow_->base().Get(blockstore::BlockKey(23)), data);
  store_->FailNext(Op::kPut, absl::UnavailableError("store down"), FaultInjectingStore::kForever);
  HttpResponse down = Do("PUT", Path(24), "w-secret", Data(24));
  EXPECT_EQ(down.status, 503);
  EXPECT_FALSE(InStore(24));
}

TEST_F(ProxyServerTest, UnflushedBlocksAreFlushedAfterARestart) {
  Start([](ProxyOptions& o) { o.writeback_options.delay = absl::Seconds(60); });
  for (uint64_t id = 30; id < 35; ++id) ASSERT_EQ(Do("PUT", Path(id), "w-secret", Data(id)).status, 200);
  server_->Stop();
  server_.reset();
  EXPECT_EQ(store_->calls(Op::kPut), 0);
  Start();  // no client has to come back for the flush: the journal knows the volume
  ASSERT_TRUE(server_->writeback()->WaitIdle(absl::Seconds(10)));
  for (uint64_t id = 30; id < 35; ++id) {
    EXPECT_EQ(*slow_->base().Get(blockstore::BlockKey(id)), Data(id));
  }
  EXPECT_EQ(server_->reconcile_report().dirty_blocks, 5u);
}

TEST_F(ProxyServerTest, ServesTls) {
  const std::string tls = dir_.path() + "/tls";
  ASSERT_OK(WriteLabTls(tls));
  Start([&](ProxyOptions& o) {
    o.http.tls_cert_file = tls + "/" + kLabServerCert;
    o.http.tls_key_file = tls + "/" + kLabServerKey;
  });
  HttpClientOptions co;
  co.ca_file = tls + "/" + kLabCaCert;
  std::unique_ptr<HttpClient> client = HttpClient::Create(co);
  const std::string data = Data(40);
  HttpRequest put;
  put.method = "PUT";
  put.url = absl::StrCat("https://localhost:", server_->port(), Path(40));
  put.headers = {{"Authorization", "Bearer w-secret"}};
  put.body = data;
  absl::StatusOr<HttpResponse> r = client->Do(put);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  HttpRequest get;
  get.url = put.url;
  get.headers = {{"Authorization", "Bearer r-secret"}};
  r = client->Do(get);
  ASSERT_OK(r);
  EXPECT_EQ(r->body, data);
  // Plain HTTP to the TLS port never reaches a handler.
  HttpRequest plain = get;
  plain.url = absl::StrCat("http://127.0.0.1:", server_->port(), Path(40));
  r = client_->Do(plain);
  EXPECT_TRUE(!r.ok() || r->status == 400);
}

}  // namespace
}  // namespace nighfs::proxy
