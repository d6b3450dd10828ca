// ASSERT_OK / EXPECT_OK and a StatusIs matcher for absl::Status(Or) in GoogleTest.
#ifndef NIGHFS_TESTS_TESTING_TEST_STATUS_H_
#define NIGHFS_TESTS_TESTING_TEST_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nighfs::testing {
inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <class T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) { return s.status(); }
}  // namespace nighfs::testing

// Both evaluate `expr` once and accept more context with <<.
#define EXPECT_OK(expr)                                                               \
  switch (0)                                                                          \
  case 0:                                                                             \
  default:                                                                            \
    if (const ::absl::Status nighfs_s_ = ::nighfs::testing::GetStatus(expr);          \
        nighfs_s_.ok()) {                                                             \
    } else                                                                            \
      ADD_FAILURE() << #expr << ": " << nighfs_s_ << " "
#define ASSERT_OK(expr)                                                               \
  switch (0)                                                                          \
  case 0:                                                                             \
  default:                                                                            \
    if (const ::absl::Status nighfs_s_ = ::nighfs::testing::GetStatus(expr);          \
        nighfs_s_.ok()) {                                                             \
    } else                                                                            \
      FAIL() << #expr << ": " << nighfs_s_ << " "

// EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kNotFound));
MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  return ::nighfs::testing::GetStatus(arg).code() == code;
}

#endif  // NIGHFS_TESTS_TESTING_TEST_STATUS_H_
