// Credential files of nighfs clients (mount.nighfs -o token_file=, nighfs --admin-token-file).
#ifndef NIGHFS_COMMON_TOKEN_FILE_H_
#define NIGHFS_COMMON_TOKEN_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace nighfs {

// Reads a token from `path`: refused (PermissionDenied, with the chmod to run) when group or
// others may read or write it, as ssh refuses a private key; InvalidArgument when it is empty.
// Returns the token with surrounding whitespace removed. Errors name the path, never the
// contents.
absl::StatusOr<std::string> ReadPrivateTokenFile(const std::string& path);

}  // namespace nighfs

#endif  // NIGHFS_COMMON_TOKEN_FILE_H_
