// A local folder where a mount parks block images it could not store yet (the block store is
// down) when keeping them in memory would exceed the writeback budget. The folder is created
// 0700 and each file 0600 (they hold file data of any user); a file is removed as soon as its
// image is stored or dropped. Thread-safe.
#ifndef NIGHFS_MOUNT_SPILL_DIR_H_
#define NIGHFS_MOUNT_SPILL_DIR_H_

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nighfs::fs {

class SpillDir {
 public:
  // Creates `path` (0700) if needed; refuses a folder others may write to.
  static absl::StatusOr<std::shared_ptr<SpillDir>> Open(const std::string& path);

  // Writes `data` to a new file; its path.
  absl::StatusOr<std::string> Write(std::string_view data);
  // The whole content of `path`, which must hold `size` bytes.
  absl::StatusOr<std::string> Read(const std::string& path, size_t size) const;
  void Remove(const std::string& path);

  const std::string& path() const { return path_; }

 private:
  explicit SpillDir(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  std::atomic<uint64_t> serial_{0};
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_SPILL_DIR_H_
