#include "proxyselect/estimator.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace nighfs::proxyselect {
namespace {

using absl::Milliseconds;
using absl::Seconds;

class EstimatorTest : public ::testing::Test {
 protected:
  void Sample(absl::Duration rtt) {
    now_ += Seconds(1);
    e_.AddSample(now_, rtt);
  }
  absl::Time now_ = absl::UnixEpoch();
  RttEstimator e_;  // window 5, decay 5 s
};

TEST_F(EstimatorTest, NothingBeforeTheFirstSample) {
  EXPECT_FALSE(e_.estimate().has_value());
  EXPECT_FALSE(e_.last().has_value());
  Sample(Milliseconds(7));
  EXPECT_EQ(*e_.estimate(), Milliseconds(7));
  EXPECT_EQ(*e_.last(), Milliseconds(7));
}

TEST_F(EstimatorTest, OneSpikeDoesNotRaiseTheEstimate) {
  for (int i = 0; i < 10; ++i) Sample(Milliseconds(10));
  Sample(Milliseconds(200));
  EXPECT_EQ(*e_.last(), Milliseconds(200));
  EXPECT_EQ(*e_.estimate(), Milliseconds(10));
  Sample(Milliseconds(200));  // two of five: still a minority
  EXPECT_EQ(*e_.estimate(), Milliseconds(10));
}

TEST_F(EstimatorTest, ARealRiseCountsOnceItIsTheMajorityOfTheWindow) {
  for (int i = 0; i < 10; ++i) Sample(Milliseconds(10));
  Sample(Milliseconds(50));
  Sample(Milliseconds(50));
  EXPECT_LT(*e_.estimate(), Milliseconds(50));
  Sample(Milliseconds(50));
  EXPECT_EQ(*e_.estimate(), Milliseconds(50));
}

TEST_F(EstimatorTest, ADropLowersTheEstimateAtOnceAndDecaysWithTime) {
  for (int i = 0; i < 10; ++i) Sample(Milliseconds(30));
  Sample(Milliseconds(10));
  const absl::Duration after_one = *e_.estimate();
  EXPECT_LT(after_one, Milliseconds(30));  // peak-EWMA: 30 → 30·e^-0.2 + 10·(1-e^-0.2) ≈ 26.4
  EXPECT_NEAR(absl::ToDoubleMilliseconds(after_one), 26.37, 0.1);
  Sample(Milliseconds(10));
  EXPECT_LT(*e_.estimate(), after_one);
  Sample(Milliseconds(10));  // the median turns
  EXPECT_EQ(*e_.estimate(), Milliseconds(10));
}

TEST_F(EstimatorTest, JitterStaysWithinItsRange) {
  const int ms[] = {10, 13, 7, 12, 8, 11, 9, 13, 7, 10};
  for (int i = 0; i < 50; ++i) {
    Sample(Milliseconds(ms[i % 10]));
    EXPECT_GE(*e_.estimate(), Milliseconds(7));
    EXPECT_LE(*e_.estimate(), Milliseconds(13));
  }
}

TEST(GroupRttTest, MedianOfHealthyMembers) {
  EXPECT_FALSE(GroupRtt({}).has_value());
  EXPECT_EQ(*GroupRtt({Milliseconds(5)}), Milliseconds(5));
  EXPECT_EQ(*GroupRtt({Milliseconds(100), Milliseconds(1), Milliseconds(10)}), Milliseconds(10));
  EXPECT_EQ(*GroupRtt({Milliseconds(1), Milliseconds(3)}), Milliseconds(2));
  // One slow member among four does not decide the group's RTT.
  EXPECT_EQ(*GroupRtt({Milliseconds(2), Milliseconds(2), Milliseconds(2), Seconds(1)}),
            Milliseconds(2));
}

}  // namespace
}  // namespace nighfs::proxyselect
