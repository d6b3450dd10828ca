// Round-trip-time estimation for one proxy member, and a group's RTT from its members.
//
// The estimate is min(peak-EWMA, median of the last `window` samples):
//  - peak-EWMA (Finagle's PeakEwma): a sample above the current value replaces it at once; a
//    sample below pulls it down with weight 1 - exp(-dt/decay), dt the time since the previous
//    sample, so the value decays toward lower samples with time constant `decay`;
//  - the windowed median ignores up to floor(window/2) outliers in a row.
// Together: one spike (a retransmitted packet, a stalled proxy thread) cannot raise the estimate
// (the median holds it); a real rise raises it once it is the majority of the window (3 samples
// of 5: both terms are up); a drop lowers it at once through the decaying peak-EWMA, without
// waiting for the median to turn. Outright failures are not RTT samples: health (health.h)
// ejects a member that fails or times out, at once.
#ifndef NIGHFS_PROXYSELECT_ESTIMATOR_H_
#define NIGHFS_PROXYSELECT_ESTIMATOR_H_

#include <deque>
#include <optional>
#include <vector>

#include "absl/time/time.h"

namespace nighfs::proxyselect {

struct EstimatorOptions {
  int window = 5;                             // samples the median looks at (odd is best)
  absl::Duration decay = absl::Seconds(5);    // the peak-EWMA's time constant
};

// Not thread-safe: the owner serializes calls.
class RttEstimator {
 public:
  explicit RttEstimator(EstimatorOptions options = {});

  void AddSample(absl::Time now, absl::Duration rtt);
  // nullopt until the first sample.
  std::optional<absl::Duration> estimate() const;
  std::optional<absl::Duration> last() const { return last_; }
  int samples() const { return samples_; }

 private:
  EstimatorOptions options_;
  std::deque<absl::Duration> window_;
  double peak_ewma_us_ = 0;
  absl::Time last_time_ = absl::InfinitePast();
  std::optional<absl::Duration> last_;
  int samples_ = 0;
};

// A group's RTT: the median of its healthy members' estimates (the mean of the two middle ones
// for an even count); nullopt when no healthy member has one. Why the median: rendezvous hashing
// spreads blocks evenly over the members, so a request's expected latency is a typical member's,
// not the best one's (the minimum would favour a group with one near member and several far
// ones); and unlike the mean, one slow member that is not (yet) ejected does not decide it.
std::optional<absl::Duration> GroupRtt(std::vector<absl::Duration> healthy_member_estimates);

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_ESTIMATOR_H_
