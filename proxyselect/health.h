// A proxy member's health from probes and real requests (Envoy's outlier detection):
//  - a failed or timed-out request or probe ejects the member at once;
//  - an ejected member is readmitted once its ejection time has passed AND it then answered
//    `readmit_after` probes in a row (real requests do not go to ejected members, so only
//    probes can prove it back);
//  - the ejection time doubles with each ejection that follows a readmission (base, 2×base, ...,
//    capped at max_ejection), and the doubling is forgotten after the member stayed healthy for
//    `forget_after`: a flapping member stays out longer and longer, a member that failed once
//    a day is out for the base time each time.
// A failure while ejected restarts the ejection time (same length) and the run of successes.
#ifndef NIGHFS_PROXYSELECT_HEALTH_H_
#define NIGHFS_PROXYSELECT_HEALTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace nighfs::proxyselect {

struct HealthOptions {
  int readmit_after = 2;                              // consecutive successful probes
  absl::Duration base_ejection = absl::Seconds(1);
  absl::Duration max_ejection = absl::Seconds(30);
  absl::Duration forget_after = absl::Minutes(5);     // healthy this long: doubling reset
};

enum class Source { kProbe, kRequest };

// Not thread-safe: the owner serializes calls. Times come from the caller (an injected clock).
class MemberHealth {
 public:
  explicit MemberHealth(HealthOptions options = {});

  void OnSuccess(absl::Time now, Source source);
  void OnFailure(absl::Time now, Source source, const absl::Status& status);

  bool healthy() const { return !ejected_; }
  // Why, in words: "ok", "ejected until <time>: <status> (probe)", "ejected, 1/2 probes ok: ...".
  std::string why() const;
  // The current (or last) ejection's length, and how many ejections in a row it counts.
  absl::Duration ejection_time() const { return ejection_time_; }
  int ejections() const { return ejections_; }
  absl::Time ejected_until() const { return ejected_until_; }

 private:
  HealthOptions options_;
  bool ejected_ = false;
  absl::Time ejected_until_ = absl::InfinitePast();
  absl::Time healthy_since_ = absl::InfinitePast();
  absl::Duration ejection_time_ = absl::ZeroDuration();
  int ejections_ = 0;     // ejections since the doubling was last forgotten
  int successes_ = 0;     // consecutive successful probes after the ejection time
  std::string last_failure_;
};

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_HEALTH_H_
