// Retries with exponential backoff and full jitter, bounded by attempts and a total deadline.
#ifndef NIGHFS_COMMON_RETRY_H_
#define NIGHFS_COMMON_RETRY_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace nighfs {

struct RetryPolicy {
  int max_attempts = 8;                         // 0 = unbounded (until the deadline)
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration deadline = absl::Seconds(60);  // total time across all attempts
};

// Whether a failure may succeed if tried again: Unavailable, DeadlineExceeded, Aborted,
// ResourceExhausted (throttling) and Internal (5xx). Never auth or other client errors.
bool IsRetryable(const absl::Status& s);

// Calls `attempt` until it returns OK, a non-retryable status, or the policy runs out.
// The returned status is the last attempt's, with the attempt count added to its message
// when more than one was made. `on_retry` (optional) sees each failure before the sleep.
absl::Status RetryWithBackoff(const RetryPolicy& policy, const std::function<absl::Status()>& attempt,
                              const std::function<void(const absl::Status&, int attempt)>& on_retry = {});

// The same, with policy.deadline a hard bound on the whole operation: `attempt` is given the
// time by which it must be done, and should bound its own wait by it (e.g. a request timeout of
// min(its usual timeout, deadline - now)). No attempt starts, and no backoff sleeps, past the
// deadline; if one would, the last failure is returned.
absl::Status RetryUntilDeadline(
    const RetryPolicy& policy, const std::function<absl::Status(absl::Time deadline)>& attempt,
    const std::function<void(const absl::Status&, int attempt)>& on_retry = {});

}  // namespace nighfs

#endif  // NIGHFS_COMMON_RETRY_H_
