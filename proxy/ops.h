// nighfs-proxy's administration subcommands, run instead of the daemon:
//   nighfs-proxy init creds [--creds-file F] [--access-key-id ..] ...   (0600 file, see below)
//   nighfs-proxy init systemd [--now] --start-flags "..."                (a unit that runs it)
//   nighfs-proxy deinit creds | deinit systemd
// The daemon's main() calls RunProxyAdminCommand first.
#ifndef NIGHFS_PROXY_OPS_H_
#define NIGHFS_PROXY_OPS_H_

#include <optional>

namespace nighfs::proxy {

// If argv names an administration subcommand ("init" or "deinit" as argv[1]), runs it and
// returns its exit code; otherwise returns nullopt and the caller runs the daemon.
std::optional<int> RunProxyAdminCommand(int argc, char** argv);

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_OPS_H_
