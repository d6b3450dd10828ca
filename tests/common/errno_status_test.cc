#include "common/errno_status.h"

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace nighfs {
namespace {

TEST(ErrnoStatusTest, RoundTripsExactErrno) {
  for (int err : {ENOENT, EEXIST, ENOTEMPTY, EISDIR, ENOTDIR, EACCES, EPERM, ENOSPC, EROFS,
                  ENAMETOOLONG, EXDEV, EINVAL, EIO, EFBIG, ELOOP, ESTALE, EDQUOT}) {
    absl::Status s = PosixError(err, "op failed");
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(StatusToErrno(s), err) << "errno " << err;
    EXPECT_EQ(s.code(), absl::ErrnoToStatus(err, "").code()) << "errno " << err;
    // absl::ErrnoToStatus appends strerror(err) to the message.
    EXPECT_TRUE(absl::StartsWith(s.message(), "op failed")) << s;
  }
}

TEST(ErrnoStatusTest, OkIsZero) { EXPECT_EQ(StatusToErrno(absl::OkStatus()), 0); }

TEST(ErrnoStatusTest, CodesWithoutPayloadMapToAnErrno) {
  EXPECT_EQ(StatusToErrno(absl::NotFoundError("x")), ENOENT);
  EXPECT_EQ(StatusToErrno(absl::AlreadyExistsError("x")), EEXIST);
  EXPECT_EQ(StatusToErrno(absl::PermissionDeniedError("x")), EACCES);
  EXPECT_EQ(StatusToErrno(absl::InvalidArgumentError("x")), EINVAL);
  EXPECT_EQ(StatusToErrno(absl::UnavailableError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::DeadlineExceededError("x")), EIO);
  EXPECT_EQ(StatusToErrno(absl::InternalError("x")), EIO);
}

TEST(ErrnoStatusTest, SetErrnoPayloadOverridesCodeMapping) {
  absl::Status s = absl::FailedPreconditionError("not empty");
  SetErrnoPayload(s, ENOTEMPTY);
  EXPECT_EQ(StatusToErrno(s), ENOTEMPTY);
  // Nothing is attached to OK, and non-positive errnos are ignored.
  absl::Status ok = absl::OkStatus();
  SetErrnoPayload(ok, ENOENT);
  EXPECT_TRUE(ok.ok());
  absl::Status t = absl::NotFoundError("x");
  SetErrnoPayload(t, 0);
  EXPECT_EQ(StatusToErrno(t), ENOENT);
}

}  // namespace
}  // namespace nighfs
