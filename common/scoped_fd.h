// An open file descriptor owned by a scope: closed by the destructor unless Close() reported.
#ifndef NIGHFS_COMMON_SCOPED_FD_H_
#define NIGHFS_COMMON_SCOPED_FD_H_

#include <unistd.h>

namespace nighfs {

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports the error, which for a file just written can be a lost write (NFS).
  int Close() {
    const int r = ::close(fd_);
    fd_ = -1;
    return r;
  }

 private:
  int fd_;
};

}  // namespace nighfs

#endif  // NIGHFS_COMMON_SCOPED_FD_H_
