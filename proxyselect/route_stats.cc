#include "proxyselect/route_stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace nighfs::proxyselect {

int LatencyHistogram::BucketOf(absl::Duration d) {
  const int64_t us = std::max<int64_t>(1, absl::ToInt64Microseconds(d));
  const int power = std::bit_width(static_cast<uint64_t>(us)) - 1;  // 2^power <= us
  if (power >= 30) return kBuckets - 1;
  // Where us falls between 2^power and 2^(power+1), in kSubBuckets equal steps.
  const int64_t base = int64_t{1} << power;
  const int sub = static_cast<int>(((us - base) * kSubBuckets) >> power);
  return power * kSubBuckets + sub;
}

absl::Duration LatencyHistogram::UpperBound(int bucket) {
  if (bucket >= kBuckets - 1) return absl::InfiniteDuration();
  const int power = bucket / kSubBuckets;
  const int sub = bucket % kSubBuckets;
  const double us = std::ldexp(1.0 + static_cast<double>(sub + 1) / kSubBuckets, power);
  return absl::Microseconds(us);
}

void LatencyHistogram::AddToBucket(int bucket, uint64_t n) {
  counts_[std::clamp(bucket, 0, kBuckets - 1)] += n;
  count_ += n;
}

absl::Duration LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return absl::ZeroDuration();
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) return UpperBound(b);
  }
  return UpperBound(kBuckets - 1);
}

void RouteStats::Record(absl::Duration latency, uint64_t bytes, bool error) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  if (error) errors_.fetch_add(1, std::memory_order_relaxed);
  latency_[LatencyHistogram::BucketOf(latency)].fetch_add(1, std::memory_order_relaxed);
}

RouteCounters RouteStats::Get() const {
  // Each field is read on its own: a snapshot taken while calls run may be off by those calls.
  LatencyHistogram h;
  for (int b = 0; b < LatencyHistogram::kBuckets; ++b) {
    if (uint64_t n = latency_[b].load(std::memory_order_relaxed)) {
      h.AddToBucket(b, n);
    }
  }
  RouteCounters c;
  c.requests = requests_.load(std::memory_order_relaxed);
  c.bytes = bytes_.load(std::memory_order_relaxed);
  c.errors = errors_.load(std::memory_order_relaxed);
  c.p50 = h.Quantile(0.5);
  c.p99 = h.Quantile(0.99);
  return c;
}

}  // namespace nighfs::proxyselect
