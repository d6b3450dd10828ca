#include "proxyselect/health.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nighfs::proxyselect {

MemberHealth::MemberHealth(HealthOptions options) : options_(options) {
  options_.readmit_after = std::max(1, options_.readmit_after);
}

void MemberHealth::OnSuccess(absl::Time now, Source source) {
  if (!ejected_) {
    if (ejections_ > 0 && now - healthy_since_ >= options_.forget_after) ejections_ = 0;
    return;
  }
  // Only probes readmit: a real request reaching an ejected member is a last resort, and one
  // success of it says less than the probes' steady run.
  if (source != Source::kProbe || now < ejected_until_) return;
  if (++successes_ >= options_.readmit_after) {
    ejected_ = false;
    successes_ = 0;
    healthy_since_ = now;
  }
}

void MemberHealth::OnFailure(absl::Time now, Source source, const absl::Status& status) {
  last_failure_ = absl::StrCat(status.ToString(),
                               source == Source::kProbe ? " (probe)" : " (request)");
  successes_ = 0;
  if (ejected_) {
    // Still failing: the ejection starts over, not longer (the doubling is for flapping).
    ejected_until_ = std::max(ejected_until_, now + ejection_time_);
    return;
  }
  if (ejections_ > 0 && now - healthy_since_ >= options_.forget_after) ejections_ = 0;
  ejection_time_ = options_.base_ejection;
  for (int i = 0; i < ejections_ && ejection_time_ < options_.max_ejection; ++i) {
    ejection_time_ *= 2;
  }
  ejection_time_ = std::min(ejection_time_, options_.max_ejection);
  ++ejections_;
  ejected_ = true;
  ejected_until_ = now + ejection_time_;
}

std::string MemberHealth::why() const {
  if (!ejected_) return "ok";
  return absl::StrFormat("ejected for %s (ejection %d), %d/%d probes ok since: %s",
                         absl::FormatDuration(ejection_time_), ejections_, successes_,
                         options_.readmit_after, last_failure_);
}

}  // namespace nighfs::proxyselect
