#include "tools/mount_status.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/connect.h"  // ValidUtf8
#include "google/protobuf/util/json_util.h"

namespace nighfs::tools {
namespace {

namespace fs = std::filesystem;

bool KernelSaysAlive(pid_t pid) {
  if (::kill(pid, 0) == 0) return true;
  return errno == EPERM;
}

// "1234.json" -> 1234; 0 for any other name.
pid_t PidFromFileName(const std::string& name) {
  constexpr std::string_view kSuffix = ".json";
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) return 0;
  const std::string_view digits(name.data(), name.size() - kSuffix.size());
  long value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size() || value <= 0 ||
      value > 0x7fffffffL) {
    return 0;
  }
  return static_cast<pid_t>(value);
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  std::string data;
  char buf[16384];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
    // A status file is a few KiB; anything this large is not one.
    if (data.size() > (4u << 20)) return absl::DataLossError(absl::StrCat(path, " is too large"));
  }
  return data;
}

// Absolute and lexically normal, without a trailing slash (except for "/"); no I/O.
std::string NormalPath(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(p), ec);
  if (ec) abs = fs::path(p);
  std::string s = abs.lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string RealPathOr(const std::string& p, const std::string& fallback) {
  char* r = ::realpath(p.c_str(), nullptr);
  if (r == nullptr) return fallback;
  std::string s(r);
  std::free(r);
  return s;
}

absl::Status ParseStatus(const std::string& json, statuspb::MountStatus* status) {
  google::protobuf::util::JsonParseOptions options;
  // A newer daemon may report fields this tool does not know yet.
  options.ignore_unknown_fields = true;
  // protobuf 3.21 has its own Status type: carry the message over.
  const auto s = google::protobuf::util::JsonStringToMessage(json, status, options);
  if (s.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(s.message()));
}

}  // namespace

std::string MountRunDir() {
  const char* env = std::getenv("NIGHFS_RUN_DIR");
  if (env != nullptr && *env != '\0') return env;
  return kDefaultRunDir;
}

absl::StatusOr<MountScan> ScanMounts(const ScanOptions& options) {
  const std::string dir = options.dir.empty() ? MountRunDir() : options.dir;
  const auto pid_alive = options.pid_alive ? options.pid_alive : KernelSaysAlive;
  MountScan scan;

  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec == std::errc::no_such_file_or_directory) return scan;
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), absl::StrCat("cannot list ", dir));
  }
  std::vector<fs::path> files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    files.push_back(it->path());
  }
  if (ec) return absl::ErrnoToStatus(ec.value(), absl::StrCat("cannot list ", dir));
  std::sort(files.begin(), files.end());

  for (const fs::path& file : files) {
    const pid_t pid = PidFromFileName(file.filename().string());
    if (pid == 0) continue;
    const std::string path = file.string();
    absl::StatusOr<std::string> json = ReadWholeFile(path);
    // Removed between listing and reading: the daemon unmounted cleanly just now.
    if (absl::IsNotFound(json.status())) continue;
    if (!pid_alive(pid)) {
      // Best effort: the mount point tells the user what to unmount.
      statuspb::MountStatus old;
      std::string mount_point;
      if (json.ok() && ParseStatus(*json, &old).ok()) mount_point = old.mount_point();
      scan.stale.push_back(
          {path, pid, absl::StrCat("process ", pid, " is not running"), std::move(mount_point)});
      continue;
    }
    if (!json.ok()) {
      scan.broken.push_back({path, pid, std::string(json.status().message()), ""});
      continue;
    }
    MountStatusFile entry;
    entry.path = path;
    entry.pid = pid;
    absl::Status parsed = ParseStatus(*json, &entry.status);
    if (!parsed.ok()) {
      scan.broken.push_back(
          {path, pid, absl::StrCat("not a mount status: ", parsed.message()), ""});
      continue;
    }
    if (entry.status.pid() != 0 && static_cast<pid_t>(entry.status.pid()) != pid) {
      scan.broken.push_back(
          {path, pid, absl::StrCat("file names pid ", pid, " but says pid ", entry.status.pid()),
           entry.status.mount_point()});
      continue;
    }
    entry.json = std::move(*json);
    scan.mounts.push_back(std::move(entry));
  }
  std::stable_sort(scan.mounts.begin(), scan.mounts.end(),
                   [](const MountStatusFile& a, const MountStatusFile& b) {
                     return a.status.mount_point() < b.status.mount_point();
                   });
  return scan;
}

// Status files hold mount points as ValidUtf8 text (JSON takes only UTF-8), so `path` is
// compared in that form too.
const MountStatusFile* FindMount(const MountScan& scan, const std::string& path) {
  const std::string want = ValidUtf8(NormalPath(path));
  for (const auto& m : scan.mounts) {
    if (NormalPath(m.status.mount_point()) == want) return &m;
  }
  const std::string want_real = ValidUtf8(RealPathOr(path, NormalPath(path)));
  for (const auto& m : scan.mounts) {
    if (NormalPath(m.status.mount_point()) == want_real) return &m;
  }
  // Last resort, for a daemon that recorded the mount point through a symlink.
  for (const auto& m : scan.mounts) {
    const std::string mp = NormalPath(m.status.mount_point());
    if (ValidUtf8(RealPathOr(mp, mp)) == want_real) return &m;
  }
  return nullptr;
}

const SkippedStatusFile* FindStale(const MountScan& scan, const std::string& path) {
  const std::string want = ValidUtf8(NormalPath(path));
  const std::string want_real = ValidUtf8(RealPathOr(path, NormalPath(path)));
  for (const auto& f : scan.stale) {
    if (f.mount_point.empty()) continue;
    const std::string mp = NormalPath(f.mount_point);
    if (mp == want || mp == want_real) return &f;
  }
  return nullptr;
}

}  // namespace nighfs::tools
