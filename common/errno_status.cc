#include "common/errno_status.h"

#include <cerrno>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace nighfs {
namespace {
constexpr char kErrnoUrl[] = "nighfs/errno";
}  // namespace

absl::Status PosixError(int err, absl::string_view message) {
  absl::Status s = absl::ErrnoToStatus(err, message);
  SetErrnoPayload(s, err);
  return s;
}

bool HasErrnoPayload(const absl::Status& status) {
  return status.GetPayload(kErrnoUrl).has_value();
}

void SetErrnoPayload(absl::Status& status, int err) {
  if (status.ok() || err <= 0) return;
  status.SetPayload(kErrnoUrl, absl::Cord(std::to_string(err)));
}

int StatusToErrno(const absl::Status& status) {
  if (status.ok()) return 0;
  if (auto p = status.GetPayload(kErrnoUrl); p.has_value()) {
    int err = 0;
    if (absl::SimpleAtoi(std::string(*p), &err) && err > 0) return err;
  }
  switch (status.code()) {
    case absl::StatusCode::kNotFound: return ENOENT;
    case absl::StatusCode::kAlreadyExists: return EEXIST;
    case absl::StatusCode::kPermissionDenied: return EACCES;
    case absl::StatusCode::kUnauthenticated: return EACCES;
    case absl::StatusCode::kInvalidArgument: return EINVAL;
    case absl::StatusCode::kOutOfRange: return EINVAL;
    case absl::StatusCode::kUnimplemented: return ENOSYS;
    case absl::StatusCode::kResourceExhausted: return ENOSPC;
    case absl::StatusCode::kFailedPrecondition: return EPERM;
    case absl::StatusCode::kCancelled: return EINTR;
    default: return EIO;
  }
}

}  // namespace nighfs
