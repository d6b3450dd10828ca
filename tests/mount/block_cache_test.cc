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
#include "tests/testing/process.h"
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

// ---- ranged reads (issue 14) ----

constexpr uint32_t kRange = 4096;

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

meta::v1::Block RangedRef(uint64_t id, const std::string& data, uint32_t range = kRange) {
  meta::v1::Block b = Ref(id, data, "");
  b.set_range_size(range);
  b.set_range_crc32c(RangeChecksums(data, range));
  return b;
}

class BlockCacheRangeTest : public ::testing::Test {
 protected:
  BlockCacheRangeTest()
      : store_(std::make_unique<blockstore::FaultInjectingStore>(blockstore::NewMemoryStore())),
        pool_(2),
        cache_(store_.get(), 1 << 20, &pool_) {}

  // Reads [off, off + n) of `ref` as a random reader of a file of 64 KiB would.
  absl::StatusOr<std::string> ReadAt(const meta::v1::Block& ref, uint64_t off, size_t n,
                                     ReadHint hint = ReadHint{1, false, 64 << 10}) {
    std::string out(n, '\0');
    absl::Status s = cache_.Read(ref, off, n, out.data(), hint);
    if (!s.ok()) return s;
    return out;
  }
  int Gets() const { return store_->calls(blockstore::FaultInjectingStore::Op::kGet); }

  std::unique_ptr<blockstore::FaultInjectingStore> store_;
  ThreadPool pool_;
  BlockCache cache_;
};

TEST_F(BlockCacheRangeTest, ARandomReadFetchesOnlyTheRangesItCovers) {
  const std::string data = Pattern(64 << 10, 1);
  ASSERT_OK(store_->Put(blockstore::BlockKey(3), data));
  const meta::v1::Block ref = RangedRef(3, data);
  auto got = ReadAt(ref, 10000, 100);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(10000, 100));
  EXPECT_EQ(Gets(), 1);
  EXPECT_EQ(cache_.stats().range_fetches.load(), 1u);
  EXPECT_EQ(cache_.stats().range_bytes.load(), kRange);
  EXPECT_EQ(cache_.stats().block_fetches.load(), 0u);
  EXPECT_TRUE(cache_.ContainsRangeForTest(3, 2));
  EXPECT_FALSE(cache_.ContainsForTest(3));
  EXPECT_EQ(cache_.bytes(), kRange);
  // Again: from the cache.
  got = ReadAt(ref, 8192, 4096);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(8192, 4096));
  EXPECT_EQ(Gets(), 1);
  // Across ranges 2..5 with 2 cached: one GET for 3..5.
  got = ReadAt(ref, 9000, 4 * kRange - 2000);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(9000, 4 * kRange - 2000));
  EXPECT_EQ(Gets(), 2);
  EXPECT_EQ(cache_.stats().range_bytes.load(), 4u * kRange);
  for (uint32_t r = 2; r <= 5; ++r) EXPECT_TRUE(cache_.ContainsRangeForTest(3, r)) << r;
}

TEST_F(BlockCacheRangeTest, TheShortLastRangeIsVerifiedToo) {
  const std::string data = Pattern(3 * kRange + 100, 2);
  ASSERT_OK(store_->Put(blockstore::BlockKey(4), data));
  auto got = ReadAt(RangedRef(4, data), 3 * kRange + 10, 90);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(3 * kRange + 10, 90));
  EXPECT_EQ(cache_.stats().range_bytes.load(), 100u);
}

TEST_F(BlockCacheRangeTest, BytesPastTheValidLengthAreLeftAlone) {
  const std::string data = Pattern(16 * kRange, 3);
  ASSERT_OK(store_->Put(blockstore::BlockKey(5), data));
  meta::v1::Block ref = RangedRef(5, data);
  ref.set_length(kRange + 10);  // truncated: the object is longer than the file's data
  std::string out(200, 'z');
  ASSERT_OK(cache_.Read(ref, kRange - 50, 200, out.data(), ReadHint{1, false}));
  EXPECT_EQ(out, data.substr(kRange - 50, 60) + std::string(140, 'z'));
}

TEST_F(BlockCacheRangeTest, ACorruptRangeIsFetchedAgain) {
  const std::string data = Pattern(64 << 10, 4);
  ASSERT_OK(store_->Put(blockstore::BlockKey(6), data));
  store_->CorruptNextGet(1);
  auto got = ReadAt(RangedRef(6, data), 20000, 4096);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(20000, 4096));
  EXPECT_EQ(Gets(), 2);
  EXPECT_EQ(cache_.stats().checksum_mismatches.load(), 1u);
}

TEST_F(BlockCacheRangeTest, ARangeCorruptEveryTimeIsDataLossAndNotCached) {
  const std::string data = Pattern(64 << 10, 5);
  ASSERT_OK(store_->Put(blockstore::BlockKey(7), data));
  store_->CorruptNextGet(3);
  auto got = ReadAt(RangedRef(7, data), 20000, 4096);
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("failed verification"));
  EXPECT_EQ(Gets(), 3);
  EXPECT_EQ(cache_.bytes(), 0u);
  // Short reads are caught the same way.
  store_->TruncateNextGet(3);
  EXPECT_THAT(ReadAt(RangedRef(7, data), 40000, 10), StatusIs(absl::StatusCode::kDataLoss));
  // Once the store answers right, so does the read.
  got = ReadAt(RangedRef(7, data), 20000, 4096);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(20000, 4096));
}

TEST_F(BlockCacheRangeTest, ChecksumsOfTheWrongBytesAreCaught) {
  // The store holds other bytes than the ones the checksums describe (a wrong object).
  const std::string data = Pattern(64 << 10, 6);
  std::string other = data;
  other[5 * kRange + 7] ^= 1;
  ASSERT_OK(store_->Put(blockstore::BlockKey(8), other));
  EXPECT_OK(ReadAt(RangedRef(8, data), 0, 100).status()) << "range 0 is intact";
  EXPECT_THAT(ReadAt(RangedRef(8, data), 5 * kRange, 8), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(BlockCacheRangeTest, BlocksWithoutRangeChecksumsAreReadWhole) {
  const std::string data = Pattern(64 << 10, 7);
  ASSERT_OK(store_->Put(blockstore::BlockKey(9), data));
  auto got = ReadAt(Ref(9, data, ""), 30000, 10);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(30000, 10));
  EXPECT_EQ(cache_.stats().block_fetches.load(), 1u);
  EXPECT_EQ(cache_.stats().range_fetches.load(), 0u);
  EXPECT_TRUE(cache_.ContainsForTest(9));
  // A checksum list of the wrong length is not trusted either: read whole.
  ASSERT_OK(store_->Put(blockstore::BlockKey(10), data));
  meta::v1::Block odd = RangedRef(10, data);
  odd.mutable_range_crc32c()->resize(8);
  ASSERT_OK(ReadAt(odd, 30000, 10).status());
  EXPECT_EQ(cache_.stats().block_fetches.load(), 2u);
  EXPECT_EQ(cache_.stats().range_fetches.load(), 0u);
}

TEST_F(BlockCacheRangeTest, SequentialAndLargeReadsFetchWholeBlocks) {
  const std::string data = Pattern(64 << 10, 8);
  ASSERT_OK(store_->Put(blockstore::BlockKey(11), data));
  ASSERT_OK(store_->Put(blockstore::BlockKey(12), data));
  ASSERT_OK(ReadAt(RangedRef(11, data), 4096, 4096, ReadHint{1, true}).status());
  ASSERT_OK(ReadAt(RangedRef(12, data), 0, 40 << 10).status());  // more than half the block
  EXPECT_EQ(cache_.stats().block_fetches.load(), 2u);
  EXPECT_EQ(cache_.stats().range_fetches.load(), 0u);
}

TEST_F(BlockCacheRangeTest, TheWholeBlockReplacesItsRanges) {
  const std::string data = Pattern(64 << 10, 9);
  ASSERT_OK(store_->Put(blockstore::BlockKey(13), data));
  const meta::v1::Block ref = RangedRef(13, data);
  ASSERT_OK(ReadAt(ref, 0 + 100, 10).status());
  ASSERT_OK(ReadAt(ref, 9 * kRange, 10).status());
  EXPECT_EQ(cache_.bytes(), 2u * kRange);
  auto whole = cache_.Get(ref);
  ASSERT_OK(whole);
  EXPECT_EQ(**whole, data);
  EXPECT_EQ(cache_.bytes(), data.size()) << "ranges are not counted twice";
  EXPECT_FALSE(cache_.ContainsRangeForTest(13, 0));
  EXPECT_FALSE(cache_.ContainsRangeForTest(13, 9));
  // Random reads now come from the whole block.
  const int gets = Gets();
  auto got = ReadAt(ref, 50000, 5000);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(50000, 5000));
  EXPECT_EQ(Gets(), gets);
}

// A block read densely at random (a miss with 4 of its 16 ranges cached already) is fetched
// whole in the background, then serves every read; a sparse reader never triggers it.
TEST_F(BlockCacheRangeTest, ADenselyReadBlockIsFetchedWhole) {
  const std::string data = Pattern(64 << 10, 11);
  ASSERT_OK(store_->Put(blockstore::BlockKey(14), data));
  const meta::v1::Block ref = RangedRef(14, data);
  for (uint32_t r : {1u, 5u, 9u, 13u}) {
    auto got = ReadAt(ref, r * kRange + 7, 100);
    ASSERT_OK(got);
    EXPECT_EQ(*got, data.substr(r * kRange + 7, 100));
  }
  EXPECT_EQ(cache_.stats().block_fetches.load(), 0u) << "3 cached ranges are not dense";
  auto got = ReadAt(ref, 3 * kRange, 10);  // a miss with 4 cached: the whole block comes
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(3 * kRange, 10));
  ASSERT_TRUE(nighfs::testing::WaitFor([&] { return cache_.ContainsForTest(14); },
                                       absl::Seconds(10)));
  EXPECT_EQ(cache_.stats().block_fetches.load(), 1u);
  EXPECT_EQ(cache_.bytes(), data.size()) << "its ranges are not kept beside it";
  const int gets = Gets();
  got = ReadAt(ref, 11 * kRange + 1, 5000);
  ASSERT_OK(got);
  EXPECT_EQ(*got, data.substr(11 * kRange + 1, 5000));
  EXPECT_EQ(Gets(), gets);
}

TEST_F(BlockCacheRangeTest, NoWholeFetchOfAFileLargerThanHalfTheCache) {
  const std::string data = Pattern(64 << 10, 13);
  ASSERT_OK(store_->Put(blockstore::BlockKey(16), data));
  const meta::v1::Block ref = RangedRef(16, data);
  for (uint32_t r = 0; r < 16; ++r) {  // the cache holds 1 MiB: a file of 600 KiB is too big
    auto got = ReadAt(ref, r * kRange, 10, ReadHint{1, false, 600 << 10});
    ASSERT_OK(got);
    EXPECT_EQ(*got, data.substr(r * kRange, 10));
  }
  ASSERT_TRUE(nighfs::testing::WaitFor([&] { return cache_.prefetch_bytes() == 0; },
                                       absl::Seconds(10)));
  EXPECT_EQ(cache_.stats().block_fetches.load(), 0u);
  EXPECT_EQ(cache_.stats().range_fetches.load(), 16u);
}

TEST(BlockCacheDenseTest, NoWholeFetchWithoutRoomInTheCache) {
  auto store = blockstore::NewMemoryStore();
  ThreadPool pool(2);
  // The file fits in half the cache, but with another block of 64 KiB cached there is room for
  // its 16 ranges, not for 4 of them and the whole block.
  BlockCache cache(store.get(), 140 << 10, &pool);
  cache.Insert(99, std::make_shared<const std::string>(Pattern(64 << 10, 99)));
  const std::string data = Pattern(64 << 10, 12);
  ASSERT_OK(store->Put(blockstore::BlockKey(15), data));
  const meta::v1::Block ref = RangedRef(15, data);
  std::string out(10, '\0');
  for (uint32_t r = 0; r < 16; ++r) {
    ASSERT_OK(cache.Read(ref, r * kRange, 10, out.data(), ReadHint{1, false, 64 << 10}));
    EXPECT_EQ(out, data.substr(r * kRange, 10));
  }
  ASSERT_TRUE(nighfs::testing::WaitFor([&] { return cache.prefetch_bytes() == 0; },
                                       absl::Seconds(10)));
  EXPECT_EQ(cache.stats().block_fetches.load(), 0u);
  EXPECT_FALSE(cache.ContainsForTest(15));
  EXPECT_EQ(cache.stats().range_fetches.load(), 16u);
}

TEST_F(BlockCacheHolderTest, ARangeMissingFromTheStoreIsReadFromItsHolder) {
  const std::string data = Pattern(64 << 10, 10);
  ASSERT_OK(proxy_->Put(blockstore::BlockKey(20), data));
  meta::v1::Block ref = RangedRef(20, data);
  ref.set_holder(kHolder);
  std::string out(100, '\0');
  ASSERT_OK(cache_.Read(ref, 33000, 100, out.data(), ReadHint{1, false}));
  EXPECT_EQ(out, data.substr(33000, 100));
  EXPECT_EQ(cache_.stats().holder_fetches.load(), 1u);
  EXPECT_EQ(cache_.stats().range_bytes.load(), kRange);
}

// ---- the scan-resistant policy ----

class BlockCachePolicyTest : public ::testing::Test {
 protected:
  static constexpr size_t kBlock = 1024;
  static constexpr size_t kCapacity = 16 * kBlock;

  BlockCachePolicyTest()
      : store_(std::make_unique<blockstore::FaultInjectingStore>(blockstore::NewMemoryStore())),
        pool_(1),
        cache_(store_.get(), kCapacity, &pool_) {}

  meta::v1::Block Block(uint64_t id) {
    const std::string data = Pattern(kBlock, static_cast<uint32_t>(id));
    if (!store_->base().Head(blockstore::BlockKey(id)).ok()) {
      EXPECT_OK(store_->base().Put(blockstore::BlockKey(id), data));
    }
    return Ref(id, data, "");
  }
  void Access(uint64_t id, ReadHint hint) { ASSERT_OK(cache_.Get(Block(id), hint).status()); }

  std::unique_ptr<blockstore::FaultInjectingStore> store_;
  ThreadPool pool_;
  BlockCache cache_;
};

TEST_F(BlockCachePolicyTest, ASequentialScanDoesNotFlushWhatRandomReadersUse) {
  // A working set read twice by a random reader...
  for (int pass = 0; pass < 2; ++pass) {
    for (uint64_t id = 1; id <= 8; ++id) Access(id, ReadHint{7, false});
  }
  EXPECT_EQ(cache_.protected_bytes(), 8 * kBlock);
  // ...then one reader streams through ten times the cache, each block in four requests.
  for (uint64_t id = 100; id < 260; ++id) {
    for (int part = 0; part < 4; ++part) Access(id, ReadHint{9, true});
  }
  for (uint64_t id = 1; id <= 8; ++id) EXPECT_TRUE(cache_.ContainsForTest(id)) << id;
  EXPECT_EQ(cache_.protected_bytes(), 8 * kBlock) << "the stream promoted nothing";
  EXPECT_LE(cache_.bytes(), kCapacity);
  const int gets = store_->calls(blockstore::FaultInjectingStore::Op::kGet);
  for (uint64_t id = 1; id <= 8; ++id) Access(id, ReadHint{7, false});
  EXPECT_EQ(store_->calls(blockstore::FaultInjectingStore::Op::kGet), gets);
}

TEST_F(BlockCachePolicyTest, ASecondReaderOfAStreamPromotesIt) {
  // `cat f; cat f`: the second pass is a use of what the first brought in.
  for (uint64_t id = 1; id <= 4; ++id) Access(id, ReadHint{1, true});
  EXPECT_EQ(cache_.protected_bytes(), 0u);
  for (uint64_t id = 1; id <= 4; ++id) Access(id, ReadHint{2, true});
  EXPECT_EQ(cache_.protected_bytes(), 4 * kBlock);
  // Blocks this mount wrote do not count as read: streaming them back once promotes nothing.
  cache_.Insert(50, std::make_shared<const std::string>(Pattern(kBlock, 50)));
  Access(50, ReadHint{3, true});
  EXPECT_EQ(cache_.protected_bytes(), 4 * kBlock);
}

TEST_F(BlockCachePolicyTest, TheProtectedSegmentKeepsRoomForNewBlocks) {
  for (int pass = 0; pass < 2; ++pass) {
    for (uint64_t id = 1; id <= 16; ++id) Access(id, ReadHint{7, false});
  }
  EXPECT_LE(cache_.protected_bytes(), kCapacity / 4 * 3);
  EXPECT_LE(cache_.bytes(), kCapacity);
  // New blocks still get in (on probation) and can be read back.
  Access(99, ReadHint{8, false});
  EXPECT_TRUE(cache_.ContainsForTest(99));
}

}  // namespace
}  // namespace nighfs::fs
