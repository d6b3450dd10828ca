#include "proxy/disk_cache.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "gtest/gtest.h"
#include "tests/proxy/cache_files.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::proxy {
namespace {

using ::nighfs::proxy::testing::CountBlockFiles;
using ::nighfs::testing::TempDir;

class DiskCacheTest : public ::testing::Test {
 protected:
  std::unique_ptr<DiskCache> Open(uint64_t quota, ReconcileReport* report = nullptr,
                                  bool sync = false) {
    DiskCacheOptions o;
    o.sync = sync;
    o.folder = dir_.path() + "/cache";
    o.journal_path = dir_.path() + "/cache/proxy.db";
    o.quota_bytes = quota;
    o.metrics = &metrics_;
    absl::StatusOr<std::unique_ptr<DiskCache>> cache = DiskCache::Open(o, report);
    EXPECT_OK(cache);
    return cache.ok() ? *std::move(cache) : nullptr;
  }
  std::string FileOf(uint64_t vid, const std::string& key) {
    return absl::StrCat(dir_.path(), "/cache/", vid, "/", key);
  }
  static std::string Block(char c, size_t n = 100) { return std::string(n, c); }

  TempDir dir_;
  ProxyMetrics metrics_;
};

TEST_F(DiskCacheTest, PutReadMarkClean) {
  auto cache = Open(1 << 20);
  const std::string data = Block('a');
  ASSERT_OK(cache->PutDirty(1, "blk/01/a", data, Crc32c(data)));
  absl::StatusOr<std::string> read = cache->Read(1, "blk/01/a");
  ASSERT_OK(read);
  EXPECT_EQ(*read, data);
  ASSERT_TRUE(cache->Lookup(1, "blk/01/a").has_value());
  EXPECT_TRUE(cache->Lookup(1, "blk/01/a")->dirty);
  EXPECT_EQ(cache->Gauges().dirty_bytes, 100u);
  ASSERT_OK(cache->MarkClean(1, "blk/01/a"));
  EXPECT_FALSE(cache->Lookup(1, "blk/01/a")->dirty);
  EXPECT_EQ(cache->Gauges().dirty_bytes, 0u);
  EXPECT_EQ(cache->Gauges().cached_bytes, 100u);
  EXPECT_THAT(cache->Read(2, "blk/01/a"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(cache->Remove(1, "blk/01/a"));
  EXPECT_FALSE(cache->Lookup(1, "blk/01/a").has_value());
  EXPECT_FALSE(std::filesystem::exists(FileOf(1, "blk/01/a")));
}

TEST_F(DiskCacheTest, SyncWritesAreReadBack) {
  auto cache = Open(1 << 20, nullptr, /*sync=*/true);
  const std::string data = Block('s', 5000);
  ASSERT_OK(cache->PutDirty(2, "blk/ab/new/deep", data, Crc32c(data)));
  EXPECT_EQ(*cache->Read(2, "blk/ab/new/deep"), data);
  EXPECT_EQ(CountBlockFiles(dir_.path() + "/cache"), 1);  // no temp file left
}

TEST_F(DiskCacheTest, SameBytesAgainOkDifferentBytesRefused) {
  auto cache = Open(1 << 20);
  const std::string a = Block('a'), b = Block('b');
  ASSERT_OK(cache->PutDirty(1, "blk/01/k", a, Crc32c(a)));
  bool existed = false;
  ASSERT_OK(cache->PutDirty(1, "blk/01/k", a, Crc32c(a), &existed));
  EXPECT_TRUE(existed);
  EXPECT_THAT(cache->PutDirty(1, "blk/01/k", b, Crc32c(b)),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(*cache->Read(1, "blk/01/k"), a);
}

TEST_F(DiskCacheTest, EvictsLeastRecentlyUsedCleanBlocks) {
  auto cache = Open(300);
  for (char c : {'0', '1', '2'}) {
    ASSERT_OK(cache->PutClean(1, absl::StrCat("blk/00/", std::string(1, c)), Block(c),
                              Crc32c(Block(c))));
  }
  ASSERT_OK(cache->Read(1, "blk/00/0"));  // 1 is now the least recently used
  ASSERT_OK(cache->PutClean(1, "blk/00/3", Block('3'), Crc32c(Block('3'))));
  EXPECT_TRUE(cache->Lookup(1, "blk/00/0").has_value());
  EXPECT_FALSE(cache->Lookup(1, "blk/00/1").has_value());
  EXPECT_FALSE(std::filesystem::exists(FileOf(1, "blk/00/1")));
  EXPECT_TRUE(cache->Lookup(1, "blk/00/2").has_value());
  EXPECT_TRUE(cache->Lookup(1, "blk/00/3").has_value());
  EXPECT_EQ(metrics_.evictions.load(), 1u);
  EXPECT_EQ(cache->Gauges().cached_bytes, 300u);
}

TEST_F(DiskCacheTest, DirtyBlocksAreNeverEvictedAndFillTheQuota) {
  auto cache = Open(300);
  ASSERT_OK(cache->PutClean(1, "blk/00/c", Block('c'), Crc32c(Block('c'))));
  for (char c : {'0', '1', '2'}) {
    const std::string key = absl::StrCat("blk/00/", std::string(1, c));
    ASSERT_OK(cache->PutDirty(1, key, Block(c), Crc32c(Block(c))));
  }
  // The clean block made room; the dirty ones stay.
  EXPECT_FALSE(cache->Lookup(1, "blk/00/c").has_value());
  EXPECT_THAT(cache->PutDirty(1, "blk/00/3", Block('3'), Crc32c(Block('3'))),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(cache->PutClean(1, "blk/00/4", Block('4'), Crc32c(Block('4'))),
              StatusIs(absl::StatusCode::kResourceExhausted));
  // Nothing of the refused blocks is left, and the dirty ones are intact.
  EXPECT_EQ(CountBlockFiles(dir_.path() + "/cache"), 3);
  for (char c : {'0', '1', '2'}) {
    EXPECT_EQ(*cache->Read(1, absl::StrCat("blk/00/", std::string(1, c))), Block(c));
  }
  EXPECT_FALSE(cache->Health().ok());
  // Once one is flushed, it is evictable and a new dirty block fits.
  ASSERT_OK(cache->MarkClean(1, "blk/00/0"));
  ASSERT_OK(cache->PutDirty(1, "blk/00/3", Block('3'), Crc32c(Block('3'))));
  EXPECT_FALSE(cache->Lookup(1, "blk/00/0").has_value());
  EXPECT_EQ(cache->Gauges().dirty_bytes, 300u);
}

TEST_F(DiskCacheTest, CorruptFileIsDetectedAndDropped) {
  auto cache = Open(1 << 20);
  const std::string data = Block('x', 4096);
  ASSERT_OK(cache->PutClean(3, "blk/00/x", data, Crc32c(data)));
  {
    std::fstream f(FileOf(3, "blk/00/x"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.put('y');
  }
  EXPECT_THAT(cache->Read(3, "blk/00/x"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(metrics_.corrupt_blocks.load(), 1u);
  EXPECT_EQ(metrics_.lost_blocks.load(), 0u);
  EXPECT_FALSE(cache->Lookup(3, "blk/00/x").has_value());
  EXPECT_FALSE(std::filesystem::exists(FileOf(3, "blk/00/x")));
  // Cached again, it reads fine.
  ASSERT_OK(cache->PutClean(3, "blk/00/x", data, Crc32c(data)));
  EXPECT_EQ(*cache->Read(3, "blk/00/x"), data);
}

TEST_F(DiskCacheTest, ReconcilesFolderAndJournalAfterACrash) {
  {
    auto cache = Open(1 << 20);
    ASSERT_OK(cache->PutDirty(1, "blk/00/keep", Block('k'), Crc32c(Block('k'))));
    ASSERT_OK(cache->PutDirty(1, "blk/00/gone", Block('g'), Crc32c(Block('g'))));
    ASSERT_OK(cache->PutClean(1, "blk/00/short", Block('s'), Crc32c(Block('s'))));
    ASSERT_OK(cache->PutClean(1, "blk/00/fine", Block('f'), Crc32c(Block('f'))));
  }
  // What a crash can leave: a temp file of an interrupted PUT, a renamed file whose row never
  // committed, a dirty block's file gone, a clean block's file cut short.
  std::ofstream(FileOf(1, "blk/00/.nighfs-tmp-123")) << "partial";
  std::ofstream(FileOf(1, "blk/00/orphan")) << "no row";
  std::filesystem::remove(FileOf(1, "blk/00/gone"));
  std::filesystem::resize_file(FileOf(1, "blk/00/short"), 10);

  ReconcileReport report;
  auto cache = Open(1 << 20, &report);
  EXPECT_EQ(report.blocks, 2u);
  EXPECT_EQ(report.dirty_blocks, 1u);
  EXPECT_EQ(report.lost_blocks, 1u);
  EXPECT_EQ(report.dropped_rows, 1u);
  EXPECT_EQ(report.orphan_files, 1u);
  EXPECT_EQ(metrics_.lost_blocks.load(), 1u);
  EXPECT_FALSE(std::filesystem::exists(FileOf(1, "blk/00/.nighfs-tmp-123")));
  EXPECT_FALSE(std::filesystem::exists(FileOf(1, "blk/00/orphan")));
  EXPECT_FALSE(std::filesystem::exists(FileOf(1, "blk/00/short")));
  std::vector<JournalRow> dirty = cache->DirtyBlocks();
  ASSERT_EQ(dirty.size(), 1u);
  EXPECT_EQ(dirty[0].key, "blk/00/keep");
  EXPECT_EQ(*cache->Read(1, "blk/00/keep"), Block('k'));
  EXPECT_EQ(*cache->Read(1, "blk/00/fine"), Block('f'));
  EXPECT_EQ(cache->Gauges().cached_bytes, 200u);
}

// A process killed right after its PUTs were acknowledged: every one is found again.
TEST_F(DiskCacheTest, AcknowledgedBlocksSurviveKill9) {
  constexpr int kBlocks = 50;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    DiskCacheOptions o;
    o.folder = dir_.path() + "/cache";
    o.journal_path = dir_.path() + "/cache/proxy.db";
    o.quota_bytes = 1 << 20;
    ProxyMetrics m;
    o.metrics = &m;
    auto cache = DiskCache::Open(o);
    if (!cache.ok()) ::_exit(2);
    for (int i = 0; i < kBlocks; ++i) {
      const std::string data = Block(static_cast<char>('a' + i % 26), 1000 + i);
      if (!(*cache)->PutDirty(1, absl::StrCat("blk/00/", i), data, Crc32c(data)).ok()) ::_exit(3);
    }
    ::kill(::getpid(), SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  ReconcileReport report;
  auto cache = Open(1 << 20, &report);
  EXPECT_EQ(report.dirty_blocks, static_cast<uint64_t>(kBlocks));
  EXPECT_EQ(report.lost_blocks, 0u);
  for (int i = 0; i < kBlocks; ++i) {
    absl::StatusOr<std::string> read = cache->Read(1, absl::StrCat("blk/00/", i));
    ASSERT_OK(read);
    EXPECT_EQ(*read, Block(static_cast<char>('a' + i % 26), 1000 + i));
  }
}

// Writers, readers and evictions of the same few keys at once: never a wrong byte, never a copy
// counted corrupt or lost, and the folder, the journal and the index agree at the end.
TEST_F(DiskCacheTest, ConcurrentPutsReadsAndEvictionsAgree) {
  auto cache = Open(10 * 1000);
  auto block_of = [](int k) { return Block(static_cast<char>('A' + k), 1000); };
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const int k = (i * 7 + t * 13) % 30;
        const std::string key = absl::StrCat("blk/00/", k);
        const std::string data = block_of(k);
        if (i % 3 == 0) {
          if (cache->PutDirty(1, key, data, Crc32c(data)).ok()) (void)cache->MarkClean(1, key);
        } else if (i % 3 == 1) {
          (void)cache->PutClean(1, key, data, Crc32c(data));
        } else {
          absl::StatusOr<std::string> read = cache->Read(1, key);
          if (read.ok() ? *read != data : read.status().code() != absl::StatusCode::kNotFound) {
            wrong.fetch_add(1);
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(metrics_.corrupt_blocks.load(), 0u);
  EXPECT_EQ(metrics_.lost_blocks.load(), 0u);
  const MetricsGauges g = cache->Gauges();
  EXPECT_LE(g.cached_bytes, 10u * 1000);
  EXPECT_EQ(CountBlockFiles(dir_.path() + "/cache"), static_cast<int>(g.cached_blocks));
  cache.reset();
  ReconcileReport report;
  cache = Open(10 * 1000, &report);
  EXPECT_EQ(report.blocks, g.cached_blocks);
  EXPECT_EQ(report.orphan_files + report.dropped_rows + report.lost_blocks, 0u);
}

TEST(ResolveQuotaTest, SizesAndPercentages) {
  EXPECT_EQ(*ResolveQuota("600G", "/"), 600ull << 30);
  EXPECT_EQ(*ResolveQuota("1T", "/"), 1ull << 40);
  absl::StatusOr<uint64_t> half = ResolveQuota("50%", "/");
  ASSERT_OK(half);
  EXPECT_GT(*half, 0u);
  EXPECT_THAT(ResolveQuota("0%", "/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ResolveQuota("150%", "/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ResolveQuota("lots", "/"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ResolveQuota("0", "/"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace nighfs::proxy
