// Fuzz target: `nighfs status` reading the status files mounts write
// (/run/nighfs/mounts/<pid>.json, proto3 JSON of status.proto): tools::ScanMounts over a folder
// holding the input as the file of a live process, then FindMount and RenderMountStatus of
// what it read, as `nighfs status MOUNTPOINT` does. The file is written by a root daemon, but
// the tool must not crash or misbehave on a truncated, corrupt or newer-version file.
//
// Checks beyond the sanitizers: the file is either a mount or reported as broken, never lost.
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "fuzz/fuzz_util.h"
#include "tools/mount_status.h"
#include "tools/render.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nighfs::fuzz;  // NOLINT
  namespace tools = nighfs::tools;
  static const std::string dir = [] {
    nighfs::SetLogLevel(nighfs::LogLevel::ERROR);
    return ScratchDir();
  }();
  const std::string path = absl::StrCat(dir, "/4242.json");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ::write(fd, data, size) != static_cast<ssize_t>(size)) {
    std::fprintf(stderr, "mount_status: cannot write %s\n", path.c_str());
    std::abort();
  }
  ::close(fd);

  tools::ScanOptions options;
  options.dir = dir;
  options.pid_alive = [](pid_t) { return true; };
  absl::StatusOr<tools::MountScan> scan = tools::ScanMounts(options);
  if (!scan.ok() || scan->mounts.size() + scan->broken.size() != 1) {
    std::fprintf(stderr, "mount_status: the status file was lost: %s\n",
                 scan.ok() ? "neither a mount nor broken" : scan.status().ToString().c_str());
    std::abort();
  }
  for (const tools::MountStatusFile& m : scan->mounts) {
    (void)tools::FindMount(*scan, m.status.mount_point());
    tools::MetaProbe probe;
    probe.result = tools::MetaProbe::Result::kUnhealthy;
    probe.detail = "HTTP 503";
    probe.latency = absl::Milliseconds(3);
    (void)tools::RenderMountStatus(m.status, probe, absl::FromUnixSeconds(1'700'000'100));
  }
  return 0;
}
