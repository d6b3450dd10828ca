#include "proxyselect/selector.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nighfs::proxyselect {
namespace {

std::string Ms(absl::Duration d) {
  return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(d));
}

}  // namespace

GroupSelector::GroupSelector(SelectorOptions options) : options_(options) {
  current_.reason = "no group measured yet";
}

bool GroupSelector::Better(absl::Duration candidate, absl::Duration current) const {
  return candidate <= current * (1.0 - options_.switch_ratio) &&
         current - candidate >= options_.switch_margin;
}

void GroupSelector::SwitchTo(absl::Time now, const std::string& to, std::string reason) {
  candidate_.clear();
  better_since_ = absl::InfiniteFuture();
  if (to == current_.group) {
    current_.reason = std::move(reason);
    current_.switched = false;
    return;
  }
  if (current_.group.empty()) settle_until_ = now + options_.settle_grace;  // back from direct
  // The very first choice is not a switch (nothing was routed before it).
  if (chosen_before_) {
    switches_.push_back(SwitchRecord{now, current_.group, to, reason});
    while (switches_.size() > options_.keep_switches) switches_.pop_front();
  }
  chosen_before_ = true;
  current_ = Selection{to, std::move(reason), true};
}

Selection GroupSelector::Update(absl::Time now, const std::vector<GroupView>& groups) {
  if (!started_) {
    started_ = true;
    settle_until_ = now + options_.settle_grace;
  }
  current_.switched = false;

  // The best healthy group: lowest RTT among the measured ones; unmeasured ones only if no
  // group is measured. Ties go to configuration order.
  const GroupView* best = nullptr;
  const GroupView* cur = nullptr;
  for (const GroupView& g : groups) {
    if (g.name == current_.group) cur = &g;
    if (!g.healthy) continue;
    if (best == nullptr || (g.rtt && (!best->rtt || *g.rtt < *best->rtt))) best = &g;
  }

  if (best == nullptr) {
    std::string why = "no healthy proxy group";
    if (groups.empty()) why = "no proxy group configured";
    for (const GroupView& g : groups) absl::StrAppend(&why, "; ", g.name, ": ", g.why);
    SwitchTo(now, "", std::move(why));
    return current_;
  }
  if (cur == nullptr || !cur->healthy) {
    std::string why;
    if (current_.group.empty()) {
      why = "first healthy group";
    } else if (cur == nullptr) {
      why = absl::StrCat(current_.group, " left the configuration");
    } else {
      why = absl::StrCat(current_.group, " unhealthy: ", cur->why);
    }
    absl::StrAppend(&why, "; ", best->name, " is the nearest healthy group",
                    best->rtt ? absl::StrCat(" (", Ms(*best->rtt), ")") : " (not measured yet)");
    SwitchTo(now, best->name, std::move(why));
    return current_;
  }
  if (!cur->rtt) {
    if (best->rtt) {
      SwitchTo(now, best->name,
               absl::StrCat(cur->name, " not measured yet; ", best->name, " measured at ",
                            Ms(*best->rtt)));
    } else {
      current_.reason = absl::StrCat(cur->name, " healthy, no group measured yet");
    }
    return current_;
  }
  if (best == cur || !best->rtt || !Better(*best->rtt, *cur->rtt)) {
    candidate_.clear();
    better_since_ = absl::InfiniteFuture();
    current_.reason =
        best == cur
            ? absl::StrCat(cur->name, " is the nearest healthy group (", Ms(*cur->rtt), ")")
            : absl::StrCat(cur->name, " kept (", Ms(*cur->rtt), "); ", best->name, " at ",
                           Ms(*best->rtt), " is not better by the switch threshold");
    return current_;
  }
  // `best` is better by both margins: switch once it has been for the hold time (at once
  // while settling after start-up or a return from direct).
  if (candidate_ != best->name) {
    candidate_ = best->name;
    better_since_ = now;
  }
  const std::string cmp = absl::StrCat(best->name, " at ", Ms(*best->rtt), " vs ", cur->name,
                                       " at ", Ms(*cur->rtt));
  if (now < settle_until_) {
    SwitchTo(now, best->name, absl::StrCat(cmp, " (settling after start-up or direct)"));
  } else if (now - better_since_ >= options_.hold) {
    SwitchTo(now, best->name,
             absl::StrCat(cmp, ", better for ", absl::FormatDuration(now - better_since_)));
  } else {
    current_.reason = absl::StrCat(cur->name, " kept: ", cmp, ", better for ",
                                   absl::FormatDuration(now - better_since_), " of ",
                                   absl::FormatDuration(options_.hold));
  }
  return current_;
}

}  // namespace nighfs::proxyselect
