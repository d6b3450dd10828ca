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

#define EXPECT_OK(expr) EXPECT_TRUE(::nighfs::testing::GetStatus(expr).ok()) << ::nighfs::testing::GetStatus(expr)
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    const auto& nighfs_s_ = (expr);                                            \
    ASSERT_TRUE(::nighfs::testing::GetStatus(nighfs_s_).ok())                  \
        << ::nighfs::testing::GetStatus(nighfs_s_);                            \
  } while (0)

// EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kNotFound));
MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  return ::nighfs::testing::GetStatus(arg).code() == code;
}

#endif  // NIGHFS_TESTS_TESTING_TEST_STATUS_H_
