// Finds the running mounts of this host from the status files mount.nighfs keeps in its run
// directory (/run/nighfs/mounts/<pid>.json, proto3 JSON of nighfs.status.v1.MountStatus).
#ifndef NIGHFS_TOOLS_MOUNT_STATUS_H_
#define NIGHFS_TOOLS_MOUNT_STATUS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "status.pb.h"

namespace nighfs::tools {

namespace statuspb = ::nighfs::status::v1;

inline constexpr char kDefaultRunDir[] = "/run/nighfs/mounts";

// $NIGHFS_RUN_DIR if set and not empty, else kDefaultRunDir.
std::string MountRunDir();

struct MountStatusFile {
  std::string path;
  pid_t pid = 0;     // from the file name
  std::string json;  // the file as read, for --json
  statuspb::MountStatus status;
};

// A file that does not describe a running mount.
struct SkippedStatusFile {
  std::string path;
  pid_t pid = 0;
  std::string reason;       // e.g. "process 1234 is not running"
  std::string mount_point;  // from the file when it could still be read, else ""
};

struct MountScan {
  std::vector<MountStatusFile> mounts;    // live mounts, sorted by mount point
  std::vector<SkippedStatusFile> stale;   // left behind by a mount daemon that is gone
  std::vector<SkippedStatusFile> broken;  // owner alive but the file is unreadable or not JSON
};

struct ScanOptions {
  std::string dir;  // "" = MountRunDir()
  // Whether process `pid` exists. The default asks the kernel (kill(pid, 0); EPERM counts as
  // alive: another user's daemon). Tests may substitute their own.
  std::function<bool(pid_t)> pid_alive;
};

// Reads every <pid>.json in the directory. A directory that does not exist means no mounts
// (the daemon creates it on first mount), not an error; one that cannot be listed is.
// Files of other names (temporary files of an atomic rename, say) are ignored.
absl::StatusOr<MountScan> ScanMounts(const ScanOptions& options = {});

// The mount whose mount point is `path`, compared first as normalized absolute paths and then
// after resolving symlinks. Resolving touches the file system, and stat() on the root of a
// hung FUSE mount can block, so it is only tried when the plain comparison finds nothing.
// Returns nullptr when no mount matches.
const MountStatusFile* FindMount(const MountScan& scan, const std::string& path);

// The stale file left by a dead daemon that was mounted at `path` (compared as FindMount does,
// without resolving the recorded mount points); nullptr if none.
const SkippedStatusFile* FindStale(const MountScan& scan, const std::string& path);

}  // namespace nighfs::tools

#endif  // NIGHFS_TOOLS_MOUNT_STATUS_H_
