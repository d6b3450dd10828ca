#include "meta/wal_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace nighfs::meta::internal {

absl::StatusOr<std::unique_ptr<WalSync>> WalSync::Open(std::string wal_path,
                                                       absl::Duration interval,
                                                       std::function<void()> on_sync) {
  if (interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the namespace sync interval must be positive");
  }
  // Read-only is enough for fdatasync on Linux, and cannot disturb what SQLite writes.
  const int fd = ::open(wal_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the metadata log ", wal_path, ": ", std::strerror(errno)));
  }
  return std::unique_ptr<WalSync>(new WalSync(std::move(wal_path), fd, interval,
                                              std::move(on_sync)));
}

WalSync::WalSync(std::string wal_path, int fd, absl::Duration interval,
                 std::function<void()> on_sync)
    : wal_path_(std::move(wal_path)), interval_(interval), on_sync_(std::move(on_sync)), fd_(fd) {
  timer_ = std::thread([this] { TimerLoop(); });
}

WalSync::~WalSync() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  timer_.join();
  (void)Sync();
  absl::MutexLock lock(&mu_);
  ::close(fd_);
}

void WalSync::TimerLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stop_), interval_)) return;
    }
    (void)Sync();  // a failure is logged there, once
  }
}

absl::Status WalSync::Sync() {
  const uint64_t wanted = committed_.load(std::memory_order_acquire);
  absl::MutexLock lock(&mu_);
  if (!failed_.ok()) return failed_;
  if (synced_ >= wanted) return absl::OkStatus();  // a sync that started after it covered it
  // Every commit noted by now has its frames in the file: this fdatasync covers them all.
  const uint64_t covered = committed_.load(std::memory_order_acquire);
  if (::fdatasync(fd_) != 0) {
    failed_ = absl::UnavailableError(absl::StrCat(
        "the metadata server could not make its log durable (fdatasync ", wal_path_, ": ",
        std::strerror(errno), "); restart nighfs-meta"));
    NIGHFS_LOG(ERROR) << failed_.message()
                      << ": every change that must be durable now fails until then";
    return failed_;
  }
  synced_ = covered;
  syncs_.fetch_add(1, std::memory_order_relaxed);
  if (on_sync_) on_sync_();
  return absl::OkStatus();
}

}  // namespace nighfs::meta::internal
