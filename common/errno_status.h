// File-system errors cross module edges as absl::Status carrying the exact errno as a payload,
// so ENOTEMPTY, EISDIR, ENOTDIR... survive the trip through the metadata server and back.
#ifndef NIGHFS_COMMON_ERRNO_STATUS_H_
#define NIGHFS_COMMON_ERRNO_STATUS_H_


#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nighfs {

// A status whose canonical code follows absl::ErrnoToStatus and that remembers `err` exactly.
absl::Status PosixError(int err, absl::string_view message);

// The errno a status stands for: its payload if it has one, else a mapping of its code
// (NotFound -> ENOENT, AlreadyExists -> EEXIST, DeadlineExceeded/Unavailable/other -> EIO...).
// OK -> 0.
int StatusToErrno(const absl::Status& status);

// Whether `status` carries an explicit errno (set by PosixError or SetErrnoPayload).
bool HasErrnoPayload(const absl::Status& status);

// Attaches `err` to an existing status (used when decoding a wire error).
void SetErrnoPayload(absl::Status& status, int err);

}  // namespace nighfs

#endif  // NIGHFS_COMMON_ERRNO_STATUS_H_
