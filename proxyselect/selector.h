// Which proxy group a mount routes through, with hysteresis (Cassandra's dynamic snitch switches
// only past a badness threshold): the current group is kept unless
//  - it is unhealthy (no healthy member) or gone from the configuration: switch at once to the
//    best healthy group, or to none (direct) if there is none; or
//  - another healthy group has been better for `hold` without a break, by BOTH
//    margins: its RTT is at most (1 - switch_ratio) × the current one AND at least
//    `switch_margin` below it. The relative margin keeps jitter on slow routes from mattering,
//    the absolute one jitter on fast routes (1 ms vs 1.4 ms is not worth a switch).
// During `settle_grace` after the first update, and after a switch from no group (direct) to a
// group, a better group (by the same margins) is taken without the hold: a probe round's answers
// arrive one by one, and the first group that answered (or was readmitted) must not keep the
// mount for a whole hold time. A switch away from a live group never gets this grace, so a group
// that recovers waits the hold. A group with no RTT yet (no healthy member measured) is only
// chosen when no group has one.
#ifndef NIGHFS_PROXYSELECT_SELECTOR_H_
#define NIGHFS_PROXYSELECT_SELECTOR_H_

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace nighfs::proxyselect {

struct SelectorOptions {
  double switch_ratio = 0.3;
  absl::Duration switch_margin = absl::Milliseconds(2);
  absl::Duration hold = absl::Seconds(5);
  absl::Duration settle_grace = absl::Seconds(3);
  size_t keep_switches = 16;
};

// What the selector sees of one group.
struct GroupView {
  std::string name;
  bool healthy = false;               // has at least one healthy member
  std::optional<absl::Duration> rtt;  // GroupRtt of its healthy members
  std::string why;                    // why unhealthy, in words ("" if healthy)
};

struct SwitchRecord {
  absl::Time time;
  std::string from;  // group name; "" = none (direct)
  std::string to;
  std::string reason;
};

struct Selection {
  std::string group;   // "" = no group can serve: direct
  std::string reason;  // why this group, in words
  bool switched = false;
};

// Not thread-safe: the owner serializes calls.
class GroupSelector {
 public:
  explicit GroupSelector(SelectorOptions options = {});

  // Re-decides from the groups' state at `now` (call after every probe round or health change;
  // the hold is measured between calls, so call at least once per probe interval).
  Selection Update(absl::Time now, const std::vector<GroupView>& groups);

  const Selection& current() const { return current_; }
  // The last switches, oldest first. The first choice after construction is not one.
  const std::deque<SwitchRecord>& switches() const { return switches_; }

 private:
  void SwitchTo(absl::Time now, const std::string& to, std::string reason);
  bool Better(absl::Duration candidate, absl::Duration current) const;

  SelectorOptions options_;
  Selection current_;
  bool started_ = false;
  bool chosen_before_ = false;  // a selection (group or none) was made before
  absl::Time settle_until_ = absl::InfinitePast();  // switches without the hold until then
  // The candidate that has been better without a break since `better_since_`.
  std::string candidate_;
  absl::Time better_since_ = absl::InfiniteFuture();
  std::deque<SwitchRecord> switches_;
};

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_SELECTOR_H_
