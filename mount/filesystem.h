// The file-system logic of a nighfs mount: open files, write buffers, block maps, readahead,
// close-to-open revalidation. It knows nothing of <fuse_lowlevel.h>: the FUSE adapter
// (fuse_adapter.cc) translates requests into these calls, and tests drive it directly against
// an in-process metadata service and block store.
//
// Data model: a file is a map from block index to an immutable object. A write never
// modifies an object: the block's new image is uploaded under a fresh id and the map entry is
// replaced in the metadata server (CommitBlocks). Writes are buffered per file (shared by all
// handles of the file in this mount) and made durable on flush (every close), fsync and
// release; a block the writer has filled is uploaded at once in the background.
#ifndef NIGHFS_MOUNT_FILESYSTEM_H_
#define NIGHFS_MOUNT_FILESYSTEM_H_

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "metadata_client/meta_api.h"
#include "status.pb.h"

namespace nighfs::fs {

// The store that reaches the proxy at `holder` ("HOST:PORT", a Block.holder): where a block
// lives that the volume's store answered NotFound for, because the proxy that acknowledged it
// has not flushed it yet. The store must stay valid for the life of the FileSystem.
using HolderStoreLookup =
    std::function<absl::StatusOr<blockstore::BlockStore*>(const std::string& holder)>;

// FsOptions::inline_max_bytes: whatever the metadata server takes (MountResponse).
inline constexpr uint32_t kInlineFromServer = ~uint32_t{0};

// The inline limit a mount uses: `asked` (FsOptions::inline_max_bytes) within the server's
// `server_max` (MountResponse.inline_max_bytes), which refuses larger inline blocks.
inline uint32_t ResolveInlineMax(uint32_t asked, uint32_t server_max) {
  return asked < server_max ? asked : server_max;
}

struct FsOptions {
  absl::Duration attr_timeout = absl::Seconds(1);
  absl::Duration entry_timeout = absl::Seconds(1);
  size_t cache_bytes = 512u << 20;      // block cache
  int readahead_blocks = 2;             // blocks fetched ahead of a sequential reader
  size_t writeback_bytes = 256u << 20;  // buffered, not yet durable data before writers wait
  int io_threads = 16;                  // parallel block uploads and prefetches
  int max_inflight_per_file = 16;       // uploaded-but-uncommitted blocks before a commit
  // Data whose commit failed (a close or fsync returned EIO) is kept and committed again in
  // the background, with exponential backoff and jitter between these bounds, until it is
  // stored. Unmount (FlushAll) waits for it at most `flush_timeout`.
  absl::Duration retry_initial_backoff = absl::Milliseconds(500);
  absl::Duration retry_max_backoff = absl::Seconds(30);
  absl::Duration flush_timeout = absl::Seconds(300);
  // Where data that could not be stored yet goes when it would take more than 3/4 of
  // writeback_bytes of memory ("" = it stays in memory and writers wait).
  std::string spill_dir;
  // Each block is stored with the CRC32C of every range of this many bytes (Block.range_crc32c;
  // 0 = none, at least 512), so a small random read fetches and verifies only the ranges it
  // covers instead of the whole block. 64 KiB: 256 bytes of checksums per 4 MiB block.
  uint32_t range_checksum_bytes = 64u << 10;
  // Data on the metadata server (issue 14): at a full commit (close, fsync), block 0 of a file
  // of at most this many bytes goes into the CommitBlocks request itself (Block.inline_data)
  // instead of a store PUT, and is read back from the block map without a GET. 0 = off.
  // kInlineFromServer (mount.nighfs without -o inline_max=) must be resolved against the
  // server's limit (ResolveInlineMax) before Create; left unresolved it means off.
  uint32_t inline_max_bytes = kInlineFromServer;
  // Free block-size buffers kept for reuse.
  size_t buffer_pool_bytes = 32u << 20;
  // The metadata server syncs namespace changes in batches (MountResponse.namespace_sync_ms >
  // 0, nighfs-meta --namespace-sync=batched): fsync and fsyncdir then also call Sync, so a
  // file's or a folder's names are on disk when they return, as on a local file system.
  bool sync_names_at_fsync = false;
  // Unset: a block missing from the store is DataLoss (EIO) even when its ref names a holder.
  HolderStoreLookup holder_store;
};

// Who is asking (from the FUSE request context): the process's fsuid, fsgid and supplementary
// groups. The metadata server checks POSIX permissions for it (meta/access.h).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
};

// The caller of the FUSE request running on this thread, which every metadata request made
// for it carries (root, uid 0, when no scope is active: tests driving a FileSystem directly).
// A thread-local rather than a parameter of every FileSystem method, as meta/principal.h is
// on the server: each FUSE handler runs start to end on one worker thread. Work done later on
// other threads (commits at release, the background retrier) does not use it: it carries the
// credentials captured when the file was opened for writing.
const Caller& CurrentCaller();

// Sets the current caller for its lifetime (restores the previous one after).
class ScopedCaller {
 public:
  explicit ScopedCaller(Caller caller);
  ~ScopedCaller();
  ScopedCaller(const ScopedCaller&) = delete;
  ScopedCaller& operator=(const ScopedCaller&) = delete;

 private:
  const Caller* previous_;
  Caller caller_;
};

// Which fields of SetAttr to apply (bits of meta.proto's SetAttrValid).
struct SetAttrArgs {
  uint32_t valid = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  // The handle the change comes through (ftruncate, futimens; 0 = by path): a size change
  // through a handle open for writing needs no write permission now (POSIX checks at open).
  uint64_t fh = 0;
};

struct DirEntryOut {
  std::string name;
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint64_t next_offset = 0;  // the offset to resume after this entry
  meta::v1::Attr attr;       // with plus
};

class FileSystem {
 public:
  // `meta` and `store` must outlive the FileSystem. `session_id` is the metadata session of
  // this mount (used to keep unlinked-but-open files alive).
  static absl::StatusOr<std::unique_ptr<FileSystem>> Create(MetaApi* meta,
                                                            blockstore::BlockStore* store,
                                                            const meta::v1::Volume& volume,
                                                            uint64_t session_id,
                                                            const FsOptions& options);
  virtual ~FileSystem() = default;

  // Namespace. Names are checked here too (ENAMETOOLONG over 255 bytes).
  virtual absl::StatusOr<meta::v1::Attr> Lookup(uint64_t parent, const std::string& name) = 0;
  // Lookup as the kernel is answered: a name that does not exist is an Attr with ino 0 (a
  // negative entry, which the kernel keeps for entry_timeout, so another stat or open of the
  // missing name within it costs no round trip) rather than
  // ENOENT, unless entry_timeout is zero. The kernel drops a negative entry when this mount
  // creates the name; another mount's create is seen after entry_timeout, as its other
  // changes of names are. A name this mount knows is absent from a directory it made (and
  // only it changed since; mount/dir_names.h) is answered so without a round trip.
  absl::StatusOr<meta::v1::Attr> LookupForKernel(uint64_t parent, const std::string& name);
  // Attributes. A directory changed by this mount's own namespace operation within the last
  // attr_timeout is answered from that operation's reply, without a round trip.
  virtual absl::StatusOr<meta::v1::Attr> GetAttr(uint64_t ino) = 0;
  virtual absl::StatusOr<meta::v1::Attr> SetAttr(uint64_t ino, const SetAttrArgs& args) = 0;
  virtual absl::StatusOr<std::string> Readlink(uint64_t ino) = 0;
  virtual absl::StatusOr<meta::v1::Attr> Mknod(const Caller& c, uint64_t parent,
                                               const std::string& name, uint32_t mode,
                                               uint64_t rdev) = 0;
  virtual absl::StatusOr<meta::v1::Attr> Mkdir(const Caller& c, uint64_t parent,
                                               const std::string& name, uint32_t mode) = 0;
  virtual absl::StatusOr<meta::v1::Attr> Symlink(const Caller& c, uint64_t parent,
                                                 const std::string& name,
                                                 const std::string& target) = 0;
  virtual absl::StatusOr<meta::v1::Attr> Link(uint64_t ino, uint64_t new_parent,
                                              const std::string& new_name) = 0;
  virtual absl::Status Unlink(uint64_t parent, const std::string& name) = 0;
  virtual absl::Status Rmdir(uint64_t parent, const std::string& name) = 0;
  virtual absl::Status Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                              const std::string& new_name, uint32_t flags) = 0;
  // Entries from `offset` (0 = start; "." and ".." come first, at offsets 0 and 1), at most
  // `max_entries`. Offsets stay valid while entries are added and removed.
  virtual absl::StatusOr<std::vector<DirEntryOut>> ReadDir(uint64_t ino, uint64_t offset,
                                                           size_t max_entries, bool plus) = 0;
  virtual absl::StatusOr<struct statvfs> StatFs() = 0;

  // Files. Handles are opaque numbers; every Open/Create is paired with one Release.
  virtual absl::StatusOr<uint64_t> Open(uint64_t ino, int flags) = 0;
  virtual absl::StatusOr<std::pair<meta::v1::Attr, uint64_t>> Create(const Caller& c,
                                                                     uint64_t parent,
                                                                     const std::string& name,
                                                                     uint32_t mode, int flags) = 0;
  // Whether the kernel may keep the file's page cache for handle `fh` (FOPEN_KEEP_CACHE): what
  // this mount serves of the file (its committed block map and size, revalidated with the
  // server by the open when no handle of the file was open here) is what it served when the
  // page cache was last filled (this mount's previous open or close of the file), and nothing
  // is buffered. Close-to-open stays exact: another mount's change shows in the map.
  virtual bool KeepCache(uint64_t fh) = 0;
  virtual absl::StatusOr<std::string> Read(uint64_t fh, uint64_t offset, size_t size) = 0;
  // Returns the bytes accepted (all of them).
  virtual absl::StatusOr<size_t> Write(uint64_t fh, uint64_t offset, std::string_view data) = 0;
  virtual absl::Status Flush(uint64_t fh) = 0;
  // Flush, and with FsOptions::sync_names_at_fsync the volume's names too.
  virtual absl::Status Fsync(uint64_t fh) = 0;
  // fsync(2) of a folder: its entries are on disk when it returns (a Sync call when the
  // server batches namespace changes, nothing otherwise: each was on disk at its reply).
  virtual absl::Status FsyncDir() = 0;
  virtual absl::Status Release(uint64_t fh) = 0;

  // Sparse files (mount/sparse.h). lseek(2) SEEK_DATA or SEEK_HOLE from `offset` on the open
  // file, from its block map and the blocks buffered in this mount: the offset found, ENXIO at
  // or past the end of the file (or, for SEEK_DATA, when only holes follow), EINVAL for any
  // other `whence` (the kernel handles SEEK_SET/CUR/END itself).
  virtual absl::StatusOr<uint64_t> Lseek(uint64_t fh, int64_t offset, int whence) = 0;
  // fallocate(2) on a handle open for writing (else EBADF). Mode 0 grows the size to
  // offset + len if that is larger and allocates nothing (an object store has nothing to
  // reserve; the new range reads as zeros and stores nothing). FALLOC_FL_KEEP_SIZE alone
  // succeeds without effect. FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE unmaps the blocks
  // wholly inside the range and writes zeros over the data at its edges; the size stays.
  // Other modes: EOPNOTSUPP.
  virtual absl::Status Fallocate(uint64_t fh, int mode, int64_t offset, int64_t len) = 0;

  // Extended attributes.
  virtual absl::Status SetXattr(uint64_t ino, const std::string& name, std::string_view value,
                                int flags) = 0;
  virtual absl::StatusOr<std::string> GetXattr(uint64_t ino, const std::string& name) = 0;
  virtual absl::StatusOr<std::vector<std::string>> ListXattr(uint64_t ino) = 0;
  virtual absl::Status RemoveXattr(uint64_t ino, const std::string& name) = 0;

  // Makes everything buffered durable (unmount, SIGTERM): commits every file, then waits up to
  // options().flush_timeout for files whose commit failed, retrying them with backoff, and
  // logs what it waits for. Returns an error naming what could not be stored.
  virtual absl::Status FlushAll() = 0;
  // Swaps the metadata session (after the old one expired and the mount re-registered).
  virtual void SetSessionId(uint64_t session_id) = 0;
  virtual void FillStats(status::v1::MountStats* stats) const = 0;
  // The memory section and the files waiting for a background retry (oldest first, at most
  // 50) of the status file.
  virtual void FillMemoryAndPending(status::v1::MountStatus* status) const = 0;

  const FsOptions& options() const { return options_; }

 protected:
  explicit FileSystem(const FsOptions& options) : options_(options) {}
  FsOptions options_;
  // True if `name` is known, without asking the server, not to exist in directory `parent`
  // (false for an invalid name: the lookup then reports why).
  virtual bool KnownAbsent(uint64_t parent, const std::string& name) = 0;
};

// struct stat from an Attr; st_blksize from the volume's block size; st_blocks counts the
// 512-byte units of data the file stores (Attr.stored_bytes, rounded up), not its size.
struct stat AttrToStat(const meta::v1::Attr& attr, uint32_t block_size);

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_FILESYSTEM_H_
