// BlockCache's fallback to a block's holder: a block the store answers NotFound for, whose
// ref names the proxy that acknowledged it (Block.holder), is fetched from that proxy and
// verified like any other; everything else keeps its old outcome.
#include "mount/block_cache.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "common/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kHolder[] = "p1.example:7430";

meta::v1::Block Ref(uint64_t id, const std::string& data, const std::string& holder) {
  meta::v1::Block b;
  b.set_id(id);
  b.set_length(static_cast<uint32_t>(data.size()));
  b.set_object_size(static_cast<uint32_t>(data.size()));
  b.set_crc32c(Crc32c(data));
  b.set_holder(holder);
  return b;
}

class BlockCacheHolderTest : public ::testing::Test {
 protected:
  BlockCacheHolderTest()
      : store_(blockstore::NewMemoryStore()),
        proxy_(std::make_unique<blockstore::FaultInjectingStore>(blockstore::NewMemoryStore())),
        pool_(2),
        cache_(store_.get(), 64 << 20, &pool_,
               [this](const std::string& holder) -> absl::StatusOr<blockstore::BlockStore*> {
                 asked_.push_back(holder);
                 if (holder != kHolder) return absl::InvalidArgumentError("unknown proxy");
                 return proxy_.get();
               }) {}

  std::unique_ptr<blockstore::BlockStore> store_;  // the volume's object store
  std::unique_ptr<blockstore::FaultInjectingStore> proxy_;  // the holder's blocks
  std::vector<std::string> asked_;
  ThreadPool pool_;
  BlockCache cache_;
};

TEST_F(BlockCacheHolderTest, MissingFromTheStoreIsReadFromItsHolder) {
  const std::string data = "acknowledged by the proxy, not flushed yet";
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(5), data));
  auto got = cache_.Get(Ref(5, data, kHolder));
  ASSERT_OK(got);
  EXPECT_EQ(**got, data);
  EXPECT_THAT(asked_, ElementsAre(kHolder));
  EXPECT_EQ(cache_.stats().holder_fetches.load(), 1u);
  // Cached like any block: no second fetch.
  ASSERT_OK(cache_.Get(Ref(5, data, kHolder)));
  EXPECT_EQ(asked_.size(), 1u);
}

TEST_F(BlockCacheHolderTest, TheStoreComesFirst) {
  const std::string data = "flushed";
  ASSERT_OK(store_->Put(blockstore::BlockKey(6), data));
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(6), "stale other bytes"));
  auto got = cache_.Get(Ref(6, data, kHolder));
  ASSERT_OK(got);
  EXPECT_EQ(**got, data);
  EXPECT_THAT(asked_, IsEmpty());
}

TEST_F(BlockCacheHolderTest, MissingEverywhereIsDataLoss) {
  auto got = cache_.Get(Ref(7, "gone", kHolder));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("from its holder, proxy " + std::string(kHolder)));
}

TEST_F(BlockCacheHolderTest, NoHolderIsDataLossWithoutAsking) {
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(8), "x"));
  EXPECT_THAT(cache_.Get(Ref(8, "x", "")), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(asked_, IsEmpty());
}

TEST_F(BlockCacheHolderTest, WrongBytesFromTheHolderAreDataLoss) {
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(9), "corrupt"));
  auto got = cache_.Get(Ref(9, "correct", kHolder));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("failed verification"));
  EXPECT_GE(cache_.stats().checksum_mismatches.load(), 1u);
}

TEST_F(BlockCacheHolderTest, AnUnreachableHolderIsItsErrorNotDataLoss) {
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(10), "x"));
  proxy_->FailNext(blockstore::FaultInjectingStore::Op::kGet, absl::UnavailableError("refused"),
                   1);
  auto got = cache_.Get(Ref(10, "x", kHolder));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr(kHolder));
  // Not cached as a failure: the next read asks again and gets it.
  auto again = cache_.Get(Ref(10, "x", kHolder));
  ASSERT_OK(again);
  EXPECT_EQ(**again, "x");
}

TEST_F(BlockCacheHolderTest, AHolderThatCannotBeReachedIsNamed) {
  auto got = cache_.Get(Ref(11, "x", "other:1"));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("other:1"));
}

TEST(BlockCacheNoLookupTest, AHolderWithoutALookupIsDataLoss) {
  auto store = blockstore::NewMemoryStore();
  ThreadPool pool(1);
  BlockCache cache(store.get(), 1 << 20, &pool);
  auto got = cache.Get(Ref(1, "x", kHolder));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("cannot ask its holder"));
}

}  // namespace
}  // namespace nighfs::fs
