// Per-route counters for status: requests, bytes, errors and a latency histogram for p50/p99.
#ifndef NIGHFS_PROXYSELECT_ROUTE_STATS_H_
#define NIGHFS_PROXYSELECT_ROUTE_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "proxyselect/proxyselect.h"

namespace nighfs::proxyselect {

// Latencies in log-spaced buckets: 4 per power of two from 1 µs (so a percentile is at most
// ~19% above the truth) up to ~2^30 µs; one bucket for anything longer.
class LatencyHistogram {
 public:
  static constexpr int kSubBuckets = 4;
  static constexpr int kBuckets = 31 * kSubBuckets;

  void Add(absl::Duration d) { AddToBucket(BucketOf(d), 1); }
  void AddToBucket(int bucket, uint64_t n);
  // The upper bound of the bucket holding quantile q (0 < q <= 1); zero when empty.
  absl::Duration Quantile(double q) const;
  uint64_t count() const { return count_; }

  // The bucket of a latency and a bucket's upper bound (exposed for tests).
  static int BucketOf(absl::Duration d);
  static absl::Duration UpperBound(int bucket);

 private:
  std::array<uint64_t, kBuckets> counts_ = {};
  uint64_t count_ = 0;
};

// Thread-safe, lock-free: every routed call records into one of these, from many threads.
class RouteStats {
 public:
  void Record(absl::Duration latency, uint64_t bytes, bool error);
  RouteCounters Get() const;

 private:
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> errors_{0};
  std::array<std::atomic<uint64_t>, LatencyHistogram::kBuckets> latency_{};
};

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_ROUTE_STATS_H_
