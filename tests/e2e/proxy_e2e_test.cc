// End-to-end tests of nighfs-proxy (issue 12), with real processes on loopback: nighfs-meta,
// s3rver as the object store, nighfs-proxy in front of it holding the store credentials, FUSE
// mounts of mount.nighfs going through the proxy (no store credentials) or direct to s3rver.
//
// What every case holds to: a close() that returned 0 through the proxy is a promise. The bytes
// reach the store (checked by listing s3rver and by reading them back from a direct mount after
// the proxy is stopped, so no proxy can serve them), across kill -9, a store outage, a quota
// smaller than the data, and never a wrong byte (a corrupted cache file is caught).
//
// Needs root, /dev/fuse and s3rver (scripts/setup.sh). Outside CI a case skips when one is
// missing; in CI (CI=true) it fails instead.
//
// NIGHFS_PROXY_E2E_BIG_MIB (default 128) sizes the kill -9 case; 1024 is the 1 GiB,
// too slow for the fast suite on two cores (see KillDuringSyncWriteLosesNoAcknowledgedFile).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/fs_checks.h"
#include "tests/testing/emulators.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;

constexpr uint32_t kBlock = 1u << 20;
constexpr char kBucket[] = "nighfs-proxy";
constexpr char kVolume[] = "vol";
// Short backoff so a case takes seconds once a proxy or the store is back.
constexpr char kMountOptions[] = "attr_timeout=1,entry_timeout=1,retry_max=0.5,flush_timeout=90";

size_t EnvSize(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  size_t n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) && n > 0 ? n : fallback;
}

// The sum of each metric's samples, by name (labels dropped): Prometheus text format 0.0.4.
std::map<std::string, double> ParseMetrics(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const size_t name_end = line.find_first_of("{ ");
    const size_t value_at = line.rfind(' ');
    if (name_end == absl::string_view::npos || value_at == absl::string_view::npos) continue;
    double v = 0;
    if (!absl::SimpleAtod(line.substr(value_at + 1), &v)) continue;
    out[std::string(line.substr(0, name_end))] += v;
  }
  return out;
}

// A metric's value, -1 when the proxy does not report it.
double Get(const std::map<std::string, double>& metrics, const std::string& name) {
  auto it = metrics.find(name);
  return it == metrics.end() ? -1 : it->second;
}

// A file written through a mount, and whether its close() acknowledged it.
struct Written {
  std::string name;
  std::string data;
  bool acked = false;
};

class ProxyE2eTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(StartS3rver(kBucket, &s3rver_));
    if (IsSkipped()) return;
    creds_ = S3rverCredentialsFile();
    ASSERT_NO_FATAL_FAILURE(StartMeta({"--credentials", creds_, "--gc-grace", "1"}));
    ASSERT_OK(CreateVolume(meta_->address(), kVolume, StoreUrl(s3rver_->url()), kBlock))
        << meta_->log();
    write_token_ = TokenSecret(kVolume, "write");
    HttpClientOptions o;
    o.ca_file = LabCaFile();
    http_ = HttpClient::Create(o);
  }

  void TearDown() override {
    mounts_.clear();  // mounts first: they talk to the proxy until they exit
    proxy_.reset();
    ClusterTest::TearDown();
    s3rver_.reset();
  }

  static std::string StoreUrl(const std::string& endpoint, const std::string& prefix = kVolume) {
    return absl::StrCat("s3://", kBucket, "/", prefix, "?endpoint=", endpoint,
                        "&region=", kS3rverRegion);
  }

  // Starts nighfs-proxy with the store credentials and `args`.
  void StartProxy(std::vector<std::string> args = {}) {
    args.push_back("--creds-file");
    args.push_back(creds_);
    auto p = ProxyServer::Start(meta_->address(), root_ + "/proxy", std::move(args));
    ASSERT_OK(p);
    proxy_ = std::move(*p);
  }

  FuseMount* MountViaProxy(const std::string& dir) {
    return MountVolume(kVolume, dir, absl::StrCat(proxy_->mount_option(), ",", kMountOptions));
  }
  FuseMount* MountDirect(const std::string& dir) {
    return MountVolume(kVolume, dir, absl::StrCat("credentials=", creds_, ",", kMountOptions));
  }

  // A fresh token's secret for `volume` ("read" or "write").
  std::string TokenSecret(const std::string& volume, const std::string& access) {
    const std::string file = absl::StrCat(root_, "/", volume, ".", access, ".", ++tokens_, ".token");
    auto id = CreateTokenFile(meta_->address(), volume, access, "", file);
    EXPECT_OK(id);
    return std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(file)));
  }

  absl::StatusOr<HttpResponse> ProxyHttp(const std::string& method, const std::string& path,
                                         const std::string& token, absl::string_view body = {},
                                         HttpHeaders headers = {}) {
    HttpRequest r;
    r.method = method;
    r.url = proxy_->base_url() + path;
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    r.headers = std::move(headers);
    r.body = std::string_view(body.data(), body.size());
    r.timeout = absl::Seconds(30);
    return http_->Do(r);
  }

  // PUT of a block through the proxy, with the checksum header the mount sends (base64 of the
  // big-endian CRC32C).
  absl::StatusOr<HttpResponse> PutBlock(const std::string& volume, const std::string& key,
                                        const std::string& data, const std::string& token) {
    const uint32_t crc = Crc32c(data);
    const char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                        static_cast<char>(crc >> 8), static_cast<char>(crc)};
    return ProxyHttp("PUT", absl::StrCat("/", volume, "/", key), token, data,
                     {{"x-amz-checksum-crc32c", Base64Encode(std::string_view(be, 4))}});
  }

  std::map<std::string, double> Metrics() {
    auto r = ProxyHttp("GET", "/metrics", "");
    if (!r.ok() || r->status != 200) return {};
    return ParseMetrics(r->body);
  }
  double Metric(const std::string& name) { return Get(Metrics(), name); }

  // Waits until the proxy says nothing is left to flush.
  bool WaitFlushed(absl::Duration timeout) {
    return WaitFor([&] { return Metric("nighfs_proxy_dirty_blocks") == 0; }, timeout);
  }

  std::unique_ptr<blockstore::BlockStore> OpenStore() {
    blockstore::StoreCredentials c;
    c.access_key_id = kS3rverAccessKey;
    c.secret_access_key = kS3rverSecret;
    auto s = blockstore::OpenBlockStore(StoreUrl(s3rver_->url()), c);
    EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Block objects of the volume in s3rver; -1 if it cannot be listed.
  int64_t StoreBlocks() {
    auto store = OpenStore();
    if (store == nullptr) return -1;
    int64_t n = 0;
    std::string token;
    do {
      auto page = store->List("blk/", token);
      if (!page.ok()) return -1;
      n += static_cast<int64_t>(page->objects.size());
      token = page->next_token;
    } while (!token.empty());
    return n;
  }

  // Block files in the proxy's cache folder (DIR/<volume id>/blk/...), temporary files aside.
  std::vector<stdfs::path> CacheFiles() {
    std::vector<stdfs::path> out;
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(proxy_->disk_folder(), ec);
         it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      const std::string p = it->path().string();
      if (it->is_regular_file() && p.find("/blk/") != std::string::npos &&
          it->path().filename().string().find("tmp") == std::string::npos) {
        out.push_back(it->path());
      }
    }
    return out;
  }

  // Stops the proxy, mounts the volume direct (store credentials, no proxy to follow a
  // holder to) and checks every acknowledged file byte for byte: the store has them all.
  void ExpectAllInStore(const std::vector<Written>& files, const std::string& dir = "verify") {
    ASSERT_OK(proxy_->Stop());
    FuseMount* direct = MountDirect(dir);
    ASSERT_NE(direct, nullptr);
    for (const auto& f : files) {
      if (!f.acked) continue;
      EXPECT_TRUE(ReadFile(direct->path() + "/" + f.name) == f.data)
          << f.name << " differs or is missing in the store\n"
          << direct->log();
    }
  }

  std::string creds_;
  std::string write_token_;
  int tokens_ = 0;
  std::unique_ptr<S3rver> s3rver_;
  std::unique_ptr<ProxyServer> proxy_;
  std::unique_ptr<HttpClient> http_;
};

// nighfs-meta's default --inline-max-bytes: files this small are kept in the block map and
// never reach a proxy or the store.
constexpr size_t kInlineMax = 4096;

// The expected number of block objects of files of these sizes.
int64_t BlocksOf(const std::vector<Written>& files) {
  int64_t n = 0;
  for (const auto& f : files) {
    if (f.data.size() > kInlineMax) {
      n += static_cast<int64_t>((f.data.size() + kBlock - 1) / kBlock);
    }
  }
  return n;
}

TEST_F(ProxyE2eTest, FilesRoundTripThroughProxy) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  auto ping = ProxyHttp("GET", "/ping", "");
  ASSERT_OK(ping);
  EXPECT_EQ(ping->status, 200);
  EXPECT_EQ(ping->body, "pong\n");
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  std::vector<Written> files = {{"one_byte", "x"},
                                {"small", RandomBytes(4097, 1)},
                                {"block", RandomBytes(kBlock, 2)},
                                {"multi", RandomBytes(3 * kBlock + 5, 3)},
                                {"stream", RandomBytes(5 * kBlock + 123, 4)}};
  ASSERT_EQ(::mkdir((m->path() + "/sub").c_str(), 0755), 0);
  for (auto& f : files) {
    f.acked = WriteFile(m->path() + "/" + f.name, f.data);
    EXPECT_TRUE(f.acked) << f.name << ": " << std::strerror(errno);
  }
  Written nested{"sub/nested", RandomBytes(2 * kBlock + 1, 5)};
  nested.acked = WriteFile(m->path() + "/" + nested.name, nested.data);
  EXPECT_TRUE(nested.acked);
  files.push_back(nested);
  for (const auto& f : files) EXPECT_TRUE(ReadFile(m->path() + "/" + f.name) == f.data) << f.name;
  // A second mount through the proxy (an empty memory cache) reads what the proxy holds.
  FuseMount* m2 = MountViaProxy("mnt2");
  ASSERT_NE(m2, nullptr);
  for (const auto& f : files) EXPECT_TRUE(ReadFile(m2->path() + "/" + f.name) == f.data) << f.name;

  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(30))) << m->log();
  ASSERT_TRUE(WaitFlushed(absl::Seconds(30))) << proxy_->log();
  const auto metrics = Metrics();
  for (const char* name :
       {"nighfs_proxy_hits_total", "nighfs_proxy_misses_total", "nighfs_proxy_bytes_in_total",
        "nighfs_proxy_bytes_out_total", "nighfs_proxy_dirty_bytes", "nighfs_proxy_cached_bytes",
        "nighfs_proxy_flushed_blocks_total", "nighfs_proxy_flush_errors_total",
        "nighfs_proxy_evictions_total", "nighfs_proxy_request_seconds_count"}) {
    EXPECT_TRUE(metrics.count(name)) << "no metric " << name;
  }
  int64_t total_bytes = 0;
  for (const auto& f : files) {
    if (f.data.size() > kInlineMax) total_bytes += static_cast<int64_t>(f.data.size());
  }
  EXPECT_GE(Get(metrics, "nighfs_proxy_bytes_in_total"), total_bytes);
  EXPECT_EQ(Get(metrics, "nighfs_proxy_dirty_bytes"), 0);
  EXPECT_EQ(StoreBlocks(), BlocksOf(files));
  EXPECT_EQ(Get(metrics, "nighfs_proxy_flushed_blocks_total"), BlocksOf(files));
  ExpectAllInStore(files);
}

// kill -9 of a --sync proxy while a stream of files is written through it, then a restart on
// the same folders: every file whose close() returned 0 is flushed after the restart and reads
// back byte-exact from the store. 128 MiB by default: the 1 GiB (set
// NIGHFS_PROXY_E2E_BIG_MIB=1024) takes minutes here (FUSE + TLS + s3rver on two shared
// cores), and the crash window it tests is the same: the kill lands while blocks are in
// flight, after many were acknowledged.
TEST_F(ProxyE2eTest, KillDuringSyncWriteLosesNoAcknowledgedFile) {
  // --writeback-delay: acknowledged blocks wait on the proxy's disk for a while, so the kill
  // surely finds some unflushed that only the journal can bring back.
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--sync", "--writeback-delay", "3s"}));
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  const size_t total_mib = EnvSize("NIGHFS_PROXY_E2E_BIG_MIB", 128);
  constexpr size_t kFileMiB = 8;
  std::vector<Written> files(std::max<size_t>(total_mib / kFileMiB, 4));
  for (size_t i = 0; i < files.size(); ++i) {
    files[i].name = absl::StrCat("big", i);
    files[i].data = RandomBytes(kFileMiB * kBlock, static_cast<uint32_t>(100 + i));
  }
  std::atomic<size_t> acked{0};
  std::thread writer([&] {
    for (auto& f : files) {
      f.acked = WriteFile(m->path() + "/" + f.name, f.data);
      if (f.acked) ++acked;
    }
  });
  // Kill once a third is acknowledged: the writer is in the middle of the next file.
  const bool third = WaitFor([&] { return acked.load() >= files.size() / 3; }, absl::Seconds(120));
  EXPECT_TRUE(third) << m->log() << proxy_->log();
  const size_t acked_before_kill = acked.load();
  const double dirty_at_kill = Metric("nighfs_proxy_dirty_blocks");
  ASSERT_OK(proxy_->Kill());
  EXPECT_GT(dirty_at_kill, 0) << "nothing unflushed at the kill: the case proves nothing";
  absl::SleepFor(absl::Milliseconds(500));
  ASSERT_OK(proxy_->Restart()) << proxy_->log();
  writer.join();
  EXPECT_LT(acked_before_kill, files.size()) << "the kill came after the last write";
  size_t not_acked = 0;
  for (const auto& f : files) not_acked += f.acked ? 0 : 1;
  // A close that failed promised nothing; the mount still keeps and retries it.
  RecordProperty("not_acknowledged", static_cast<int>(not_acked));
  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(120))) << m->log();
  ASSERT_TRUE(WaitFlushed(absl::Seconds(120))) << proxy_->log();
  EXPECT_EQ(proxy_->log().find("LOST"), std::string::npos) << proxy_->log();
  EXPECT_GE(StoreBlocks(), static_cast<int64_t>((files.size() - not_acked) * kFileMiB));
  ExpectAllInStore(files);
}

// A cache quota far below the working set: writes are acknowledged (back-pressure at worst,
// never an error), clean blocks are evicted, and every file reads back, cached or not.
TEST_F(ProxyE2eTest, QuotaSmallerThanWorkingSetEvictsWithoutError) {
  constexpr int kFiles = 24;
  constexpr uint64_t kQuota = 8 * kBlock;
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--disk-quota", "8M"}));
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  std::vector<Written> files(kFiles);
  for (int i = 0; i < kFiles; ++i) {
    files[i].name = absl::StrCat("f", i);
    files[i].data = RandomBytes(kBlock, static_cast<uint32_t>(200 + i));
    files[i].acked = WriteFile(m->path() + "/" + files[i].name, files[i].data);
    EXPECT_TRUE(files[i].acked) << files[i].name << ": " << std::strerror(errno);
  }
  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(60))) << m->log();
  ASSERT_TRUE(WaitFlushed(absl::Seconds(60))) << proxy_->log();
  // Reading everything again through a fresh mount brings evicted blocks back through the
  // cache, evicting others.
  FuseMount* m2 = MountViaProxy("mnt2");
  ASSERT_NE(m2, nullptr);
  for (const auto& f : files) EXPECT_TRUE(ReadFile(m2->path() + "/" + f.name) == f.data) << f.name;
  const auto metrics = Metrics();
  EXPECT_GT(Get(metrics, "nighfs_proxy_evictions_total"), 0);
  EXPECT_LE(Get(metrics, "nighfs_proxy_cached_bytes"), kQuota);
  EXPECT_GE(Get(metrics, "nighfs_proxy_cached_bytes"), 0);
  uint64_t on_disk = 0;
  for (const auto& p : CacheFiles()) on_disk += stdfs::file_size(p);
  EXPECT_LE(on_disk, kQuota);
  EXPECT_EQ(StoreBlocks(), kFiles);
  ExpectAllInStore(files);
}

// The object store goes away for 30 s: writes through the proxy are still acknowledged at once
// (they wait on the proxy's disk), and the flush catches up when the store is back.
TEST_F(ProxyE2eTest, StoreOutageWritesAcknowledgedFlushCatchesUp) {
  const absl::Duration outage = absl::Seconds(EnvSize("NIGHFS_PROXY_E2E_OUTAGE_S", 30));
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  // Over the metadata server's inline limit (4 KiB): a block PUT through the proxy.
  ASSERT_TRUE(WriteFile(m->path() + "/warmup", std::string(8192, 'w')));
  ASSERT_TRUE(WaitFlushed(absl::Seconds(30))) << proxy_->log();

  const absl::Time down = absl::Now();
  ASSERT_OK(s3rver_->Stop());
  std::vector<Written> files;
  for (int i = 0; i < 6; ++i) {
    Written f{absl::StrCat("during", i), RandomBytes(kBlock + 1000 * i, 300 + i)};
    const absl::Time start = absl::Now();
    f.acked = WriteFile(m->path() + "/" + f.name, f.data);
    EXPECT_TRUE(f.acked) << f.name << ": " << std::strerror(errno);
    EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "close waited for the store";
    files.push_back(std::move(f));
  }
  EXPECT_GE(Metric("nighfs_proxy_dirty_blocks"), BlocksOf(files));
  absl::SleepFor(outage - (absl::Now() - down));
  EXPECT_GE(Metric("nighfs_proxy_dirty_blocks"), BlocksOf(files)) << "flushed with no store?";
  ASSERT_OK(s3rver_->Restart());
  ASSERT_TRUE(WaitFlushed(absl::Seconds(90))) << proxy_->log();
  EXPECT_EQ(StoreBlocks(), BlocksOf(files) + 1);
  ExpectAllInStore(files);
}

// A block the proxy holds but has not flushed (--writeback-delay) is read by a mount that goes
// direct to the store: it follows the block's holder to the proxy.
TEST_F(ProxyE2eTest, DirectMountReadsBlockNotYetFlushed) {
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--writeback-delay", "600s"}));
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  const std::string data = RandomBytes(2 * kBlock + 77, 400);
  ASSERT_TRUE(WriteFile(m->path() + "/held", data));
  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(30))) << m->log();
  EXPECT_EQ(StoreBlocks(), 0);
  FuseMount* direct = MountDirect("direct");
  ASSERT_NE(direct, nullptr);
  // A small random read asks the holder for the checksum range it covers, not the block.
  {
    const double out_before = Metric("nighfs_proxy_bytes_out_total");
    const int fd = ::open((direct->path() + "/held").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::string got(5000, '\0');
    const uint64_t off = kBlock + kBlock / 2 + 123;
    EXPECT_EQ(::pread(fd, got.data(), got.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(got.size()));
    ::close(fd);
    EXPECT_TRUE(got == data.substr(off, got.size())) << direct->log();
    EXPECT_LE(Metric("nighfs_proxy_bytes_out_total") - out_before, 256 << 10);
  }
  EXPECT_TRUE(ReadFile(direct->path() + "/held") == data) << direct->log();
  EXPECT_EQ(StoreBlocks(), 0) << "the proxy flushed: this case proved nothing";
  EXPECT_GE(Metric("nighfs_proxy_dirty_blocks"), 3);
}

// A file written and deleted before its blocks were flushed never reaches the store (the proxy
// asks the metadata server which blocks died); a file kept beside it does.
TEST_F(ProxyE2eTest, WrittenAndDeletedBeforeFlushNeverReachesStore) {
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--writeback-delay", "4s"}));
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  const std::string doomed = RandomBytes(3 * kBlock, 500);
  const std::string kept = RandomBytes(2 * kBlock, 501);
  ASSERT_TRUE(WriteFile(m->path() + "/doomed", doomed));
  ASSERT_TRUE(WriteFile(m->path() + "/kept", kept));
  ASSERT_EQ(::unlink((m->path() + "/doomed").c_str()), 0);
  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(30))) << m->log();
  EXPECT_EQ(StoreBlocks(), 0) << "flushed before --writeback-delay";
  ASSERT_TRUE(WaitFlushed(absl::Seconds(60))) << proxy_->log();
  EXPECT_EQ(StoreBlocks(), 2);
  EXPECT_GE(Metric("nighfs_proxy_dead_blocks_dropped_total"), 3);
  // And no leak later: garbage collection finds nothing of `doomed` to delete either.
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(StoreBlocks(), 2);
  ExpectAllInStore({{"kept", kept, true}});
}

// 64 clients at once: each PUTs its blocks and reads them and its neighbour's back; then all
// of them miss one block that only the store has, which costs one store request. A mount's
// 64 threads write and read files through the proxy meanwhile.
TEST_F(ProxyE2eTest, SixtyFourConcurrentClients) {
  // The volume "vol64" reaches s3rver through a counting HTTP proxy.
  auto counter = FaultProxy::Start(s3rver_->url());
  ASSERT_OK(counter);
  ASSERT_OK(CreateVolume(meta_->address(), "vol64", StoreUrl((*counter)->url(), "vol64"), kBlock));
  const std::string token64 = TokenSecret("vol64", "write");
  // No flush during the case: what clients read back comes from the cache.
  ASSERT_NO_FATAL_FAILURE(StartProxy({"--writeback-delay", "600s"}));
  constexpr int kClients = 64;
  constexpr int kBlocksEach = 4;
  auto key = [](int client, int i) {
    return blockstore::BlockKey((uint64_t{1} << 40) + client * kBlocksEach + i);
  };
  auto block = [](int client, int i) {
    return RandomBytes(64 << 10, static_cast<uint32_t>(1000 + client * kBlocksEach + i));
  };
  auto url = [](const std::string& k) { return absl::StrCat("/vol64/", k); };
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kClients);     // per HTTP client
  std::vector<std::string> fs_errors(kClients);  // per mount thread
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  {
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        for (int i = 0; i < kBlocksEach; ++i) {
          auto r = PutBlock("vol64", key(c, i), block(c, i), token64);
          if (!r.ok() || r->status != 200) {
            ++failures;
            errors[c] = r.ok() ? absl::StrCat("PUT ", r->status, " ", r->body) : r.status().ToString();
            return;
          }
        }
        for (int i = 0; i < kBlocksEach; ++i) {
          const int other = (c + 1) % kClients;
          auto r = ProxyHttp("GET", url(key(c, i)), token64);
          auto o = ProxyHttp("GET", url(key(other, i)), token64);
          // The neighbour may not have written it yet: 404 then, never wrong bytes.
          if (!r.ok() || r->status != 200 || r->body != block(c, i) || !o.ok() ||
              (o->status == 200 && o->body != block(other, i)) ||
              (o->status != 200 && o->status != 404)) {
            ++failures;
            errors[c] = "GET mismatch";
            return;
          }
        }
      });
    }
    // 64 threads of a mount meanwhile.
    std::vector<std::thread> fs_threads;
    for (int t = 0; t < kClients; ++t) {
      fs_threads.emplace_back([&, t] {
        const std::string data = RandomBytes(96 << 10, static_cast<uint32_t>(5000 + t));
        const std::string path = absl::StrCat(m->path(), "/t", t);
        if (!WriteFile(path, data) || ReadFile(path) != data) {
          ++failures;
          fs_errors[t] = absl::StrCat("t", t, ": write or read back failed");
        }
      });
    }
    for (auto& t : fs_threads) t.join();
    for (auto& t : clients) t.join();
  }
  EXPECT_EQ(failures.load(), 0) << absl::StrJoin(errors, "\n") << absl::StrJoin(fs_errors, "\n");

  // One block only the store has, missed by 64 clients at once.
  const std::string cold_key = blockstore::BlockKey((uint64_t{1} << 41) + 7);
  const std::string cold = RandomBytes(kBlock, 77);
  {
    blockstore::StoreCredentials sc;
    sc.access_key_id = kS3rverAccessKey;
    sc.secret_access_key = kS3rverSecret;
    auto store = blockstore::OpenBlockStore(StoreUrl(s3rver_->url(), "vol64"), sc);
    ASSERT_OK(store);
    ASSERT_OK((*store)->Put(cold_key, cold));
  }
  (*counter)->ResetCounters();
  std::atomic<int> wrong{0};
  {
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        auto r = ProxyHttp("GET", url(cold_key), token64);
        if (!r.ok() || r->status != 200 || r->body != cold) ++wrong;
      });
    }
    for (auto& t : clients) t.join();
  }
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ((*counter)->requests_seen(), 1) << "concurrent misses of one block: one store request";
}

// A cached block whose file is corrupted on the proxy's disk is detected by its CRC32C, never
// served, and fetched again from the store.
TEST_F(ProxyE2eTest, CorruptedCacheFileIsDetectedAndRefetched) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  FuseMount* m = MountViaProxy("mnt");
  ASSERT_NE(m, nullptr);
  const std::string data = RandomBytes(kBlock, 600);
  ASSERT_TRUE(WriteFile(m->path() + "/victim", data));
  ASSERT_TRUE(WaitMountStored(*m, absl::Seconds(30))) << m->log();
  ASSERT_TRUE(WaitFlushed(absl::Seconds(30))) << proxy_->log();
  ASSERT_EQ(StoreBlocks(), 1);
  const std::vector<stdfs::path> cached = CacheFiles();
  ASSERT_EQ(cached.size(), 1u) << "expected one cached block under " << proxy_->disk_folder();
  ASSERT_EQ(stdfs::file_size(cached[0]), data.size());
  // DIR/<volume id>/blk/..: the key is the path below the volume's folder.
  const std::string path = cached[0].string();
  const std::string key = path.substr(path.find("/blk/") + 1);
  {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const char flipped = static_cast<char>(data[12345] ^ 0x5a);
    ASSERT_EQ(::pwrite(fd, &flipped, 1, 12345), 1);
    ::close(fd);
  }
  const double corrupt_before = Metric("nighfs_proxy_corrupt_blocks_total");
  auto r = ProxyHttp("GET", absl::StrCat("/", kVolume, "/", key), write_token_);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(r->body == data) << "a corrupt cached copy was served";
  EXPECT_EQ(Metric("nighfs_proxy_corrupt_blocks_total"), corrupt_before + 1);
  // The copy on disk is good again (re-fetched and cached), and a fresh mount reads it.
  EXPECT_TRUE(WaitFor([&] { return ReadFileOrEmpty(path) == data; }, absl::Seconds(10)));
  FuseMount* m2 = MountViaProxy("mnt2");
  ASSERT_NE(m2, nullptr);
  EXPECT_TRUE(ReadFile(m2->path() + "/victim") == data);
}

// No anonymous block request, no write with a READ token, no key outside the block-key
// syntax: each refused with its status, nothing stored.
TEST_F(ProxyE2eTest, UnauthenticatedAndReadTokenWritesAreRefused) {
  ASSERT_NO_FATAL_FAILURE(StartProxy());
  const std::string read_token = TokenSecret(kVolume, "read");
  const std::string key = blockstore::BlockKey(42);
  const std::string data = RandomBytes(4096, 700);
  const std::string path = absl::StrCat("/", kVolume, "/", key);

  auto anon_put = ProxyHttp("PUT", path, "", data);
  ASSERT_OK(anon_put);
  EXPECT_EQ(anon_put->status, 401) << anon_put->body;
  auto anon_get = ProxyHttp("GET", path, "");
  ASSERT_OK(anon_get);
  EXPECT_EQ(anon_get->status, 401);
  auto bad = PutBlock(kVolume, key, data, "not-a-token");
  ASSERT_OK(bad);
  EXPECT_EQ(bad->status, 401);
  auto read_put = PutBlock(kVolume, key, data, read_token);
  ASSERT_OK(read_put);
  EXPECT_EQ(read_put->status, 403) << read_put->body;
  auto read_delete = ProxyHttp("DELETE", path, read_token);
  ASSERT_OK(read_delete);
  EXPECT_EQ(read_delete->status, 403);
  // Keys outside the block-key syntax (curl would squash a literal "..", so: an empty segment,
  // a name outside blk/, a reserved temporary name).
  for (const char* bad_key : {"blk//x", "etc/passwd", "blk/.nighfs-tmp-1"}) {
    auto r = ProxyHttp("PUT", absl::StrCat("/", kVolume, "/", bad_key), write_token_, data);
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 400) << bad_key << ": " << r->body;
  }
  auto mismatch = ProxyHttp("PUT", path, write_token_, data,
                            {{"x-amz-checksum-crc32c", "AAAAAA=="}});
  ASSERT_OK(mismatch);
  EXPECT_EQ(mismatch->status, 400);
  EXPECT_NE(mismatch->body.find("BadDigest"), std::string::npos) << mismatch->body;
  // Nothing of the refused requests was kept.
  auto read_get = ProxyHttp("GET", path, read_token);
  ASSERT_OK(read_get);
  EXPECT_EQ(read_get->status, 404);
  EXPECT_TRUE(CacheFiles().empty());
  EXPECT_EQ(StoreBlocks(), 0);
  // The same PUT with the write token is accepted, and the READ token may read it.
  auto ok = PutBlock(kVolume, key, data, write_token_);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto read_ok = ProxyHttp("GET", path, read_token);
  ASSERT_OK(read_ok);
  EXPECT_EQ(read_ok->status, 200);
  EXPECT_TRUE(read_ok->body == data);
}

}  // namespace
}  // namespace nighfs::testing
