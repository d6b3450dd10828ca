#include "proxyselect/route_stats.h"

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace nighfs::proxyselect {
namespace {

using absl::Microseconds;
using absl::Milliseconds;

TEST(LatencyHistogramTest, QuantilesAreBucketBoundsAtMostAFifthAbove) {
  LatencyHistogram h;
  EXPECT_EQ(h.Quantile(0.5), absl::ZeroDuration());
  for (int i = 1; i <= 1000; ++i) h.Add(Microseconds(100 * i));  // 0.1 .. 100 ms
  const absl::Duration p50 = h.Quantile(0.5);
  const absl::Duration p99 = h.Quantile(0.99);
  EXPECT_GE(p50, Milliseconds(50));
  EXPECT_LE(p50, Milliseconds(50) * 1.2);
  EXPECT_GE(p99, Milliseconds(99));
  EXPECT_LE(p99, Milliseconds(99) * 1.2);
  EXPECT_EQ(h.count(), 1000u);
}

TEST(LatencyHistogramTest, EveryLatencyHasABucketThatBoundsIt) {
  for (int64_t us : {0L, 1L, 2L, 3L, 7L, 1000L, 123456L, 1L << 29, 1L << 40}) {
    const int b = LatencyHistogram::BucketOf(Microseconds(us));
    ASSERT_GE(b, 0);
    ASSERT_LT(b, LatencyHistogram::kBuckets);
    EXPECT_GE(LatencyHistogram::UpperBound(b), Microseconds(us)) << us;
    if (b > 0 && us > 1) {
      EXPECT_LT(LatencyHistogram::UpperBound(b - 1), Microseconds(us) * 1.01);
    }
  }
}

TEST(RouteStatsTest, CountsFromManyThreads) {
  RouteStats s;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&s, t] {
      for (int i = 0; i < 1000; ++i) s.Record(Milliseconds(t + 1), 10, i % 10 == 0);
    });
  }
  for (auto& t : ts) t.join();
  const RouteCounters c = s.Get();
  EXPECT_EQ(c.requests, 4000u);
  EXPECT_EQ(c.bytes, 40000u);
  EXPECT_EQ(c.errors, 400u);
  EXPECT_GE(c.p50, Milliseconds(2));
  EXPECT_LE(c.p50, Milliseconds(2.4));
  EXPECT_GE(c.p99, Milliseconds(4));
  EXPECT_LE(c.p99, Milliseconds(4.8));
}

}  // namespace
}  // namespace nighfs::proxyselect
