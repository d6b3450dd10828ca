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

void LatencyHistogram::Add(absl::Duration d) {
  ++counts_[BucketOf(d)];
  ++count_;
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
  absl::MutexLock lock(&mu_);
  ++requests_;
  bytes_ += bytes;
  if (error) ++errors_;
  latency_.Add(latency);
}

RouteCounters RouteStats::Get() const {
  absl::MutexLock lock(&mu_);
  RouteCounters c;
  c.requests = requests_;
  c.bytes = bytes_;
  c.errors = errors_;
  c.p50 = latency_.Quantile(0.5);
  c.p99 = latency_.Quantile(0.99);
  return c;
}

}  // namespace nighfs::proxyselect
