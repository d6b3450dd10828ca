#include "tests/testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nighfs::testing {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path,
    const std::map<std::string, std::string>& extra_env) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::ErrnoToStatus(errno, "open " + log_path);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return absl::ErrnoToStatus(errno, "fork");
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // If the test process dies (a crash, a signal), its servers and mounts go too.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    for (const auto& [k, v] : extra_env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execvp(args[0], args.data());
    std::string msg = absl::StrCat("exec ", argv[0], ": ", std::strerror(errno), "\n");
    ssize_t unused = ::write(2, msg.data(), msg.size());
    (void)unused;
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(log_fd);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_path));
}

ChildProcess::~ChildProcess() {
  if (!exited_) (void)Stop(SIGTERM, absl::Seconds(10));
}

bool ChildProcess::Running() {
  if (exited_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    wait_status_ = st;
    return false;
  }
  return true;
}

absl::StatusOr<int> ChildProcess::Wait(absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (Running()) {
    if (absl::Now() >= end) return absl::DeadlineExceededError("process still running");
    absl::SleepFor(absl::Milliseconds(10));
  }
  return wait_status_;
}

absl::StatusOr<int> ChildProcess::Stop(int sig, absl::Duration timeout) {
  if (!Running()) return wait_status_;
  ::kill(pid_, sig);
  absl::StatusOr<int> st = Wait(timeout);
  if (st.ok()) {
    ::kill(-pid_, SIGKILL);  // stray children of the group (npm wrappers)
    return st;
  }
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  (void)Wait(absl::Seconds(5));
  return absl::DeadlineExceededError(absl::StrCat("pid ", pid_, " ignored signal ", sig));
}

std::string ChildProcess::ReadLog() const { return ReadFileOrEmpty(log_path_); }

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base && *base ? base : "/tmp", "/nighfs-test-XXXXXX");
  char* p = ::mkdtemp(tmpl.data());
  if (p != nullptr) {
    path_ = p;
    ::chmod(p, 0755);
  }
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

absl::Status WaitForTcpPort(int port, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::close(fd);
    if (r == 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("nothing listens on 127.0.0.1:", port));
}

bool WaitFor(const std::function<bool()>& pred, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (true) {
    if (pred()) return true;
    if (absl::Now() >= end) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

namespace {
std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}
}  // namespace

std::string BuildRoot() { return EnvOr("NIGHFS_BUILD_ROOT", "."); }
std::string SourceRoot() { return EnvOr("NIGHFS_SOURCE_ROOT", ".."); }

std::string NodeToolsDir() {
  std::string dir = EnvOr("NIGHFS_TOOLS_DIR", SourceRoot() + "/.tools");
  if (::access((dir + "/node_modules/.bin/s3rver").c_str(), X_OK) == 0) return dir;
  return "";
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace nighfs::testing
