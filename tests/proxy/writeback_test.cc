#include "proxy/writeback.h"

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "blockstore/store_wrapper.h"
#include "absl/synchronization/notification.h"
#include "common/crc32c.h"
#include "gtest/gtest.h"
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

class WritebackTest : public ::testing::Test {
 protected:
  WritebackTest() {
    store_ = std::make_shared<FaultInjectingStore>(blockstore::NewMemoryStore());
    OpenCache();
  }
  ~WritebackTest() override {
    writeback_.reset();
    volumes_.reset();
    cache_.reset();
  }

  void OpenCache() {
    writeback_.reset();
    volumes_.reset();
    cache_.reset();
    DiskCacheOptions o;
    o.folder = dir_.path() + "/cache";
    o.journal_path = dir_.path() + "/proxy.db";
    o.quota_bytes = 1 << 24;
    o.metrics = &metrics_;
    absl::StatusOr<std::unique_ptr<DiskCache>> cache = DiskCache::Open(o);
    ASSERT_OK(cache);
    cache_ = *std::move(cache);
    volumes_ = std::make_unique<Volumes>(
        &cache_->journal(),
        [this](const std::string&) -> absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> {
          return std::static_pointer_cast<blockstore::BlockStore>(store_);
        });
    ASSERT_OK(volumes_->Load());
    pb::Volume v;
    v.set_id(kVolume);
    v.set_name("vol");
    v.set_store_url("mem://writeback-test");
    ASSERT_OK(volumes_->StoreFor(v));
  }
  void StartWriteback(absl::Duration delay = absl::ZeroDuration()) {
    WritebackOptions o;
    o.active = 4;
    o.delay = delay;
    o.initial_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(40);
    writeback_ = std::make_unique<Writeback>(o, cache_.get(), volumes_.get(), &meta_, &metrics_);
    writeback_->Start();
  }
  // Puts block `id` into the cache as an acknowledged PUT would, and queues it.
  std::string PutDirty(uint64_t id, char fill = 'd') {
    const std::string key = blockstore::BlockKey(id);
    const std::string data(1000 + id % 100, fill);
    EXPECT_OK(cache_->PutDirty(kVolume, key, data, Crc32c(data)));
    if (writeback_ != nullptr) writeback_->Enqueue(kVolume, key, absl::Now());
    return data;
  }
  bool InStore(uint64_t id) { return store_->base().Head(blockstore::BlockKey(id)).ok(); }

  TempDir dir_;
  ProxyMetrics metrics_;
  FakeMeta meta_;
  std::shared_ptr<FaultInjectingStore> store_;
  std::unique_ptr<DiskCache> cache_;
  std::unique_ptr<Volumes> volumes_;
  std::unique_ptr<Writeback> writeback_;
};

TEST(BlockIdOfKeyTest, OnlyBlockKeys) {
  EXPECT_EQ(BlockIdOfKey(blockstore::BlockKey(0x1234)), 0x1234u);
  EXPECT_EQ(BlockIdOfKey(blockstore::BlockKey(~0ull)), ~0ull);
  EXPECT_FALSE(BlockIdOfKey("blk/00/0000000000001234").has_value());  // wrong spread folder
  EXPECT_FALSE(BlockIdOfKey("blk/34/000000000000123G").has_value());
  EXPECT_FALSE(BlockIdOfKey("blk/34/x").has_value());
}

TEST_F(WritebackTest, FlushesAndMarksClean) {
  StartWriteback();
  std::map<uint64_t, std::string> blocks;
  for (uint64_t id = 1; id <= 20; ++id) blocks[id] = PutDirty(id);
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  for (const auto& [id, data] : blocks) {
    EXPECT_EQ(*store_->base().Get(blockstore::BlockKey(id)), data);
    EXPECT_FALSE(cache_->Lookup(kVolume, blockstore::BlockKey(id))->dirty);
  }
  EXPECT_EQ(metrics_.flushed_blocks.load(), 20u);
  EXPECT_EQ(cache_->Gauges().dirty_blocks, 0u);
  EXPECT_EQ(store_->calls(Op::kPut), 20);
}

TEST_F(WritebackTest, RetriesAFailingStoreUntilItWorks) {
  store_->FailNext(Op::kPut, absl::UnavailableError("store down"), 3);
  StartWriteback();
  const std::string data = PutDirty(1);
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(*store_->base().Get(blockstore::BlockKey(1)), data);
  EXPECT_EQ(store_->calls(Op::kPut), 4);
  EXPECT_EQ(metrics_.flush_errors.load(), 3u);
  EXPECT_EQ(metrics_.flushed_blocks.load(), 1u);
}

TEST_F(WritebackTest, DeadBlocksAreNeverUploaded) {
  meta_.KillBlock(2);
  StartWriteback();
  PutDirty(1);
  PutDirty(2);
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_TRUE(InStore(1));
  EXPECT_FALSE(InStore(2));
  EXPECT_EQ(store_->calls(Op::kPut), 1);
  EXPECT_FALSE(cache_->Lookup(kVolume, blockstore::BlockKey(2)).has_value());
  EXPECT_EQ(metrics_.dead_blocks_dropped.load(), 1u);
}

TEST_F(WritebackTest, BlockDyingDuringItsUploadIsDeletedFromTheStore) {
  // The block dies between the check before the upload (call 0) and the one after (call 1).
  meta_.OnDeadBlocks([this](int call, const pb::DeadBlocksRequest&) {
    if (call == 1) meta_.KillBlock(5);
  });
  StartWriteback();
  PutDirty(5);
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(store_->calls(Op::kPut), 1);
  EXPECT_EQ(store_->calls(Op::kDelete), 1);
  EXPECT_FALSE(InStore(5));
  EXPECT_FALSE(cache_->Lookup(kVolume, blockstore::BlockKey(5)).has_value());
  EXPECT_EQ(metrics_.dead_blocks_dropped.load(), 1u);
  EXPECT_EQ(metrics_.flushed_blocks.load(), 0u);
}

TEST_F(WritebackTest, WaitsForTheMetaServerBeforeUploading) {
  meta_.SetFailure(absl::UnavailableError("meta down"));
  StartWriteback();
  PutDirty(1);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(store_->calls(Op::kPut), 0);
  EXPECT_TRUE(cache_->Lookup(kVolume, blockstore::BlockKey(1))->dirty);
  meta_.SetFailure(absl::OkStatus());
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_TRUE(InStore(1));
}

TEST_F(WritebackTest, DelayHoldsBlocksBack) {
  StartWriteback(absl::Milliseconds(500));
  const absl::Time start = absl::Now();
  PutDirty(1);
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
  EXPECT_TRUE(InStore(1));
}

TEST_F(WritebackTest, CorruptCopyIsNeverUploaded) {
  const std::string data = PutDirty(9);
  {
    std::fstream f(absl::StrCat(dir_.path(), "/cache/", kVolume, "/", blockstore::BlockKey(9)),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('X');
  }
  StartWriteback();
  writeback_->Enqueue(kVolume, blockstore::BlockKey(9), absl::Now());
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  EXPECT_EQ(store_->calls(Op::kPut), 0);
  EXPECT_FALSE(InStore(9));
  EXPECT_EQ(metrics_.lost_blocks.load(), 1u);
  EXPECT_EQ(metrics_.corrupt_blocks.load(), 1u);
}

TEST_F(WritebackTest, UnflushedBlocksOfAnEarlierRunAreFlushedAfterARestart) {
  std::map<uint64_t, std::string> blocks;
  for (uint64_t id = 1; id <= 5; ++id) blocks[id] = PutDirty(id);  // no writeback running
  OpenCache();  // as a restart would: the journal is all that is left
  StartWriteback();
  ASSERT_TRUE(writeback_->WaitIdle(absl::Seconds(10)));
  for (const auto& [id, data] : blocks) {
    EXPECT_EQ(*store_->base().Get(blockstore::BlockKey(id)), data);
  }
}

// Holds every Put until released, and says when one has started.
class HeldPutStore : public blockstore::BlockStoreWrapper {
 public:
  using BlockStoreWrapper::BlockStoreWrapper;
  absl::Status Put(std::string_view key, std::string_view data) override {
    started_.Notify();
    release_.WaitForNotification();
    return BlockStoreWrapper::Put(key, data);
  }
  absl::Notification started_;
  absl::Notification release_;
};

TEST_F(WritebackTest, CancelWaitsForAnUploadInFlight) {
  auto held = std::make_unique<HeldPutStore>(blockstore::NewMemoryStore());
  HeldPutStore* held_ptr = held.get();
  store_ = std::make_shared<FaultInjectingStore>(std::move(held));
  OpenCache();  // the volume's store is opened once: open it again, now the held one
  StartWriteback();
  PutDirty(4);
  held_ptr->started_.WaitForNotification();
  std::atomic<bool> cancelled{false};
  std::thread deleter([&] {
    writeback_->Cancel(kVolume, blockstore::BlockKey(4));
    cancelled.store(true);
  });
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(cancelled.load());  // still waiting for the upload
  held_ptr->release_.Notify();
  deleter.join();
  EXPECT_TRUE(cancelled.load());
  EXPECT_TRUE(held_ptr->base().Head(blockstore::BlockKey(4)).ok());  // the caller deletes it next
  EXPECT_EQ(writeback_->pending(), 0u);
}

TEST_F(WritebackTest, CancelUnqueuesABlock) {
  StartWriteback(absl::Seconds(30));
  PutDirty(3);
  EXPECT_EQ(writeback_->pending(), 1u);
  writeback_->Cancel(kVolume, blockstore::BlockKey(3));
  EXPECT_EQ(writeback_->pending(), 0u);
  EXPECT_EQ(store_->calls(Op::kPut), 0);
}

}  // namespace
}  // namespace nighfs::proxy
