#include "mount/spill_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/logging.h"

namespace nighfs::fs {

absl::StatusOr<std::shared_ptr<SpillDir>> SpillDir::Open(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return PosixError(errno, absl::StrCat("cannot create spill folder ", path));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return PosixError(errno, "stat " + path);
  if (!S_ISDIR(st.st_mode)) return PosixError(ENOTDIR, path + " is not a folder");
  // Other users must neither read the data parked here nor plant files in it.
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    if (st.st_uid != ::geteuid() || ::chmod(path.c_str(), 0700) != 0) {
      return PosixError(EPERM, absl::StrCat("spill folder ", path,
                                            " must be owned by this user with mode 0700"));
    }
  }
  return std::shared_ptr<SpillDir>(new SpillDir(path));
}

absl::StatusOr<std::string> SpillDir::Write(std::string_view data) {
  const std::string file =
      absl::StrCat(path_, "/", ::getpid(), "-", serial_.fetch_add(1), ".blk");
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return PosixError(errno, "create " + file);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      ::unlink(file.c_str());
      return PosixError(err, "write " + file);
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(file.c_str());
    return PosixError(err, "close " + file);
  }
  return file;
}

absl::StatusOr<std::string> SpillDir::Read(const std::string& file, size_t size) const {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError(errno, "open " + file);
  std::string out(size, '\0');
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out.data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return PosixError(err, "read " + file + (n == 0 ? ": shorter than written" : ""));
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return out;
}

void SpillDir::Remove(const std::string& file) {
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) {
    NIGHFS_LOG(WARNING) << "could not remove spill file " << file << ": " << std::strerror(errno);
  }
}

}  // namespace nighfs::fs
