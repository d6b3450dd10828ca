#include "common/retry.h"

#include <algorithm>
#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"

namespace nighfs {
namespace {

RetryPolicy FastPolicy(int max_attempts) {
  RetryPolicy p;
  p.max_attempts = max_attempts;
  p.initial_backoff = absl::Microseconds(100);
  p.max_backoff = absl::Milliseconds(1);
  p.deadline = absl::Seconds(30);
  return p;
}

TEST(RetryTest, RetriesUnavailableUntilSuccess) {
  int calls = 0;
  int retries_seen = 0;
  absl::Status s = RetryWithBackoff(
      FastPolicy(10),
      [&] { return ++calls < 4 ? absl::UnavailableError("down") : absl::OkStatus(); },
      [&](const absl::Status& st, int attempt) {
        EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
        EXPECT_EQ(attempt, ++retries_seen);
      });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(retries_seen, 3);
}

TEST(RetryTest, StopsAtMaxAttempts) {
  int calls = 0;
  absl::Status s = RetryWithBackoff(FastPolicy(3), [&] {
    ++calls;
    return absl::UnavailableError("still down");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(absl::StrContains(s.message(), "still down")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "3 attempts")) << s;
}

TEST(RetryTest, RetriesOtherTransientCodes) {
  for (auto code : {absl::StatusCode::kDeadlineExceeded, absl::StatusCode::kAborted,
                    absl::StatusCode::kResourceExhausted, absl::StatusCode::kInternal}) {
    int calls = 0;
    absl::Status s = RetryWithBackoff(FastPolicy(5), [&] {
      return ++calls < 2 ? absl::Status(code, "transient") : absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_EQ(calls, 2) << absl::StatusCodeToString(code);
  }
}

TEST(RetryTest, DoesNotRetryClientErrors) {
  for (auto code : {absl::StatusCode::kInvalidArgument, absl::StatusCode::kPermissionDenied,
                    absl::StatusCode::kNotFound, absl::StatusCode::kUnauthenticated,
                    absl::StatusCode::kFailedPrecondition}) {
    int calls = 0;
    absl::Status s = RetryWithBackoff(FastPolicy(5), [&] {
      ++calls;
      return absl::Status(code, "final");
    });
    EXPECT_EQ(s.code(), code);
    EXPECT_EQ(s.message(), "final");  // untouched: a single attempt
    EXPECT_EQ(calls, 1) << absl::StatusCodeToString(code);
  }
}

TEST(RetryTest, KeepsPayloadsOfTheLastAttempt) {
  int calls = 0;
  absl::Status s = RetryWithBackoff(FastPolicy(2), [&] {
    ++calls;
    absl::Status st = absl::UnavailableError("timed out");
    SetErrnoPayload(st, ETIMEDOUT);
    return st;
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusToErrno(s), ETIMEDOUT);

  // A non-retryable status comes back as is, payload included.
  s = RetryWithBackoff(FastPolicy(2), [] { return PosixError(ENOTEMPTY, "rmdir"); });
  EXPECT_EQ(StatusToErrno(s), ENOTEMPTY);
}

TEST(RetryTest, StopsAtDeadline) {
  RetryPolicy p;
  p.max_attempts = 0;  // unbounded: only the deadline stops it
  p.initial_backoff = absl::Milliseconds(1);
  p.max_backoff = absl::Milliseconds(5);
  p.deadline = absl::Milliseconds(200);
  int calls = 0;
  absl::Status s = RetryWithBackoff(p, [&] {
    ++calls;
    return absl::UnavailableError("down");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_GT(calls, 1);
}

// Every attempt is told the one deadline of the whole operation, so it can bound its own wait;
// none starts after it.
TEST(RetryTest, UntilDeadlineGivesEveryAttemptTheSameDeadline) {
  RetryPolicy p;
  p.max_attempts = 0;
  p.initial_backoff = absl::Milliseconds(1);
  p.max_backoff = absl::Milliseconds(5);
  p.deadline = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::Time first_deadline = absl::InfinitePast();
  int calls = 0;
  absl::Status s = RetryUntilDeadline(p, [&](absl::Time deadline) {
    if (calls++ == 0) first_deadline = deadline;
    EXPECT_EQ(deadline, first_deadline);
    EXPECT_LT(absl::Now(), deadline) << "an attempt started after the deadline";
    // An attempt that honours the deadline: waits for its answer until then at most.
    absl::SleepFor(std::min(absl::Milliseconds(40), deadline - absl::Now()));
    return absl::DeadlineExceededError("no answer");
  });
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GT(calls, 1);
  EXPECT_GE(first_deadline - start, absl::Milliseconds(299));
  EXPECT_LE(first_deadline - start, absl::Milliseconds(310));
  EXPECT_LT(took, absl::Milliseconds(300) + absl::Milliseconds(100));
}

}  // namespace
}  // namespace nighfs
