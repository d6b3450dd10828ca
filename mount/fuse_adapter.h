// The thin FUSE layer: each handler translates one libfuse low-level request into a
// FileSystem call and sends exactly one reply.
#ifndef NIGHFS_MOUNT_FUSE_ADAPTER_H_
#define NIGHFS_MOUNT_FUSE_ADAPTER_H_

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "mount/filesystem.h"
#include "mount/group_cache.h"

namespace nighfs::fs {

// The userdata of the FUSE session.
struct FuseContext {
  FileSystem* fs = nullptr;
  uint32_t block_size = 0;
  GroupCache groups;  // of the callers (FUSE request contexts)
};

const fuse_lowlevel_ops* NighfsFuseOps();

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_FUSE_ADAPTER_H_
