// The `nighfs` admin command: volumes on a metadata server (`configure`) and the mounts of this
// host (`status`). nighfs_main.cc is a one-line wrapper so that tests can run the whole command
// in-process.
#ifndef NIGHFS_TOOLS_CLI_H_
#define NIGHFS_TOOLS_CLI_H_

#include <ostream>
#include <string_view>

namespace nighfs::tools {

// The nighfs release this binary belongs to, e.g. "0.1.0".
std::string_view NighfsVersion();

// Default metadata server when neither --meta nor $NIGHFS_META is given.
inline constexpr char kDefaultMetaAddress[] = "127.0.0.1:7420";

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed or was refused
inline constexpr int kExitUsage = 2;    // the command line is wrong

// Parses `argv` and runs the command, writing results to `out` and diagnostics to `err`.
// Returns the process exit status. Not thread-safe (it sets the process's log level).
int RunNighfsCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace nighfs::tools

#endif  // NIGHFS_TOOLS_CLI_H_
