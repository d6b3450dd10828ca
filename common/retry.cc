#include "common/retry.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nighfs {

bool IsRetryable(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

namespace {

// The last failure, saying how many attempts were made when there was more than one.
absl::Status WithAttempts(const absl::Status& s, int n) {
  if (n == 1) return s;
  absl::Status out(s.code(), absl::StrCat(s.message(), " (after ", n, " attempts)"));
  s.ForEachPayload([&](absl::string_view url, const absl::Cord& p) { out.SetPayload(url, p); });
  return out;
}

}  // namespace

absl::Status RetryWithBackoff(const RetryPolicy& policy, const std::function<absl::Status()>& attempt,
                              const std::function<void(const absl::Status&, int)>& on_retry) {
  return RetryUntilDeadline(policy, [&](absl::Time) { return attempt(); }, on_retry);
}

absl::Status RetryUntilDeadline(const RetryPolicy& policy,
                                const std::function<absl::Status(absl::Time)>& attempt,
                                const std::function<void(const absl::Status&, int)>& on_retry) {
  thread_local absl::BitGen gen;
  const absl::Time give_up = absl::Now() + policy.deadline;
  absl::Duration backoff = policy.initial_backoff;
  for (int n = 1;; ++n) {
    absl::Status s = attempt(give_up);
    if (s.ok() || !IsRetryable(s)) return s;
    const bool out_of_attempts = policy.max_attempts > 0 && n >= policy.max_attempts;
    // Full jitter: sleep uniformly in [0, backoff] so many clients do not retry in step.
    absl::Duration sleep = absl::Nanoseconds(
        absl::Uniform<int64_t>(gen, 0, std::max<int64_t>(1, absl::ToInt64Nanoseconds(backoff))));
    // An attempt needs some time left to be worth starting: with less than kMinAttempt it
    // would only hide this failure behind a timeout, and it could start past the deadline
    // (the clock moves between this check and the attempt).
    constexpr absl::Duration kMinAttempt = absl::Milliseconds(1);
    if (out_of_attempts || absl::Now() + sleep + kMinAttempt >= give_up) {
      return WithAttempts(s, n);
    }
    if (on_retry) on_retry(s, n);
    absl::SleepFor(sleep);
    // Woken late.
    if (absl::Now() + kMinAttempt >= give_up) return WithAttempts(s, n);
    backoff = std::min(policy.max_backoff, backoff * 2);
  }
}

}  // namespace nighfs
