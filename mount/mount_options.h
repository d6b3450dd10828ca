// Parsing of mount.nighfs's command line, in the forms both people and mount(8) use:
//   mount.nighfs VOLUME@HOST:PORT MOUNTPOINT [-o opt[,opt...]] [-f] [-d]
//   mount.nighfs nighfs://HOST:PORT/VOLUME MOUNTPOINT ...
#ifndef NIGHFS_MOUNT_MOUNT_OPTIONS_H_
#define NIGHFS_MOUNT_MOUNT_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mount/filesystem.h"

namespace nighfs::fs {

struct MountOptions {
  std::string volume;
  std::string meta_address;  // "host:port" (TLS), or "http://host:port" (plain)
  std::string ca_file;       // -o ca_file=PATH, absolute; empty: the system CA store
  std::string mount_point;
  bool foreground = false;
  bool debug = false;
  bool read_only = false;
  bool allow_other = true;
  // Mount even where something is mounted already (stacking a second mount on top).
  bool allow_stacked = false;
  absl::Duration meta_timeout = absl::Seconds(60);
  absl::Duration mount_timeout = absl::Seconds(10);
  std::string credentials_file = "/etc/nighfs/credentials";
  bool credentials_given = false;  // -o credentials=FILE: then the file must exist
  // -o token_file=PATH: the volume token (mode 0600, else refused); required by the server.
  std::string token_file;
  // -o proxy=HOST:PORT (https; http://HOST:PORT for plain text): every block request goes
  // through this nighfs-proxy, authenticated with the volume token and verified with ca_file.
  // The mount then needs no store credentials. "" = straight to the object store.
  std::string proxy;
  // Proxy-group routing (issue 13; used when the volume has groups and no -o proxy=): every
  // member is pinged each probe_interval, a ping unanswered after probe_timeout fails, and one
  // block call may take route_deadline across all routes and retries.
  absl::Duration probe_interval = absl::Seconds(1);
  absl::Duration probe_timeout = absl::Milliseconds(500);
  absl::Duration route_deadline = absl::Seconds(60);
  std::string log_level;
  std::string log_file;  // "" = default for background mounts
  std::string fsname;
  std::vector<std::string> kernel_options;  // passed to the kernel mount (nosuid, noatime...)
  FsOptions fs;
};

// Parses argv (argv[0] excluded). Unknown options are an error that names them.
absl::StatusOr<MountOptions> ParseMountArgs(const std::vector<std::string>& args);

// "VOLUME@HOST:PORT" or "nighfs://HOST:PORT/VOLUME" -> (volume, host:port).
absl::Status ParseVolumeSpec(const std::string& spec, std::string* volume, std::string* address);

std::string MountUsage();

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_MOUNT_OPTIONS_H_
