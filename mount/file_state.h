// What a mount holds of one open (or not yet stored) regular file: its committed block map,
// the images being written, the images on their way to the store, and the outcome of its last
// commit. Shared by all handles of the file; internal to the file-system logic.
#ifndef NIGHFS_MOUNT_FILE_STATE_H_
#define NIGHFS_MOUNT_FILE_STATE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "meta.pb.h"
#include "mount/block_cache.h"
#include "mount/block_patch.h"
#include "mount/memory.h"
#include "mount/spill_dir.h"

namespace nighfs::fs {

// A block being written: either its whole image [0, img.size()), or, for writes into a stored
// block the mount has not read, a patch over that block (img empty; the image is built when
// the block is sealed). `charge` is its share of the dirty count: the bytes held.
struct DirtyImage {
  std::string img;
  std::optional<BlockPatch> patch;
  ByteGauge::Charge charge;  // always HeldBytes()

  uint64_t Length() const { return patch ? patch->length() : img.size(); }
  uint64_t HeldBytes() const { return patch ? patch->held_bytes() : img.size(); }
};

// A sealed block image on its way to the store and then into the block map.
struct PendingBlock {
  PendingBlock(uint64_t i, BlockData d, ByteGauge::Charge c = {})
      : index(i), size(d->size()), data(std::move(d)), charge(std::move(c)) {}
  ~PendingBlock() {
    if (!spill_path.empty()) spill->Remove(spill_path);
  }
  const uint64_t index;
  const uint64_t size;  // of the image
  // The image, or nullptr while it is spilled to `spill_path`. Spilling happens only once the
  // upload is over and under both FileState::flush_mu and FileState::mu, so the uploader reads
  // it freely and other readers hold either lock.
  BlockData data;
  std::string spill_path;
  std::shared_ptr<SpillDir> spill;
  // `size` bytes of the dirty count (of the spilled count while spilled) while this image is
  // in FileState::inflight; cut when it leaves (committed or superseded), or when the block
  // dies. Guarded by FileState::mu.
  ByteGauge::Charge charge;
  absl::Notification done;
  absl::Status status;  // valid once done
  meta::v1::Block ref;        // valid once done and ok
  // Guarded by FileState::mu.
  bool committing = false;  // part of a CommitBlocks in progress: the server may reference it
  bool superseded = false;  // replaced by a newer image before any commit: delete its object
  bool finished = false;    // upload over (mirrors `done`, but readable under FileState::mu)
};

// What this mount knows of one open regular file, shared by all its handles.
struct FileState {
  explicit FileState(uint64_t i) : ino(i) {}
  const uint64_t ino;
  // Serializes commits, truncation and the close-to-open reload of this file.
  // Must be acquired *before* mu.
  absl::Mutex flush_mu;
  bool loaded ABSL_GUARDED_BY(flush_mu) = false;

  absl::Mutex mu;
  meta::v1::Attr attr ABSL_GUARDED_BY(mu);  // as the server last said
  uint64_t size ABSL_GUARDED_BY(mu) = 0;  // including buffered writes
  bool meta_dirty ABSL_GUARDED_BY(mu) = false;  // size/mtime ahead of the server
  int64_t mtime_ns ABSL_GUARDED_BY(mu) = 0;
  std::map<uint64_t, meta::v1::Block> blocks ABSL_GUARDED_BY(mu);  // committed block map
  // Full images [0, len) of blocks being written; len <= block size.
  std::map<uint64_t, DirtyImage> dirty ABSL_GUARDED_BY(mu);
  std::map<uint64_t, std::shared_ptr<PendingBlock>> inflight ABSL_GUARDED_BY(mu);

  // Open grants the server gave this mount's opens of the file (meta/access.h): a read and a
  // write grant (one grant may be both), and whose credentials the commits carry.
  std::string read_grant ABSL_GUARDED_BY(mu);
  std::string write_grant ABSL_GUARDED_BY(mu);
  meta::v1::Caller writer ABSL_GUARDED_BY(mu);

  // The last commit failed: every fsync/close reports it until a commit succeeds, and the
  // background retrier commits the file again (after next_attempt_ns) even once it is closed.
  absl::Status write_error ABSL_GUARDED_BY(mu);
  int64_t failed_since_ns ABSL_GUARDED_BY(mu) = 0;
  uint32_t attempts ABSL_GUARDED_BY(mu) = 0;
  int64_t next_attempt_ns ABSL_GUARDED_BY(mu) = 0;

  // Attribute changes (mode, owner, times) made while the file had unsaved writes, sent with
  // its next CommitBlocks (CommitBlocksRequest.set_attr) instead of one SetAttr round trip
  // each: `tar x` and `cp -a` set times, owner and mode on every file before closing it.
  // valid() == 0: none. Times asked as "now" are resolved to this mount's clock when made;
  // its `caller` is whose credentials the server checks them with. Changes by another
  // caller, or that the mount cannot answer exactly as the server would, are not deferred.
  // Written only under flush_mu (and mu), so a commit in flight sees no new change; a write
  // may clear the mtime (its own time wins).
  meta::v1::SetAttrRequest deferred_attr ABSL_GUARDED_BY(mu);
  int64_t deferred_ctime_ns ABSL_GUARDED_BY(mu) = 0;  // when the last one was made
  // FileSystemImpl::names_gen_ just before the call whose reply `attr` is. `attr` counts as
  // this mount's truth about the file (its nlink and ctime in particular) only while no link,
  // unlink or rename was made by this mount since: then a change can be deferred.
  uint64_t attr_gen ABSL_GUARDED_BY(mu) = 0;

  bool HasUnsavedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return meta_dirty || !dirty.empty() || !inflight.empty() || deferred_attr.valid() != 0;
  }
  uint64_t DirtyBytesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    uint64_t n = 0;
    for (const auto& [i, d] : dirty) n += d.charge.bytes();
    for (const auto& [i, p] : inflight) n += p->charge.bytes();
    return n;
  }

  // Guarded by FileSystemImpl::files_mu_.
  int open_count = 0;
  bool sustained = false;  // unlinked while open: the server keeps it until we Release
};

struct Handle {
  std::shared_ptr<FileState> state;
  int flags = 0;
  std::atomic<uint64_t> last_end{0};  // end of the previous read, to spot sequential readers
  bool keep_cache = false;            // set at open (FileSystem::KeepCache)
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_FILE_STATE_H_
