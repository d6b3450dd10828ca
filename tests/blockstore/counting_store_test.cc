// CountingStore: the health `nighfs status` shows for a store comes from real requests.
#include "blockstore/counting_store.h"

#include <memory>
#include <string>

#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/blockstore/conformance.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

using conformance::BlockStoreConformance;
using conformance::StoreFactory;
using conformance::StoreFactoryName;
using ::testing::HasSubstr;
using Op = FaultInjectingStore::Op;

// With nothing failing, the counter is invisible: it passes the whole conformance suite.
INSTANTIATE_TEST_SUITE_P(
    Counting, BlockStoreConformance,
    ::testing::Values(StoreFactory{"counting_wrapped_memory",
                                   [] {
                                     return std::unique_ptr<BlockStore>(
                                         new CountingStore(NewMemoryStore()));
                                   },
                                   /*run_large=*/false}),
    StoreFactoryName);

class CountingStoreTest : public ::testing::Test {
 protected:
  CountingStoreTest() {
    auto faulty = std::make_unique<FaultInjectingStore>(NewMemoryStore("counted"));
    faults_ = faulty.get();
    store_ = std::make_unique<CountingStore>(std::move(faulty), [this] { return now_; });
  }

  absl::Time now_ = absl::FromUnixSeconds(1'700'000'000);
  FaultInjectingStore* faults_;
  std::unique_ptr<CountingStore> store_;
};

TEST_F(CountingStoreTest, CountsRequestsAndTreatsNotFoundAsAnAnswer) {
  StoreHealth h = store_->Health();
  EXPECT_EQ(h.requests, 0u);
  EXPECT_TRUE(h.healthy);
  ASSERT_OK(store_->Put("blk/00/1", "data"));
  EXPECT_THAT(store_->Get("blk/00/2"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store_->Head("blk/00/2"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(store_->Get("blk/00/1"));
  ASSERT_OK(store_->List("", "", 10));
  ASSERT_OK(store_->Delete("blk/00/1"));
  ASSERT_OK(store_->Check());
  h = store_->Health();
  EXPECT_EQ(h.requests, 7u);
  EXPECT_EQ(h.errors, 0u);
  EXPECT_EQ(h.last_success_time, now_);
  EXPECT_TRUE(h.last_error.empty());
  EXPECT_TRUE(h.healthy);
  EXPECT_EQ(store_->Describe(), "mem://counted");
}

TEST_F(CountingStoreTest, FailingStoreIsUnhealthyUntilASuccessOrAQuietMinute) {
  ASSERT_OK(store_->Put("blk/00/1", "ok"));
  now_ += absl::Seconds(5);
  faults_->FailNext(Op::kPut, absl::UnavailableError("connection refused"), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(store_->Put("blk/00/2", "x").ok());
    now_ += absl::Seconds(10);
  }
  StoreHealth h = store_->Health();
  EXPECT_EQ(h.requests, 4u);
  EXPECT_EQ(h.errors, 3u);
  EXPECT_EQ(h.errors_last_minute, 3u);
  EXPECT_THAT(h.last_error, HasSubstr("connection refused"));
  EXPECT_EQ(h.last_error_time, now_ - absl::Seconds(10));
  EXPECT_LT(h.last_success_time, h.last_error_time);
  EXPECT_FALSE(h.healthy);

  // The failures age out of the last minute one by one.
  now_ += absl::Seconds(35);  // the first failure is now 65 s old
  EXPECT_EQ(store_->Health().errors_last_minute, 2u);
  now_ += absl::Seconds(30);
  h = store_->Health();
  EXPECT_EQ(h.errors_last_minute, 0u);
  EXPECT_EQ(h.errors, 3u);  // the totals stay
  EXPECT_TRUE(h.healthy);

  // A failure followed by a success: recent errors, but the store works again.
  faults_->FailNext(Op::kGet, absl::DeadlineExceededError("timed out"));
  EXPECT_FALSE(store_->Get("blk/00/1").ok());
  EXPECT_FALSE(store_->Health().healthy);
  now_ += absl::Seconds(1);
  ASSERT_OK(store_->Get("blk/00/1"));
  h = store_->Health();
  EXPECT_EQ(h.errors_last_minute, 1u);
  EXPECT_THAT(h.last_error, HasSubstr("timed out"));
  EXPECT_TRUE(h.healthy);
}

}  // namespace
}  // namespace nighfs::blockstore
