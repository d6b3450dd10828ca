// FileSystemImpl, the one implementation of FileSystem (mount/filesystem.h). Internal to
// mount/: its methods are defined by concern in filesystem.cc (lifecycle, stats),
// fs_namespace.cc, fs_files.cc, fs_write.cc, fs_pending.cc and fs_sparse.cc.

#ifndef NIGHFS_MOUNT_FILESYSTEM_IMPL_H_
#define NIGHFS_MOUNT_FILESYSTEM_IMPL_H_

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "mount/block_cache.h"
#include "mount/dir_attr_cache.h"
#include "mount/dir_names.h"
#include "mount/file_state.h"
#include "mount/filesystem.h"
#include "mount/memory.h"
#include "mount/sparse.h"
#include "mount/spill_dir.h"
#include "mount/thread_pool.h"

namespace nighfs::fs {

namespace pb = ::nighfs::meta::v1;

inline constexpr size_t kMaxName = 255;

inline int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// A broken accounting invariant is a bug: stop a debug build where it happens.
[[maybe_unused]] inline void DebugCheck(bool ok, const std::string& what) {
  if (ok) return;
  NIGHFS_LOG(ERROR) << "invariant violated: " << what;
  std::abort();
}

void ToProto(const Caller& c, pb::Caller* out);

// The access an open asks the server for (meta/access.h: 4 = read, 2 = write): O_TRUNC
// needs write, as open(2) does.
inline int OpenAccess(int flags) {
  const int acc = flags & O_ACCMODE;
  int a = 0;
  if (acc == O_RDONLY || acc == O_RDWR) a |= 4;
  if (acc == O_WRONLY || acc == O_RDWR || (flags & O_TRUNC)) a |= 2;
  return a;
}

inline absl::Status CheckName(const std::string& name) {
  if (name.size() > kMaxName) return PosixError(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.empty()) return PosixError(ENOENT, "empty name");
  return absl::OkStatus();
}

class FileSystemImpl : public FileSystem {
 public:
  FileSystemImpl(MetaApi* meta, blockstore::BlockStore* store, const pb::Volume& volume,
                 uint64_t session_id, const FsOptions& options);
  ~FileSystemImpl() override;

  // ---- namespace ----

  absl::StatusOr<pb::Attr> Lookup(uint64_t parent, const std::string& name) override;
  absl::StatusOr<pb::Attr> GetAttr(uint64_t ino) override;
  absl::StatusOr<pb::Attr> SetAttr(uint64_t ino, const SetAttrArgs& a) override;
  absl::StatusOr<std::string> Readlink(uint64_t ino) override;
  absl::StatusOr<pb::Attr> Mknod(const Caller& c, uint64_t parent, const std::string& name,
                                 uint32_t mode, uint64_t rdev) override;
  absl::StatusOr<pb::Attr> Mkdir(const Caller& c, uint64_t parent, const std::string& name,
                                 uint32_t mode) override;
  absl::StatusOr<pb::Attr> Symlink(const Caller& c, uint64_t parent, const std::string& name,
                                   const std::string& target) override;
  absl::StatusOr<pb::Attr> Link(uint64_t ino, uint64_t new_parent,
                                const std::string& new_name) override;
  absl::Status Unlink(uint64_t parent, const std::string& name) override;
  absl::Status Rmdir(uint64_t parent, const std::string& name) override;
  absl::Status Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, uint32_t flags) override;
  absl::StatusOr<std::vector<DirEntryOut>> ReadDir(uint64_t ino, uint64_t offset,
                                                   size_t max_entries, bool plus) override;
  absl::StatusOr<struct statvfs> StatFs() override;

  // ---- files ----

  absl::StatusOr<uint64_t> Open(uint64_t ino, int flags) override;
  absl::StatusOr<std::pair<pb::Attr, uint64_t>> Create(const Caller& c, uint64_t parent,
                                                       const std::string& name, uint32_t mode,
                                                       int flags) override;
  bool KeepCache(uint64_t fh) override;
  absl::StatusOr<std::string> Read(uint64_t fh, uint64_t offset, size_t size) override;
  absl::StatusOr<size_t> Write(uint64_t fh, uint64_t offset, std::string_view data) override;
  absl::Status Flush(uint64_t fh) override;
  absl::Status Fsync(uint64_t fh) override;
  absl::Status FsyncDir() override { return SyncNames(); }
  absl::Status Release(uint64_t fh) override;

  // ---- sparse files (mount/sparse.h) ----

  absl::StatusOr<uint64_t> Lseek(uint64_t fh, int64_t offset, int whence) override;
  absl::Status Fallocate(uint64_t fh, int mode, int64_t offset, int64_t len) override;

  // ---- xattrs ----

  absl::Status SetXattr(uint64_t ino, const std::string& name, std::string_view value,
                        int flags) override;
  absl::StatusOr<std::string> GetXattr(uint64_t ino, const std::string& name) override;
  absl::StatusOr<std::vector<std::string>> ListXattr(uint64_t ino) override;
  absl::Status RemoveXattr(uint64_t ino, const std::string& name) override;

  absl::Status FlushAll() override;
  void SetSessionId(uint64_t session_id) override;
  void DropIdBatch();
  void FillStats(status::v1::MountStats* s) const override;
  void FillMemoryAndPending(status::v1::MountStatus* out) const override;

 private:
  // Flush; `*sent` (if set) as CommitLocked's.
  absl::Status FlushHandle(uint64_t fh, bool* sent);
  // With FsOptions::sync_names_at_fsync, a Sync call: every namespace change this mount was
  // answered for is on disk when it returns OK.
  absl::Status SyncNames();

  // One metadata call, counted. Failures that are file-system answers (ENOENT...) are
  // normal; transport failures were already retried by the client up to its deadline. A
  // request with a `caller` field that has none set carries this thread's CurrentCaller().
  template <class Req, class Resp>
  absl::StatusOr<Resp> Meta(absl::StatusOr<Resp> (MetaApi::*method)(const Req&), Req req) {
    if constexpr (requires { req.mutable_caller(); }) {
      if (!req.has_caller()) ToProto(CurrentCaller(), req.mutable_caller());
    }
    meta_calls_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<Resp> r = (meta_->*method)(req);
    if (!r.ok() && StatusToErrno(r.status()) == EIO) {
      meta_errors_.fetch_add(1, std::memory_order_relaxed);
      NIGHFS_LOG(WARNING) << "metadata call failed: " << r.status();
    }
    return r;
  }

  // Meta() for a call that adds the name `added` to, or removes `removed` from, directory
  // `dir` (either may be empty), keeping dir_names_ in step: the reply's parent_unchanged on
  // success, forgotten on failure (its outcome is unknown). `*sent` (if set): when it was sent.
  template <class Req, class Resp>
  absl::StatusOr<Resp> ChangeNames(absl::StatusOr<Resp> (MetaApi::*method)(const Req&),
                                   Req req, uint64_t dir, std::string_view added,
                                   std::string_view removed, absl::Time* sent = nullptr) {
    const absl::Time at = absl::Now();
    if (sent != nullptr) *sent = at;
    absl::StatusOr<Resp> r = Meta(method, std::move(req));
    if (r.ok()) {
      dir_names_.Changed(dir, at, r->parent_unchanged(), added, removed);
    } else {
      dir_names_.Forget(dir);
    }
    return r;
  }

  static void CopyValid(const char* src, size_t src_len, uint64_t boff, size_t n, char* dst) {
    if (boff >= src_len) return;  // past the stored bytes: stays zero
    std::memcpy(dst, src + boff, std::min<size_t>(n, src_len - boff));
  }

  // Mknod; with `open_access` (create(2)) the server also answers an open grant for the new
  // file, stored in `*grant`.
  absl::StatusOr<pb::Attr> MakeNode(const Caller& c, uint64_t parent, const std::string& name,
                                    uint32_t mode, uint64_t rdev, int open_access,
                                    std::string* grant);

  // ---- open-file table ----

  std::shared_ptr<FileState> OpenState(uint64_t ino);
  std::shared_ptr<FileState> AcquireState(uint64_t ino);

  // Drops a handle's reference. The last one forgets the file, unless it still holds data
  // that is not stored (its commit failed): then the state stays (a new open reuses it, so
  // readers see the data) and the retrier commits it later.
  void ReleaseState(const std::shared_ptr<FileState>& st);

  // Removes a closed, fully stored file from the table (and lets the server delete it if it
  // was unlinked while open).
  void ForgetIfClosed(const std::shared_ptr<FileState>& st);
  std::vector<std::shared_ptr<FileState>> AllStates() const;

  // ---- failed commits: kept, retried in the background ----

  struct PendingSummary {
    uint64_t files = 0;
    uint64_t bytes = 0;
    std::string inos;  // the first few
    std::string last_error;
  };

  PendingSummary SummarizePending() const;
  void RecordFailureLocked(FileState& st, const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);

  // Commits every file whose retry is due (and whose next attempt would come before `until`).
  void RetryDue(absl::Time until = absl::InfiniteFuture());
  void RetryLoop();

  // Gives memory back once nothing was written for a while and nothing is buffered.
  void TrimIfIdle();
  // Gives malloc's free memory back to the system when the process holds more than
  // kMaxResidentSlack beyond what malloc has in use (checked every 100 ms by the retrier).
  void TrimIfBloated();
  static constexpr uint64_t kMaxResidentSlack = 48u << 20;

  // Every byte counted in buffered_ belongs to exactly one live charge, and the charge of a
  // buffer in a file's tables equals its size. Debug builds check the buffers of `only` after
  // each of its commits, and at shutdown (`only` null: no operation running) every file and
  // that the counts are exactly the sums of the live buffers.
  void CheckDirtyCount(const FileState* only) const;

  // The image of `p`, read back from the spill folder if it was spilled.
  absl::StatusOr<BlockData> LoadImage(const PendingBlock& p);

  // While data that could not be stored holds more than 3/4 of the writeback budget, moves
  // the images of files waiting for a retry to the spill folder (down to half the budget),
  // so writers of other files are not throttled by a store outage.
  void MaybeSpill();
  void MarkSustained(const std::shared_ptr<FileState>& st);

  // The open state of the inode named (parent, name), if this mount has it open. Costs a
  // Lookup only while some file is open.
  std::shared_ptr<FileState> OpenStateOfName(uint64_t parent, const std::string& name);

  // Close-to-open: the first open of a file in this mount reads its block map afresh. Every
  // open also needs an open grant for `access` (OpenAccess) from the server, asked with the
  // opener's credentials, unless the file already holds one that covers it.
  absl::Status LoadState(const std::shared_ptr<FileState>& st, int access);
  // Records what an open got: its grant, and the opener as the writer whose credentials the
  // file's commits carry (also those made later, at release or by the retrier).
  static void KeepGrant(FileState& st, int access, const std::string& grant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);
  // A CommitBlocks of `st` carries its writer's credentials and write grant, whoever's thread
  // makes it (a FUSE release has no caller; the retrier runs on its own thread).
  static void StampWriter(FileState& st, pb::CommitBlocksRequest* req);
  uint64_t NewHandle(std::shared_ptr<FileState> st, int flags, bool keep_cache = false);
  absl::StatusOr<std::shared_ptr<Handle>> GetHandle(uint64_t fh);

  // ---- keep_cache (see FileSystem::KeepCache) ----

  // What the kernel's page cache of `st` was filled from: a digest of its size and committed
  // block map (ids are never reused, so an equal map is equal data), or nullopt when buffered
  // data is part of it.
  static std::optional<uint64_t> ContentStampLocked(const FileState& st)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);
  // Records the stamp of `st` as what the page cache now holds; returns whether it equals the
  // one recorded before.
  bool RecordPageCacheStamp(FileState& st);

  // ---- attribute changes deferred to the next commit (FileState::deferred_attr) ----

  // Defers `a` if it can be: the file has unsaved writes (so a commit is owed anyway), its
  // attributes are this mount's truth, only mode, owner and times change, and the change is
  // the caller's to make by the rules the server applies (root; or the owner changing the
  // mode without S_ISGID, or the times), made by the caller of the changes deferred before.
  // Returns the attributes the kernel is answered with, or nullopt: send it now.
  std::optional<pb::Attr> DeferSetAttrLocked(FileState& st, const SetAttrArgs& a)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.flush_mu);
  // Commits the file of `ino` (if it has deferred changes), or of every open file (ino 0),
  // before a call the server answers from the attributes: an open's permission check, the
  // sticky-directory rule of unlink and rename, the xattr rules, a link's nlink.
  void CommitDeferredAttrs(uint64_t ino);
  // Deferred changes that such a call should commit first (none while the file's last commit
  // failed: the background retrier has it).
  static bool HasDeferredAttrs(FileState& st) ABSL_LOCKS_EXCLUDED(st.mu);

  // Attributes as this mount sees them: buffered writes and deferred changes count.
  pb::Attr Overlay(const pb::Attr& attr);
  static pb::Attr OverlayLocked(FileState& st, const pb::Attr& attr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);

  // ---- sparse-file view of the open-file state ----

  // The first block at index >= i that this mount knows holds data: a buffered image (newest
  // first, as Read prefers it) or a committed block.
  static std::optional<MappedBlock> NextMappedLocked(FileState& st, uint64_t i)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);

  // st_blocks of a file with buffered blocks: what it will store once they are committed,
  // i.e. the server's stored bytes with each buffered image in place of the committed block
  // it replaces. `du` grows while a large file is written and matches the data once it is
  // closed, without counting a rewritten block twice.
  static uint64_t StoredBytesLocked(FileState& st, uint64_t committed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);

  // fallocate mode 0: size = max(size, end), as the server's CommitBlocks min_size does
  // atomically, so a concurrent extending write is never cut back.
  absl::Status GrowTo(const std::shared_ptr<FileState>& st, uint64_t end);

  // fallocate PUNCH_HOLE | KEEP_SIZE. Buffered blocks are committed first (as a local file
  // system writes back the range's dirty pages before punching), so the committed map is the
  // whole truth and no later commit brings a punched block back; then the blocks wholly
  // inside the range leave the map in one CommitBlocks (drop_indexes), and the data at the
  // range's edges is overwritten with zeros through the write path. The kernel holds the
  // inode lock across fallocate and write, so no write of this mount races the punch.
  absl::Status PunchHole(uint64_t fh, const std::shared_ptr<Handle>& h, uint64_t offset,
                         uint64_t len);

  // Zeros at an explicit offset, even on an O_APPEND handle: such a handle writes through a
  // transient plain handle of the same open file (the caller's handle keeps the file open).
  absl::Status WriteZerosAt(uint64_t fh, const Handle& h, uint64_t pos, uint64_t n);

  // ---- write path ----

  // Fails only when a spilled image cannot be read back (then nothing is applied). A write
  // into a stored block with no image here becomes a patch (mount/block_patch.h): no read.
  absl::Status ApplyWriteLocked(FileState& st, uint64_t pos, std::string_view data,
                                std::vector<std::shared_ptr<PendingBlock>>* sealed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);

  // Turns the file's patches into whole images on their way to the store: fetches their base
  // blocks (in parallel, outside the locks), builds the images and uploads them, at most
  // `max_inflight_per_file` at a time, each batch committed before the next is built, so the
  // images of a file with many patched blocks never all sit in memory. Returns with no patch
  // left in `dirty` at the moment of return (a writer may add one right after).
  absl::Status SealPatchesLocked(const std::shared_ptr<FileState>& st)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->flush_mu);
  // The image of a patch, given its base object (nullptr when the patch needs none).
  BlockData BuildPatched(const BlockPatch& patch, const BlockData& base);

  // Makes `p` the newest image of its block; an older image that no commit has taken is
  // garbage the moment it is replaced.
  void SupersedeLocked(FileState& st, const std::shared_ptr<PendingBlock>& p)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu);
  void StartUpload(const std::shared_ptr<FileState>& st, const std::shared_ptr<PendingBlock>& p);
  // For a commit of `st` at `size` bytes: block 0 of a file within the inline limit is made
  // inline at once (StoreInline), any other block starts uploading.
  void StartStoring(const std::shared_ptr<FileState>& st, const std::shared_ptr<PendingBlock>& p,
                    uint64_t size);
  // Makes `p` an inline block (Block.inline_data, no object, no id): its ref carries the image,
  // and it is done at once.
  void StoreInline(FileState& st, PendingBlock& p);
  // The inline limit in force: FsOptions::inline_max_bytes (0 when off or never resolved),
  // until the server refuses an inline block (InlineRefused).
  uint32_t InlineMax() const { return inline_max_.load(std::memory_order_relaxed); }
  // A commit with inline blocks in `snap` failed with EINVAL: the server takes no more (its
  // --inline-max-bytes was lowered since this mount learnt it). Inlining stops for the life of
  // the mount, and the inline blocks of `snap` are stored as objects instead (an error if
  // that fails: the commit is then retried later like any other).
  absl::Status InlineRefused(FileState& st, std::vector<std::shared_ptr<PendingBlock>>& snap);
  absl::StatusOr<uint64_t> NextBlockId();
  absl::Status PutBlock(PendingBlock& p);
  void Upload(FileState& st, PendingBlock& p);
  void DeleteObjectLater(uint64_t id);

  // Commits `st` (see CommitOnceLocked) and records the outcome: a failure becomes the file's
  // sticky write error (reported by every later fsync/close until a commit succeeds) and
  // schedules a background retry; a full successful commit clears it. `*sent` (if set) becomes
  // true when a CommitBlocks was answered OK (a server that batches namespace changes syncs
  // its log at each one, covering every change it had answered before).
  absl::Status CommitLocked(const std::shared_ptr<FileState>& st, bool partial = false,
                            bool* sent = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->flush_mu);

  // Seals every buffered block of `st`, waits for the uploads and records them in the
  // metadata server in one CommitBlocks. On failure nothing buffered is dropped: the next
  // flush (or the background retrier) tries again.
  //
  // With `partial` (back-pressure for a writer far ahead of the store) it only waits for the
  // oldest upload, commits the uploads that have finished, and leaves the rest in flight, so
  // the upload pipeline never drains. The size it records then covers only committed blocks.
  absl::Status CommitOnceLocked(const std::shared_ptr<FileState>& st, bool partial,
                                bool* sent = nullptr) ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->flush_mu);

  // Uploads the image of `*p` again under a fresh id; on success `*p` is replaced by the new
  // upload (in the snapshot and, if still current, in the file's table, with its charge).
  // An inline block stays as it is (it has no id) unless `keep_inline` is false.
  absl::Status Reupload(FileState& st, std::shared_ptr<PendingBlock>& p,
                        bool keep_inline = true);

  // A change of directory `ino` by this mount, for dir_attrs_: Begin at construction, Done
  // with the directory's attributes from the reply (none if the call failed or the reply has
  // none: then nothing is kept).
  class DirChange {
   public:
    DirChange(DirAttrCache& cache, uint64_t ino)
        : cache_(cache), ino_(ino), ticket_(cache.Begin(ino)) {}
    ~DirChange() { Done(nullptr); }
    DirChange(const DirChange&) = delete;
    DirChange& operator=(const DirChange&) = delete;
    void Done(const pb::Attr* attr) {
      if (done_) return;
      done_ = true;
      cache_.End(ino_, ticket_, attr);
    }

   private:
    DirAttrCache& cache_;
    const uint64_t ino_;
    const uint64_t ticket_;
    bool done_ = false;
  };

  bool KnownAbsent(uint64_t parent, const std::string& name) override {
    return CheckName(name).ok() && dir_names_.KnownAbsent(parent, name);
  }

  // ---- what this mount knows of absent extended attributes ----
  // security.capability of inodes this mount made or asked about (its own changes only).
  bool KnownNoCaps(uint64_t ino);
  void RememberNoCaps(uint64_t ino);
  // No extended attributes at all, from a server reply's Attr.no_xattrs, for attr_timeout.
  // `gen` is xattr_gen_ read before the request was sent: a reply that may predate this
  // mount's own change of some inode's xattrs (ForgetNoXattrs) is not noted.
  void NoteXattrs(const pb::Attr& attr, uint64_t gen);
  bool KnownNoXattrs(uint64_t ino);
  // This mount changed the inode's extended attributes: forget both.
  void ForgetNoXattrs(uint64_t ino);
  MetaApi* const meta_;
  blockstore::BlockStore* const store_;
  const pb::Volume volume_;
  const uint64_t bs_;
  std::atomic<uint64_t> session_id_;

  // Lock order: FileState::flush_mu, then files_mu_, then FileState::mu; handles_mu_ is a
  // leaf; no lock is held across a metadata call or block I/O except flush_mu
  // (which only serializes one file's commits) and ids_mu_.
  mutable absl::Mutex files_mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<FileState>> files_ ABSL_GUARDED_BY(files_mu_);
  absl::Mutex handles_mu_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Handle>> handles_ ABSL_GUARDED_BY(handles_mu_);
  std::atomic<uint64_t> next_fh_{1};
  // Bumped after every link, unlink and rename this mount makes (see FileState::attr_gen).
  std::atomic<uint64_t> names_gen_{1};

  absl::Mutex ids_mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(ids_mu_) = 0;
  uint64_t end_id_ ABSL_GUARDED_BY(ids_mu_) = 0;

  // The read grant of the last listing started of each directory (see ReadDir).
  absl::Mutex dir_grants_mu_;
  absl::flat_hash_map<uint64_t, std::string> dir_grants_ ABSL_GUARDED_BY(dir_grants_mu_);

  // Directories' attributes from this mount's own namespace replies (see DirAttrCache).
  DirAttrCache dir_attrs_;
  // The names of directories this mount made, while all changes of them are its own.
  DirNames dir_names_;

  // Inode -> ContentStampLocked when the kernel's page cache of it was last filled. Bounded:
  // forgotten entries only cost a page cache refill.
  absl::Mutex stamps_mu_;
  absl::flat_hash_map<uint64_t, uint64_t> page_cache_stamps_ ABSL_GUARDED_BY(stamps_mu_);

  absl::Mutex caps_mu_;
  absl::flat_hash_set<uint64_t> no_caps_ ABSL_GUARDED_BY(caps_mu_);
  // Inode -> until when it is known to have no extended attributes. Bounded (cleared when
  // full): a forgotten entry costs one GetXattr.
  absl::flat_hash_map<uint64_t, absl::Time> no_xattrs_ ABSL_GUARDED_BY(caps_mu_);
  uint64_t xattr_gen_ ABSL_GUARDED_BY(caps_mu_) = 0;  // bumped by ForgetNoXattrs
  uint64_t XattrGen() ABSL_LOCKS_EXCLUDED(caps_mu_);

  // Written and not yet stored: every byte is owned by the charge of one buffer.
  ByteGauge buffered_;
  ByteGauge uploading_;  // images being uploaded right now
  ByteGauge spilled_;    // images of files waiting for a retry, moved to spill_
  std::shared_ptr<SpillDir> spill_;  // nullptr: no spilling (-o spill_dir not given or unusable)
  std::atomic<int64_t> last_activity_ns_{0};
  int64_t trimmed_at_ns_ = -1;  // only the retrier thread uses it
  std::shared_ptr<BufferPool> buffers_;
  std::atomic<uint64_t> read_ops_{0}, write_ops_{0}, bytes_read_{0}, bytes_written_{0};
  std::atomic<uint64_t> blocks_uploaded_{0}, upload_errors_{0}, meta_calls_{0}, meta_errors_{0};
  std::atomic<uint64_t> bytes_uploaded_{0};
  std::atomic<uint64_t> deferred_attrs_{0};  // DeferSetAttrLocked's deferrals
  std::atomic<uint32_t> inline_max_{options_.inline_max_bytes == kInlineFromServer
                                        ? 0
                                        : options_.inline_max_bytes};

  // The pool is declared last so it is destroyed first: queued uploads and prefetches finish
  // while the cache and everything else they use still exist.
  BlockCache cache_;
  ThreadPool pool_;
  // Commits files whose commit failed, in the background (see RetryDue); joined first thing
  // in the destructor.
  absl::Notification stop_retrier_;
  std::thread retrier_;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_FILESYSTEM_IMPL_H_
