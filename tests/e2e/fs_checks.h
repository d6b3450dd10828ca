// File-system checks and helpers shared by the end-to-end suites (local folder and cloud
// stores): plain syscalls on a mounted nighfs volume, reported with gtest assertions.
#ifndef NIGHFS_TESTS_E2E_FS_CHECKS_H_
#define NIGHFS_TESTS_E2E_FS_CHECKS_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

namespace nighfs::testing {

// n pseudo-random bytes, the same for the same seed.
std::string RandomBytes(size_t n, uint32_t seed);
// Creates or truncates `path` and writes `data` through 1 MiB writes; false on any error.
bool WriteFile(const std::string& path, const std::string& data);
// The whole file, "" if it cannot be read.
std::string ReadFile(const std::string& path);
// Rename over an existing file, hard links (st_nlink, same inode) and symlinks in `dir`.
// Leaves "b" (content "AAA") and symlink "s" -> "b" behind.
void CheckRenameLinksSymlinks(const std::string& dir);

// Runs `fn` in a forked child as uid/gid with no supplementary groups; returns its exit code
// (99 if the credentials could not be set, 98 if it did not exit normally).
int AsUser(uid_t uid, gid_t gid, const std::function<int()>& fn);
// The errno of a failed call (rc != 0) as an exit code for AsUser, 0 on success.
int Errno(int rc);

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_E2E_FS_CHECKS_H_
