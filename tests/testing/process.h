// Test helpers for starting real daemons (nighfs-meta, s3rver, Azurite, mount.nighfs) and
// cleaning up after them even when a test fails: every resource here is RAII.
#ifndef NIGHFS_TESTS_TESTING_PROCESS_H_
#define NIGHFS_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nighfs::testing {

// A child process in its own process group. It gets SIGTERM when the *thread* that started it
// exits (PR_SET_PDEATHSIG), so a crashed test leaves no daemon behind: start long-lived
// children from the test's main thread. The destructor sends SIGTERM, waits up to 10 s,
// then SIGKILLs the group. Output goes to `log_path` (appended) so failures can be read.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::vector<std::string>& argv, const std::string& log_path,
      const std::map<std::string, std::string>& extra_env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `sig` and waits up to `timeout` for the exit; returns the wait status, or
  // DeadlineExceeded (the process is then SIGKILLed).
  absl::StatusOr<int> Stop(int sig = 15, absl::Duration timeout = absl::Seconds(10));
  // Waits for the process to exit on its own.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  ChildProcess(pid_t pid, std::string log) : pid_(pid), log_path_(std::move(log)) {}
  pid_t pid_;
  bool exited_ = false;
  int wait_status_ = 0;
  std::string log_path_;
};

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot bind port 0).
int FreeLoopbackPort();
// Polls until something accepts connections on 127.0.0.1:port.
absl::Status WaitForTcpPort(int port, absl::Duration timeout);
// Polls `pred` every 20 ms until it is true or `timeout` passes.
bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout);

// Paths set by meson for tests: the build root (binaries) and the source root.
std::string BuildRoot();
std::string SourceRoot();
// The folder with node_modules/.bin/{s3rver,azurite-blob}; "" if the emulators are not installed.
std::string NodeToolsDir();
// True when running in CI (CI=true): tests that need FUSE or the emulators must not skip there.
bool InCi();

std::string ReadFileOrEmpty(const std::string& path);

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_TESTING_PROCESS_H_
