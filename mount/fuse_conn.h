// The FUSE connection nighfs negotiates, shared with the null file system of the benchmarks so
// both are measured under the same settings.
#ifndef NIGHFS_MOUNT_FUSE_CONN_H_
#define NIGHFS_MOUNT_FUSE_CONN_H_

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

namespace nighfs::fs {

// Kernel-side parallelism and large requests; locks stay local to this node (the kernel
// handles flock/fcntl when the file system does not implement them); no writeback cache (the
// file system owns size, mtime and O_APPEND).
inline void ConfigureConnection(fuse_conn_info* conn) {
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO) conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  conn->max_write = 1u << 20;
  conn->max_readahead = 1u << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_FUSE_CONN_H_
