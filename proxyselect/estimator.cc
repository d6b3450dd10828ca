#include "proxyselect/estimator.h"

#include <algorithm>
#include <cmath>

namespace nighfs::proxyselect {

RttEstimator::RttEstimator(EstimatorOptions options) : options_(options) {
  if (options_.window < 1) options_.window = 1;
}

void RttEstimator::AddSample(absl::Time now, absl::Duration rtt) {
  if (rtt < absl::ZeroDuration()) rtt = absl::ZeroDuration();
  const double us = absl::ToDoubleMicroseconds(rtt);
  if (samples_ == 0 || us >= peak_ewma_us_) {
    peak_ewma_us_ = us;  // the peak: taken at once
  } else {
    const double dt = std::max(0.0, absl::ToDoubleSeconds(now - last_time_));
    const double tau = std::max(1e-9, absl::ToDoubleSeconds(options_.decay));
    const double w = std::exp(-dt / tau);  // weight kept by the old value
    peak_ewma_us_ = peak_ewma_us_ * w + us * (1 - w);
  }
  last_time_ = now;
  last_ = rtt;
  ++samples_;
  window_.push_back(rtt);
  while (static_cast<int>(window_.size()) > options_.window) window_.pop_front();
}

std::optional<absl::Duration> RttEstimator::estimate() const {
  if (samples_ == 0) return std::nullopt;
  std::vector<absl::Duration> sorted(window_.begin(), window_.end());
  std::sort(sorted.begin(), sorted.end());
  // The lower median for an even count: with 2 samples one spike does not count.
  const absl::Duration median = sorted[(sorted.size() - 1) / 2];
  return std::min(median, absl::Microseconds(peak_ewma_us_));
}

std::optional<absl::Duration> GroupRtt(std::vector<absl::Duration> estimates) {
  if (estimates.empty()) return std::nullopt;
  std::sort(estimates.begin(), estimates.end());
  const size_t n = estimates.size();
  if (n % 2 == 1) return estimates[n / 2];
  return (estimates[n / 2 - 1] + estimates[n / 2]) / 2;
}

}  // namespace nighfs::proxyselect
