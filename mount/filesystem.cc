#include "mount/filesystem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "mount/block_cache.h"
#include "mount/file_state.h"
#include "mount/memory.h"
#include "mount/sparse.h"
#include "mount/spill_dir.h"
#include "mount/thread_pool.h"

namespace nighfs::fs {

namespace pb = ::nighfs::meta::v1;

struct stat AttrToStat(const pb::Attr& a, uint32_t block_size) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = a.ino();
  st.st_mode = a.mode();
  st.st_nlink = a.nlink();
  st.st_uid = a.uid();
  st.st_gid = a.gid();
  st.st_rdev = a.rdev();
  st.st_size = static_cast<off_t>(a.size());
  // Preferred I/O size: large requests are what keeps a block store busy.
  st.st_blksize = std::min<uint32_t>(block_size, 1u << 20);
  // What the file stores, not its size: `truncate -s 1T` shows 0 blocks and `du` 0, so
  // sparse-aware tools (cp --sparse, tar -S, rsync -S) look for holes.
  st.st_blocks = static_cast<blkcnt_t>((a.stored_bytes() + 511) / 512);
  st.st_atim.tv_sec = a.atime_ns() / 1000000000;
  st.st_atim.tv_nsec = a.atime_ns() % 1000000000;
  st.st_mtim.tv_sec = a.mtime_ns() / 1000000000;
  st.st_mtim.tv_nsec = a.mtime_ns() % 1000000000;
  st.st_ctim.tv_sec = a.ctime_ns() / 1000000000;
  st.st_ctim.tv_nsec = a.ctime_ns() % 1000000000;
  return st;
}

namespace {

constexpr size_t kMaxName = 255;
// "." and ".." take directory offsets 0 and 1; the server's cookies start after them.
constexpr uint64_t kDotEntries = 2;
constexpr uint32_t kIdBatch = 256;

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

// A broken accounting invariant is a bug: stop a debug build where it happens.
[[maybe_unused]] void DebugCheck(bool ok, const std::string& what) {
  if (ok) return;
  NIGHFS_LOG(ERROR) << "invariant violated: " << what;
  std::abort();
}

// POSIX ACLs (system.posix_acl_*) are not supported: storing them as plain xattrs would make
// the kernel neither enforce them nor fold them into the mode, and `cp -a` would lose modes.
// Refusing them makes tools fall back to chmod, as on any file system without ACLs.
absl::Status CheckXattrNamespace(const std::string& name) {
  if (name.rfind("system.", 0) == 0) {
    return PosixError(EOPNOTSUPP, "system.* attributes (POSIX ACLs) are not supported");
  }
  return absl::OkStatus();
}

absl::Status CheckName(const std::string& name) {
  if (name.size() > kMaxName) return PosixError(ENAMETOOLONG, "name longer than 255 bytes");
  if (name.empty()) return PosixError(ENOENT, "empty name");
  return absl::OkStatus();
}

class FileSystemImpl : public FileSystem {
 public:
  FileSystemImpl(MetaApi* meta, blockstore::BlockStore* store, const pb::Volume& volume,
                 uint64_t session_id, const FsOptions& options)
      : FileSystem(options),
        meta_(meta),
        store_(store),
        volume_(volume),
        bs_(volume.block_size()),
        session_id_(session_id),
        buffers_(BufferPool::Create(volume.block_size(), options.buffer_pool_bytes)),
        cache_(store, options.cache_bytes, &pool_),
        pool_(options.io_threads) {
    if (!options.spill_dir.empty()) {
      absl::StatusOr<std::shared_ptr<SpillDir>> d = SpillDir::Open(options.spill_dir);
      if (d.ok()) {
        spill_ = std::move(*d);
      } else {
        NIGHFS_LOG(ERROR) << "spilling disabled: " << d.status();
      }
    }
    retrier_ = std::thread([this] { RetryLoop(); });
  }

  ~FileSystemImpl() override {
    absl::Status s = FlushAll();
    if (!s.ok()) NIGHFS_LOG(ERROR) << "flush at shutdown failed: " << s;
    stop_retrier_.Notify();
    retrier_.join();
    if (s.ok()) CheckDirtyCount(/*only=*/nullptr);
  }

  // ---- namespace ----

  absl::StatusOr<pb::Attr> Lookup(uint64_t parent, const std::string& name) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::LookupRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Lookup, req));
    return Overlay(resp.attr());
  }

  absl::StatusOr<pb::Attr> GetAttr(uint64_t ino) override {
    pb::GetAttrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::GetAttr, req));
    return Overlay(resp.attr());
  }

  absl::StatusOr<pb::Attr> SetAttr(uint64_t ino, const SetAttrArgs& a) override {
    pb::SetAttrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_valid(a.valid);
    req.set_mode(a.mode);
    req.set_uid(a.uid);
    req.set_gid(a.gid);
    req.set_size(a.size);
    req.set_atime_ns(a.atime_ns);
    req.set_mtime_ns(a.mtime_ns);
    std::shared_ptr<FileState> st = OpenState(ino);
    if (st == nullptr) {
      ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::SetAttr, req));
      return resp.attr();
    }
    // Buffered writes go first, so a truncate or an explicit mtime is not undone by a later
    // commit of older data.
    absl::MutexLock fl(&st->flush_mu);
    RETURN_IF_ERROR(CommitLocked(st));
    ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::SetAttr, req));
    absl::MutexLock l(&st->mu);
    if (a.valid & pb::SETATTR_SIZE) {
      const uint64_t size = a.size;
      for (auto it = st->blocks.begin(); it != st->blocks.end();) {
        const uint64_t start = it->first * bs_;
        if (start >= size) {
          it = st->blocks.erase(it);
          continue;
        }
        if (size - start < it->second.length()) it->second.set_length(size - start);
        ++it;
      }
      // Writes that raced in after the commit above are cut like the server cut its blocks.
      for (auto it = st->dirty.begin(); it != st->dirty.end();) {
        const uint64_t start = it->first * bs_;
        if (start >= size) {
          it = st->dirty.erase(it);  // its charge goes with it
          continue;
        }
        if (size - start < it->second.img.size()) {
          it->second.img.resize(size - start);
          it->second.charge.Set(it->second.img.size());
        }
        ++it;
      }
      st->size = size;
    }
    st->attr = resp.attr();
    if (st->dirty.empty() && st->inflight.empty()) st->meta_dirty = false;
    return OverlayLocked(*st, resp.attr());
  }

  absl::StatusOr<std::string> Readlink(uint64_t ino) override {
    pb::ReadlinkRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    ASSIGN_OR_RETURN(pb::ReadlinkResponse resp, Meta(&MetaApi::Readlink, req));
    return resp.target();
  }

  absl::StatusOr<pb::Attr> Mknod(const Caller& c, uint64_t parent, const std::string& name,
                                 uint32_t mode, uint64_t rdev) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::MknodRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    req.set_mode(mode);
    req.set_rdev(rdev);
    req.set_uid(c.uid);
    req.set_gid(c.gid);
    ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Mknod, req));
    return resp.attr();
  }

  absl::StatusOr<pb::Attr> Mkdir(const Caller& c, uint64_t parent, const std::string& name,
                                 uint32_t mode) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::MkdirRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    req.set_mode(mode);
    req.set_uid(c.uid);
    req.set_gid(c.gid);
    ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Mkdir, req));
    return resp.attr();
  }

  absl::StatusOr<pb::Attr> Symlink(const Caller& c, uint64_t parent, const std::string& name,
                                   const std::string& target) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::SymlinkRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    req.set_target(target);
    req.set_uid(c.uid);
    req.set_gid(c.gid);
    ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Symlink, req));
    return resp.attr();
  }

  absl::StatusOr<pb::Attr> Link(uint64_t ino, uint64_t new_parent,
                                const std::string& new_name) override {
    RETURN_IF_ERROR(CheckName(new_name));
    pb::LinkRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_new_parent(new_parent);
    req.set_new_name(new_name);
    ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Link, req));
    return Overlay(resp.attr());
  }

  absl::Status Unlink(uint64_t parent, const std::string& name) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::UnlinkRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    req.set_session_id(session_id_.load());
    std::shared_ptr<FileState> open = OpenStateOfName(parent, name);
    req.set_sustain(open != nullptr);
    ASSIGN_OR_RETURN(pb::UnlinkResponse resp, Meta(&MetaApi::Unlink, req));
    if (open != nullptr && resp.attr().nlink() == 0) MarkSustained(open);
    return absl::OkStatus();
  }

  absl::Status Rmdir(uint64_t parent, const std::string& name) override {
    RETURN_IF_ERROR(CheckName(name));
    pb::RmdirRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    return Meta(&MetaApi::Rmdir, req).status();
  }

  absl::Status Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, uint32_t flags) override {
    RETURN_IF_ERROR(CheckName(name));
    RETURN_IF_ERROR(CheckName(new_name));
    pb::RenameRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    req.set_new_parent(new_parent);
    req.set_new_name(new_name);
    req.set_flags(flags);
    req.set_session_id(session_id_.load());
    std::shared_ptr<FileState> open;
    if (!(flags & RENAME_EXCHANGE)) open = OpenStateOfName(new_parent, new_name);
    req.set_sustain(open != nullptr);
    ASSIGN_OR_RETURN(pb::RenameResponse resp, Meta(&MetaApi::Rename, req));
    if (open != nullptr && resp.replaced().ino() == open->ino && resp.replaced().nlink() == 0) {
      MarkSustained(open);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<DirEntryOut>> ReadDir(uint64_t ino, uint64_t offset,
                                                   size_t max_entries, bool plus) override {
    std::vector<DirEntryOut> out;
    if (max_entries == 0) return out;
    // The kernel ignores the attributes of "." and "..", and the listing below reports
    // ENOTDIR for a non-directory: no extra round trip for them.
    pb::Attr self;
    self.set_ino(ino);
    self.set_mode(S_IFDIR);
    for (uint64_t o = offset; o < kDotEntries && out.size() < max_entries; ++o) {
      DirEntryOut e;
      e.name = o == 0 ? "." : "..";
      e.ino = ino;
      e.mode = S_IFDIR;
      e.next_offset = o + 1;
      e.attr = self;
      out.push_back(std::move(e));
    }
    if (out.size() >= max_entries) return out;
    pb::ReadDirRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_cookie(offset >= kDotEntries ? offset - kDotEntries : 0);
    req.set_limit(static_cast<uint32_t>(std::min<size_t>(max_entries - out.size(), 2000)));
    req.set_plus(plus);
    ASSIGN_OR_RETURN(pb::ReadDirResponse resp, Meta(&MetaApi::ReadDir, req));
    for (const pb::DirEntry& de : resp.entries()) {
      DirEntryOut e;
      e.name = de.name();
      e.ino = de.ino();
      e.mode = de.mode();
      e.next_offset = de.cookie() + kDotEntries;
      if (plus) e.attr = Overlay(de.attr());
      out.push_back(std::move(e));
    }
    return out;
  }

  absl::StatusOr<struct statvfs> StatFs() override {
    pb::StatFsRequest req;
    req.set_volume_id(volume_.id());
    ASSIGN_OR_RETURN(pb::StatFsResponse resp, Meta(&MetaApi::StatFs, req));
    struct statvfs sv;
    std::memset(&sv, 0, sizeof sv);
    // Object storage has no fixed capacity: report 1 PiB and 2^40 inodes, minus what is used.
    const uint64_t frsize = 4096;
    const uint64_t total = (1ull << 50) / frsize;
    const uint64_t used = (resp.used_bytes() + frsize - 1) / frsize;
    sv.f_bsize = std::min<uint32_t>(bs_, 1u << 20);
    sv.f_frsize = frsize;
    sv.f_blocks = total;
    sv.f_bfree = sv.f_bavail = total > used ? total - used : 0;
    const uint64_t files = 1ull << 40;
    sv.f_files = files;
    sv.f_ffree = sv.f_favail = files - std::min(files, resp.inodes());
    sv.f_namemax = kMaxName;
    return sv;
  }

  // ---- files ----

  absl::StatusOr<uint64_t> Open(uint64_t ino, int flags) override {
    std::shared_ptr<FileState> st = AcquireState(ino);
    absl::Status s = LoadState(st);
    if (!s.ok()) {
      ReleaseState(st);
      return s;
    }
    return NewHandle(st, flags);
  }

  absl::StatusOr<std::pair<pb::Attr, uint64_t>> Create(const Caller& c, uint64_t parent,
                                                       const std::string& name, uint32_t mode,
                                                       int flags) override {
    absl::StatusOr<pb::Attr> made = Mknod(c, parent, name, (mode & 07777) | S_IFREG, 0);
    if (made.ok()) {
      std::shared_ptr<FileState> st = AcquireState(made->ino());
      {
        absl::MutexLock fl(&st->flush_mu);
        if (!st->loaded) {
          absl::MutexLock l(&st->mu);
          st->attr = *made;
          st->size = 0;
          st->loaded = true;
        }
      }
      return std::make_pair(*made, NewHandle(st, flags));
    }
    // The kernel thought the name was free (a stale negative entry after another mount
    // created it): without O_EXCL, open the existing file as open(2) would.
    if (StatusToErrno(made.status()) != EEXIST || (flags & O_EXCL)) return made.status();
    ASSIGN_OR_RETURN(pb::Attr attr, Lookup(parent, name));
    if ((attr.mode() & S_IFMT) == S_IFDIR) return PosixError(EISDIR, "is a directory");
    ASSIGN_OR_RETURN(uint64_t fh, Open(attr.ino(), flags));
    if (flags & O_TRUNC) {
      SetAttrArgs a;
      a.valid = pb::SETATTR_SIZE;
      a.size = 0;
      absl::StatusOr<pb::Attr> t = SetAttr(attr.ino(), a);
      if (!t.ok()) {
        (void)Release(fh);
        return t.status();
      }
      attr = *t;
    }
    return std::make_pair(attr, fh);
  }

  absl::StatusOr<std::string> Read(uint64_t fh, uint64_t offset, size_t size) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
    FileState& st = *h->state;
    struct Part {
      size_t dst;
      uint64_t boff;
      size_t n;
      pb::Block ref;
    };
    std::vector<Part> parts;
    std::vector<pb::Block> ahead;
    std::string out;
    {
      absl::MutexLock l(&st.mu);
      if (offset >= st.size || size == 0) return std::string();
      const uint64_t end = std::min<uint64_t>(offset + size, st.size);
      out.assign(end - offset, '\0');
      for (uint64_t pos = offset; pos < end;) {
        const uint64_t idx = pos / bs_;
        const uint64_t boff = pos % bs_;
        const size_t n = std::min<uint64_t>(bs_ - boff, end - pos);
        const size_t dst = pos - offset;
        if (auto d = st.dirty.find(idx); d != st.dirty.end()) {
          CopyValid(d->second.img.data(), d->second.img.size(), boff, n, out.data() + dst);
        } else if (auto f = st.inflight.find(idx); f != st.inflight.end()) {
          ASSIGN_OR_RETURN(BlockData img, LoadImage(*f->second));
          CopyValid(img->data(), img->size(), boff, n, out.data() + dst);
        } else if (auto b = st.blocks.find(idx); b != st.blocks.end()) {
          parts.push_back({dst, boff, n, b->second});
        }  // else a hole: zeros
        pos += n;
      }
      // Sequential reader: fetch the next blocks before they are asked for.
      if (options_.readahead_blocks > 0 && h->last_end.load() == offset) {
        const uint64_t last = (end - 1) / bs_;
        for (uint64_t i = last + 1; i <= last + options_.readahead_blocks; ++i) {
          if (i * bs_ >= st.size) break;
          if (st.dirty.contains(i) || st.inflight.contains(i)) continue;
          if (auto b = st.blocks.find(i); b != st.blocks.end()) ahead.push_back(b->second);
        }
      }
      h->last_end.store(end);
    }
    for (const pb::Block& ref : ahead) cache_.Prefetch(ref);
    for (const Part& p : parts) {
      ASSIGN_OR_RETURN(BlockData data, cache_.Get(p.ref));
      const size_t valid = std::min<size_t>(p.ref.length(), data->size());
      CopyValid(data->data(), valid, p.boff, p.n, out.data() + p.dst);
    }
    read_ops_.fetch_add(1, std::memory_order_relaxed);
    bytes_read_.fetch_add(out.size(), std::memory_order_relaxed);
    return out;
  }

  absl::StatusOr<size_t> Write(uint64_t fh, uint64_t offset, std::string_view data) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
    if ((h->flags & O_ACCMODE) == O_RDONLY) return PosixError(EBADF, "not open for writing");
    if (data.empty()) return 0;
    const std::shared_ptr<FileState>& st = h->state;
    absl::flat_hash_map<uint64_t, BlockData> bases;
    std::vector<std::shared_ptr<PendingBlock>> sealed;
    bool commit_now = false;
    for (int round = 0;; ++round) {
      std::vector<pb::Block> need;
      {
        absl::MutexLock l(&st->mu);
        const uint64_t pos = (h->flags & O_APPEND) ? st->size : offset;
        need = MissingBasesLocked(*st, pos, data.size(), bases);
        if (need.empty()) {
          RETURN_IF_ERROR(ApplyWriteLocked(*st, pos, data, bases, &sealed));
          commit_now = st->inflight.size() >= static_cast<size_t>(options_.max_inflight_per_file);
          break;
        }
      }
      // Partial overwrite of a committed block: its old image is needed (read-modify-write).
      for (const pb::Block& ref : need) {
        ASSIGN_OR_RETURN(bases[ref.id()], cache_.Get(ref));
      }
    }
    for (auto& p : sealed) StartUpload(st, p);
    write_ops_.fetch_add(1, std::memory_order_relaxed);
    bytes_written_.fetch_add(data.size(), std::memory_order_relaxed);
    // Back-pressure: a writer far ahead of the store waits for its own file's uploads.
    last_activity_ns_.store(NowNs(), std::memory_order_relaxed);
    // Data of files waiting for a retry goes to disk first, if it may.
    if (buffered_.bytes() > static_cast<int64_t>(options_.writeback_bytes)) MaybeSpill();
    if (buffered_.bytes() > static_cast<int64_t>(options_.writeback_bytes)) {
      absl::MutexLock fl(&st->flush_mu);
      RETURN_IF_ERROR(CommitLocked(st));
    } else if (commit_now) {
      absl::MutexLock fl(&st->flush_mu);
      RETURN_IF_ERROR(CommitLocked(st, /*partial=*/true));
    }
    return data.size();
  }

  absl::Status Flush(uint64_t fh) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
    absl::MutexLock fl(&h->state->flush_mu);
    return CommitLocked(h->state);
  }

  absl::Status Fsync(uint64_t fh) override { return Flush(fh); }

  absl::Status Release(uint64_t fh) override {
    std::shared_ptr<Handle> h;
    {
      absl::MutexLock l(&handles_mu_);
      auto it = handles_.find(fh);
      if (it == handles_.end()) return PosixError(EBADF, "unknown file handle");
      h = std::move(it->second);
      handles_.erase(it);
    }
    absl::Status s;
    {
      absl::MutexLock fl(&h->state->flush_mu);
      s = CommitLocked(h->state);
    }
    if (!s.ok()) {
      NIGHFS_LOG(ERROR) << "inode " << h->state->ino << ": buffered data could not be stored "
                        << "at close; kept, and retried in the background: " << s;
    }
    ReleaseState(h->state);
    return s;
  }

  // ---- sparse files (mount/sparse.h) ----

  absl::StatusOr<uint64_t> Lseek(uint64_t fh, int64_t offset, int whence) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
      return PosixError(EINVAL, "only SEEK_DATA and SEEK_HOLE reach the file system");
    }
    FileState& st = *h->state;
    absl::MutexLock l(&st.mu);
    auto next = [&st](uint64_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return NextMappedLocked(st, i);
    };
    return whence == SEEK_DATA ? SeekData(next, bs_, st.size, offset)
                               : SeekHole(next, bs_, st.size, offset);
  }

  absl::Status Fallocate(uint64_t fh, int mode, int64_t offset, int64_t len) override {
    ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
    if ((h->flags & O_ACCMODE) == O_RDONLY) return PosixError(EBADF, "not open for writing");
    RETURN_IF_ERROR(CheckFallocate(mode, offset, len));
    const uint64_t off = static_cast<uint64_t>(offset);
    const uint64_t end = off + static_cast<uint64_t>(len);
    if (mode == FALLOC_FL_KEEP_SIZE) return absl::OkStatus();  // nothing to reserve
    if (mode == 0) return GrowTo(h->state, end);
    return PunchHole(fh, h, off, static_cast<uint64_t>(len));
  }

  // ---- xattrs ----

  absl::Status SetXattr(uint64_t ino, const std::string& name, std::string_view value,
                        int flags) override {
    RETURN_IF_ERROR(CheckXattrNamespace(name));
    pb::SetXattrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_name(name);
    req.set_value(std::string(value));
    req.set_flags(static_cast<uint32_t>(flags));
    RETURN_IF_ERROR(Meta(&MetaApi::SetXattr, req).status());
    ForgetNoCaps(ino);
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> GetXattr(uint64_t ino, const std::string& name) override {
    // The kernel asks for security.capability before every write (to strip it); answering
    // from memory keeps that off the network. Only this mount's own changes are seen here.
    const bool caps = name == "security.capability";
    if (caps && KnownNoCaps(ino)) return PosixError(ENODATA, "no such attribute");
    if (!CheckXattrNamespace(name).ok()) return PosixError(ENODATA, "no such attribute");
    pb::GetXattrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_name(name);
    absl::StatusOr<pb::GetXattrResponse> resp = Meta(&MetaApi::GetXattr, req);
    if (!resp.ok()) {
      if (caps && StatusToErrno(resp.status()) == ENODATA) RememberNoCaps(ino);
      return resp.status();
    }
    return resp->value();
  }

  absl::StatusOr<std::vector<std::string>> ListXattr(uint64_t ino) override {
    pb::ListXattrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    ASSIGN_OR_RETURN(pb::ListXattrResponse resp, Meta(&MetaApi::ListXattr, req));
    return std::vector<std::string>(resp.names().begin(), resp.names().end());
  }

  absl::Status RemoveXattr(uint64_t ino, const std::string& name) override {
    pb::RemoveXattrRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(ino);
    req.set_name(name);
    RETURN_IF_ERROR(Meta(&MetaApi::RemoveXattr, req).status());
    ForgetNoCaps(ino);
    return absl::OkStatus();
  }

  absl::Status FlushAll() override {
    for (auto& st : AllStates()) {
      absl::MutexLock fl(&st->flush_mu);
      (void)CommitLocked(st);  // a failure is recorded in the state and retried below
    }
    const absl::Time deadline = absl::Now() + options_.flush_timeout;
    absl::Time next_log = absl::InfinitePast();
    while (true) {
      const PendingSummary p = SummarizePending();
      if (p.files == 0) return absl::OkStatus();
      const absl::Time now = absl::Now();
      if (now >= deadline) {
        NIGHFS_LOG(ERROR) << "giving up after " << options_.flush_timeout << " (-o flush_timeout): "
                          << p.files << " file(s), " << p.bytes << " bytes were NOT stored and "
                          << "are lost (inodes " << p.inos << "); last error: " << p.last_error;
        return PosixError(EIO, absl::StrCat(p.files, " file(s) (", p.bytes,
                                            " bytes) could not be stored: ", p.last_error));
      }
      if (now >= next_log) {
        NIGHFS_LOG(WARNING) << "waiting for " << p.files << " file(s), " << p.bytes
                            << " bytes to be stored (inodes " << p.inos << "; last error: "
                            << p.last_error << "); giving up in "
                            << absl::Trunc(deadline - now, absl::Milliseconds(100))
                            << " (-o flush_timeout)";
        next_log = now + absl::Seconds(5);
      }
      RetryDue(/*until=*/deadline);
      absl::SleepFor(absl::Milliseconds(50));
    }
  }

  void SetSessionId(uint64_t session_id) override {
    session_id_.store(session_id);
    // Ids are owned by the session that allocated them: the old session's unused ones may be
    // reclaimed, so the next block takes a fresh batch.
    DropIdBatch();
  }

  void DropIdBatch() {
    absl::MutexLock l(&ids_mu_);
    next_id_ = end_id_;
  }

  void FillStats(status::v1::MountStats* s) const override {
    s->set_read_ops(read_ops_.load());
    s->set_write_ops(write_ops_.load());
    s->set_bytes_read(bytes_read_.load());
    s->set_bytes_written(bytes_written_.load());
    s->set_block_cache_hits(cache_.stats().hits.load());
    s->set_block_cache_misses(cache_.stats().misses.load());
    s->set_block_cache_bytes(cache_.bytes());
    s->set_dirty_bytes(static_cast<uint64_t>(std::max<int64_t>(0, buffered_.bytes())));
    const PendingSummary p = SummarizePending();
    s->set_pending_files(p.files);
    s->set_pending_bytes(p.bytes);
    s->set_blocks_uploaded(blocks_uploaded_.load());
    s->set_block_upload_errors(upload_errors_.load());
    s->set_meta_calls(meta_calls_.load());
    s->set_meta_errors(meta_errors_.load());
    s->set_checksum_mismatches(cache_.stats().checksum_mismatches.load());
  }

  void FillMemoryAndPending(status::v1::MountStatus* out) const override {
    status::v1::MemoryStats* m = out->mutable_memory();
    const ProcessMemory pm = ReadProcessMemory();
    m->set_rss_bytes(pm.rss_bytes);
    m->set_heap_in_use_bytes(pm.heap_in_use_bytes);
    m->set_heap_free_bytes(pm.heap_free_bytes);
    m->set_budget_bytes(options_.cache_bytes + options_.writeback_bytes);
    m->set_cache_bytes(cache_.bytes());
    m->set_dirty_bytes(static_cast<uint64_t>(std::max<int64_t>(0, buffered_.bytes())));
    m->set_uploading_bytes(static_cast<uint64_t>(std::max<int64_t>(0, uploading_.bytes())));
    m->set_prefetch_bytes(cache_.prefetch_bytes());
    m->set_pool_free_bytes(buffers_->free_bytes());
    m->set_spilled_bytes(static_cast<uint64_t>(std::max<int64_t>(0, spilled_.bytes())));
    std::vector<status::v1::PendingFile> files;
    for (const auto& st : AllStates()) {
      absl::MutexLock l(&st->mu);
      if (st->write_error.ok()) continue;
      status::v1::PendingFile f;
      f.set_ino(st->ino);
      f.set_bytes(st->DirtyBytesLocked());
      f.set_since_ns(st->failed_since_ns);
      f.set_attempts(st->attempts);
      f.set_last_error(std::string(st->write_error.message()));
      f.set_next_attempt_ns(st->next_attempt_ns);
      files.push_back(std::move(f));
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
      return a.since_ns() < b.since_ns();
    });
    if (files.size() > 50) files.resize(50);
    for (auto& f : files) *out->add_pending() = std::move(f);
  }

 private:
  // One metadata call, counted. Failures that are file-system answers (ENOENT...) are
  // normal; transport failures were already retried by the client up to its deadline.
  template <class Req, class Resp>
  absl::StatusOr<Resp> Meta(absl::StatusOr<Resp> (MetaApi::*method)(const Req&), const Req& req) {
    meta_calls_.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<Resp> r = (meta_->*method)(req);
    if (!r.ok() && StatusToErrno(r.status()) == EIO) {
      meta_errors_.fetch_add(1, std::memory_order_relaxed);
      NIGHFS_LOG(WARNING) << "metadata call failed: " << r.status();
    }
    return r;
  }

  static void CopyValid(const char* src, size_t src_len, uint64_t boff, size_t n, char* dst) {
    if (boff >= src_len) return;  // past the stored bytes: stays zero
    std::memcpy(dst, src + boff, std::min<size_t>(n, src_len - boff));
  }

  // ---- open-file table ----

  std::shared_ptr<FileState> OpenState(uint64_t ino) {
    absl::MutexLock l(&files_mu_);
    auto it = files_.find(ino);
    return it == files_.end() ? nullptr : it->second;
  }

  std::shared_ptr<FileState> AcquireState(uint64_t ino) {
    absl::MutexLock l(&files_mu_);
    std::shared_ptr<FileState>& st = files_[ino];
    if (st == nullptr) st = std::make_shared<FileState>(ino);
    ++st->open_count;
    return st;
  }

  // Drops a handle's reference. The last one forgets the file, unless it still holds data
  // that is not stored (its commit failed): then the state stays (a new open reuses it, so
  // readers see the data) and the retrier commits it later.
  void ReleaseState(const std::shared_ptr<FileState>& st) {
    {
      absl::MutexLock l(&files_mu_);
      if (--st->open_count > 0) return;
      absl::MutexLock sl(&st->mu);
      if (st->HasUnsavedLocked()) {
        if (st->write_error.ok()) {
          // Not stored and no commit failed (a write raced the close): retry at once.
          RecordFailureLocked(*st, absl::UnavailableError("not stored at close"));
          st->next_attempt_ns = NowNs();
        }
        return;
      }
    }
    ForgetIfClosed(st);
  }

  // Removes a closed, fully stored file from the table (and lets the server delete it if it
  // was unlinked while open).
  void ForgetIfClosed(const std::shared_ptr<FileState>& st) {
    bool release_rpc = false;
    {
      absl::MutexLock l(&files_mu_);
      if (st->open_count > 0) return;
      {
        absl::MutexLock sl(&st->mu);
        if (st->HasUnsavedLocked()) return;
      }
      auto it = files_.find(st->ino);
      if (it == files_.end() || it->second != st) return;
      files_.erase(it);
      release_rpc = st->sustained;
    }
    if (release_rpc) {
      pb::ReleaseRequest req;
      req.set_volume_id(volume_.id());
      req.set_session_id(session_id_.load());
      req.set_ino(st->ino);
      absl::Status s = Meta(&MetaApi::Release, req).status();
      if (!s.ok()) NIGHFS_LOG(WARNING) << "release of unlinked inode " << st->ino << ": " << s;
    }
  }

  std::vector<std::shared_ptr<FileState>> AllStates() const {
    std::vector<std::shared_ptr<FileState>> out;
    absl::MutexLock l(&files_mu_);
    out.reserve(files_.size());
    for (const auto& [ino, st] : files_) out.push_back(st);
    return out;
  }

  // ---- failed commits: kept, retried in the background ----

  struct PendingSummary {
    uint64_t files = 0;
    uint64_t bytes = 0;
    std::string inos;  // the first few
    std::string last_error;
  };

  PendingSummary SummarizePending() const {
    PendingSummary p;
    for (const auto& st : AllStates()) {
      absl::MutexLock l(&st->mu);
      if (st->write_error.ok()) continue;
      if (p.files < 10) absl::StrAppend(&p.inos, p.files == 0 ? "" : ",", st->ino);
      if (p.files == 10) absl::StrAppend(&p.inos, ",...");
      ++p.files;
      p.bytes += st->DirtyBytesLocked();
      p.last_error = std::string(st->write_error.message());
    }
    return p;
  }

  void RecordFailureLocked(FileState& st, const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    const int64_t now = NowNs();
    if (st.write_error.ok()) st.failed_since_ns = now;
    st.write_error = s;
    ++st.attempts;
    // Exponential backoff with jitter in [d/2, d], so mounts that lost the same store do not
    // all come back at once.
    absl::Duration d = options_.retry_initial_backoff;
    for (uint32_t i = 1; i < st.attempts && d < options_.retry_max_backoff; ++i) d *= 2;
    d = std::min(d, options_.retry_max_backoff);
    thread_local std::mt19937_64 rng(std::random_device{}());
    const int64_t full = absl::ToInt64Nanoseconds(d);
    st.next_attempt_ns = now + full / 2 + static_cast<int64_t>(rng() % (full / 2 + 1));
  }

  // Commits every file whose retry is due (and whose next attempt would come before `until`).
  void RetryDue(absl::Time until = absl::InfiniteFuture()) {
    const int64_t now = NowNs();
    for (const auto& st : AllStates()) {
      {
        absl::MutexLock l(&st->mu);
        if (st->write_error.ok()) continue;
        if (st->next_attempt_ns > now) {
          // Unmount waits for these: do not sleep past its bound on a long backoff.
          if (until == absl::InfiniteFuture() ||
              absl::FromUnixNanos(st->next_attempt_ns) < until) {
            continue;
          }
          if (now < absl::ToUnixNanos(until) - absl::ToInt64Nanoseconds(absl::Seconds(1))) {
            continue;
          }
        }
      }
      absl::Status s;
      {
        absl::MutexLock fl(&st->flush_mu);
        s = CommitLocked(st);
      }
      if (s.ok()) {
        NIGHFS_LOG(INFO) << "inode " << st->ino << ": data kept after a failed commit is stored";
        ForgetIfClosed(st);
      }
    }
  }

  void RetryLoop() {
    while (!stop_retrier_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
      RetryDue();
      MaybeSpill();
      TrimIfIdle();
    }
  }

  // Gives memory back once nothing was written for a while and nothing is buffered.
  void TrimIfIdle() {
    const int64_t last = last_activity_ns_.load(std::memory_order_relaxed);
    if (last == trimmed_at_ns_ || buffered_.bytes() != 0) return;
    if (NowNs() - last < absl::ToInt64Nanoseconds(absl::Seconds(2))) return;
    buffers_->Trim();
    MallocTrim();
    trimmed_at_ns_ = last;
  }

  // Every byte counted in buffered_ belongs to exactly one live charge, and the charge of a
  // buffer in a file's tables equals its size. Debug builds check the buffers of `only` after
  // each of its commits, and at shutdown (`only` null: no operation running) every file and
  // that the counts are exactly the sums of the live buffers.
  void CheckDirtyCount(const FileState* only) const {
#ifndef NDEBUG
    int64_t sum = 0;
    int64_t spilled = 0;
    std::vector<std::shared_ptr<FileState>> states = AllStates();
    for (const auto& st : states) {
      if (only != nullptr && st.get() != only) continue;
      absl::MutexLock l(&st->mu);
      for (const auto& [i, d] : st->dirty) {
        DebugCheck(d.charge.bytes() == d.img.size(), absl::StrCat("dirty charge of ", st->ino));
        sum += static_cast<int64_t>(d.charge.bytes());
      }
      for (const auto& [i, p] : st->inflight) {
        DebugCheck(p->charge.bytes() == p->size, absl::StrCat("inflight charge of ", st->ino));
        DebugCheck((p->data == nullptr) != p->spill_path.empty(),
                   absl::StrCat("spill state of ", st->ino));
        (p->data != nullptr ? sum : spilled) += static_cast<int64_t>(p->charge.bytes());
      }
    }
    DebugCheck(buffered_.bytes() >= 0, absl::StrCat("dirty count ", buffered_.bytes()));
    if (only == nullptr) {
      DebugCheck(sum == buffered_.bytes(), absl::StrCat("dirty count ", buffered_.bytes(),
                                                        " != sum of live buffers ", sum));
      DebugCheck(spilled == spilled_.bytes(), absl::StrCat("spilled count ", spilled_.bytes(),
                                                           " != sum of spilled blocks ", spilled));
    }
#else
    (void)only;
#endif
  }

  // The image of `p`, read back from the spill folder if it was spilled.
  absl::StatusOr<BlockData> LoadImage(const PendingBlock& p) {
    if (p.data != nullptr) return p.data;
    absl::StatusOr<std::string> img = p.spill->Read(p.spill_path, p.size);
    if (!img.ok()) {
      NIGHFS_LOG(ERROR) << "cannot read back spilled block " << p.index << ": " << img.status();
      return PosixError(EIO, img.status().message());
    }
    return BlockData(std::make_shared<const std::string>(std::move(*img)));
  }

  // While data that could not be stored holds more than 3/4 of the writeback budget, moves
  // the images of files waiting for a retry to the spill folder (down to half the budget),
  // so writers of other files are not throttled by a store outage.
  void MaybeSpill() {
    const int64_t high = static_cast<int64_t>(options_.writeback_bytes) / 4 * 3;
    const int64_t low = static_cast<int64_t>(options_.writeback_bytes) / 2;
    if (spill_ == nullptr || buffered_.bytes() <= high) return;
    for (const auto& st : AllStates()) {
      if (buffered_.bytes() <= low) return;
      {
        absl::MutexLock l(&st->mu);
        if (st->write_error.ok()) continue;
      }
      absl::MutexLock fl(&st->flush_mu);  // no commit of this file reads its images meanwhile
      std::vector<std::shared_ptr<PendingBlock>> victims;
      {
        absl::MutexLock l(&st->mu);
        for (auto& [i, p] : st->inflight) {
          if (p->finished && !p->committing && p->data != nullptr) victims.push_back(p);
        }
      }
      for (auto& p : victims) {
        if (buffered_.bytes() <= low) break;
        absl::StatusOr<std::string> path = spill_->Write(*p->data);
        if (!path.ok()) {
          NIGHFS_LOG(ERROR) << "cannot spill block " << p->index << " of inode " << st->ino
                            << " (kept in memory): " << path.status();
          return;
        }
        absl::MutexLock l(&st->mu);
        auto it = st->inflight.find(p->index);
        if (it == st->inflight.end() || it->second != p) {
          spill_->Remove(*path);
          continue;
        }
        p->spill = spill_;
        p->spill_path = std::move(*path);
        p->data = nullptr;
        p->charge = spilled_.Make(p->size);
      }
    }
  }

  void MarkSustained(const std::shared_ptr<FileState>& st) {
    absl::MutexLock l(&files_mu_);
    st->sustained = true;
  }

  // The open state of the inode named (parent, name), if this mount has it open. Costs a
  // Lookup only while some file is open.
  std::shared_ptr<FileState> OpenStateOfName(uint64_t parent, const std::string& name) {
    {
      absl::MutexLock l(&files_mu_);
      if (files_.empty()) return nullptr;
    }
    pb::LookupRequest req;
    req.set_volume_id(volume_.id());
    req.set_parent(parent);
    req.set_name(name);
    absl::StatusOr<pb::EntryResponse> r = Meta(&MetaApi::Lookup, req);
    if (!r.ok()) return nullptr;
    return OpenState(r->attr().ino());
  }

  // Close-to-open: the first open of a file in this mount reads its block map afresh.
  absl::Status LoadState(const std::shared_ptr<FileState>& st) {
    absl::MutexLock fl(&st->flush_mu);
    if (st->loaded) return absl::OkStatus();
    pb::GetBlocksRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(st->ino);
    ASSIGN_OR_RETURN(pb::GetBlocksResponse resp, Meta(&MetaApi::GetBlocks, req));
    absl::MutexLock l(&st->mu);
    st->attr = resp.attr();
    st->size = resp.attr().size();
    st->blocks.clear();
    for (const pb::Block& b : resp.blocks()) st->blocks[b.index()] = b;
    st->loaded = true;
    return absl::OkStatus();
  }

  uint64_t NewHandle(std::shared_ptr<FileState> st, int flags) {
    auto h = std::make_shared<Handle>();
    h->state = std::move(st);
    h->flags = flags;
    const uint64_t fh = next_fh_.fetch_add(1);
    absl::MutexLock l(&handles_mu_);
    handles_[fh] = std::move(h);
    return fh;
  }

  absl::StatusOr<std::shared_ptr<Handle>> GetHandle(uint64_t fh) {
    absl::MutexLock l(&handles_mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end()) return PosixError(EBADF, "unknown file handle");
    return it->second;
  }

  // Attributes as this mount sees them: buffered writes count.
  pb::Attr Overlay(const pb::Attr& attr) {
    std::shared_ptr<FileState> st = OpenState(attr.ino());
    if (st == nullptr) return attr;
    absl::MutexLock l(&st->mu);
    return OverlayLocked(*st, attr);
  }

  static pb::Attr OverlayLocked(FileState& st, const pb::Attr& attr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    pb::Attr a = attr;
    if (!st.dirty.empty() || !st.inflight.empty()) {
      a.set_stored_bytes(StoredBytesLocked(st, a.stored_bytes()));
    }
    if (st.meta_dirty) {
      a.set_size(st.size);
      a.set_mtime_ns(std::max(a.mtime_ns(), st.mtime_ns));
      a.set_ctime_ns(std::max(a.ctime_ns(), st.mtime_ns));
    }
    return a;
  }

  // ---- sparse-file view of the open-file state ----

  // The first block at index >= i that this mount knows holds data: a buffered image (newest
  // first, as Read prefers it) or a committed block.
  static std::optional<MappedBlock> NextMappedLocked(FileState& st, uint64_t i)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    std::optional<MappedBlock> best;
    auto consider = [&best](uint64_t index, uint64_t length) {
      if (!best.has_value() || index < best->index) best = MappedBlock{index, length};
    };
    if (auto d = st.dirty.lower_bound(i); d != st.dirty.end()) consider(d->first, d->second.img.size());
    if (auto f = st.inflight.lower_bound(i); f != st.inflight.end()) {
      consider(f->first, f->second->size);
    }
    if (auto b = st.blocks.lower_bound(i); b != st.blocks.end()) {
      consider(b->first, b->second.length());
    }
    return best;
  }

  // st_blocks of a file with buffered blocks: what it will store once they are committed,
  // i.e. the server's stored bytes with each buffered image in place of the committed block
  // it replaces. `du` grows while a large file is written and matches the data once it is
  // closed, without counting a rewritten block twice.
  static uint64_t StoredBytesLocked(FileState& st, uint64_t committed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    int64_t delta = 0;
    auto replace = [&](uint64_t index, uint64_t length) {
      auto b = st.blocks.find(index);
      delta += static_cast<int64_t>(length) -
               static_cast<int64_t>(b == st.blocks.end() ? 0 : b->second.length());
    };
    for (const auto& [index, d] : st.dirty) replace(index, d.img.size());
    for (const auto& [index, p] : st.inflight) {
      if (!st.dirty.contains(index)) replace(index, p->size);
    }
    return static_cast<uint64_t>(std::max<int64_t>(0, static_cast<int64_t>(committed) + delta));
  }

  // fallocate mode 0: size = max(size, end), as the server's CommitBlocks min_size does
  // atomically, so a concurrent extending write is never cut back.
  absl::Status GrowTo(const std::shared_ptr<FileState>& st, uint64_t end) {
    absl::MutexLock fl(&st->flush_mu);
    {
      absl::MutexLock l(&st->mu);
      if (st->size >= end) return absl::OkStatus();
    }
    pb::CommitBlocksRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(st->ino);
    req.set_min_size(end);
    ASSIGN_OR_RETURN(pb::CommitBlocksResponse resp, Meta(&MetaApi::CommitBlocks, req));
    absl::MutexLock l(&st->mu);
    st->attr = resp.attr();
    st->size = std::max(st->size, resp.attr().size());
    return absl::OkStatus();
  }

  // fallocate PUNCH_HOLE | KEEP_SIZE. Buffered blocks are committed first (as a local file
  // system writes back the range's dirty pages before punching), so the committed map is the
  // whole truth and no later commit brings a punched block back; then the blocks wholly
  // inside the range leave the map in one CommitBlocks (drop_indexes), and the data at the
  // range's edges is overwritten with zeros through the write path. The kernel holds the
  // inode lock across fallocate and write, so no write of this mount races the punch.
  absl::Status PunchHole(uint64_t fh, const std::shared_ptr<Handle>& h, uint64_t offset,
                         uint64_t len) {
    const std::shared_ptr<FileState>& st = h->state;
    PunchPlan plan;
    {
      absl::MutexLock fl(&st->flush_mu);
      RETURN_IF_ERROR(CommitLocked(st));
      std::vector<MappedBlock> mapped;
      uint64_t size = 0;
      {
        absl::MutexLock l(&st->mu);
        size = st->size;
        const uint64_t stop = std::min(size, offset + len);
        for (auto b = st->blocks.lower_bound(offset / bs_);
             b != st->blocks.end() && b->first * bs_ < stop; ++b) {
          mapped.push_back(MappedBlock{b->first, b->second.length()});
        }
      }
      plan = PlanPunch(mapped, bs_, size, offset, len);
      if (!plan.drop.empty()) {
        pb::CommitBlocksRequest req;
        req.set_volume_id(volume_.id());
        req.set_ino(st->ino);
        for (uint64_t index : plan.drop) req.add_drop_indexes(index);
        ASSIGN_OR_RETURN(pb::CommitBlocksResponse resp, Meta(&MetaApi::CommitBlocks, req));
        absl::MutexLock l(&st->mu);
        for (uint64_t index : plan.drop) st->blocks.erase(index);
        st->attr = resp.attr();
      }
    }
    for (const auto& [from, to] : plan.zero) {
      RETURN_IF_ERROR(WriteZerosAt(fh, *h, from, to - from));
    }
    return absl::OkStatus();
  }

  // Zeros at an explicit offset, even on an O_APPEND handle: such a handle writes through a
  // transient plain handle of the same open file (the caller's handle keeps the file open).
  absl::Status WriteZerosAt(uint64_t fh, const Handle& h, uint64_t pos, uint64_t n) {
    const std::string zeros(n, '\0');
    if (!(h.flags & O_APPEND)) return Write(fh, pos, zeros).status();
    const uint64_t plain = NewHandle(h.state, O_WRONLY);
    absl::Status s = Write(plain, pos, zeros).status();
    absl::MutexLock l(&handles_mu_);
    handles_.erase(plain);
    return s;
  }

  // ---- write path ----

  // Committed blocks whose old bytes a write of [pos, pos+n) must merge with.
  std::vector<pb::Block> MissingBasesLocked(FileState& st, uint64_t pos, size_t n,
                                            const absl::flat_hash_map<uint64_t, BlockData>& have)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    std::vector<pb::Block> need;
    const uint64_t end = pos + n;
    for (uint64_t p = pos; p < end;) {
      const uint64_t idx = p / bs_;
      const uint64_t boff = p % bs_;
      const uint64_t len = std::min<uint64_t>(bs_ - boff, end - p);
      p += len;
      if (st.dirty.contains(idx) || st.inflight.contains(idx)) continue;
      auto b = st.blocks.find(idx);
      if (b == st.blocks.end()) continue;
      if (boff == 0 && len >= b->second.length()) continue;  // overwrites every valid byte
      if (!have.contains(b->second.id())) need.push_back(b->second);
    }
    return need;
  }

  // Fails only when a spilled image cannot be read back (then nothing is applied).
  absl::Status ApplyWriteLocked(FileState& st, uint64_t pos, std::string_view data,
                                const absl::flat_hash_map<uint64_t, BlockData>& bases,
                                std::vector<std::shared_ptr<PendingBlock>>* sealed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    const uint64_t end = pos + data.size();
    absl::flat_hash_map<uint64_t, BlockData> unspilled;
    for (uint64_t i = pos / bs_; i * bs_ < end; ++i) {
      auto f = st.inflight.find(i);
      if (f == st.inflight.end() || f->second->data != nullptr || st.dirty.contains(i)) continue;
      ASSIGN_OR_RETURN(unspilled[i], LoadImage(*f->second));
    }
    for (uint64_t p = pos; p < end;) {
      const uint64_t idx = p / bs_;
      const uint64_t boff = p % bs_;
      const uint64_t len = std::min<uint64_t>(bs_ - boff, end - p);
      auto it = st.dirty.find(idx);
      if (it == st.dirty.end()) {
        const std::string* base = nullptr;
        size_t base_len = 0;
        if (auto f = st.inflight.find(idx); f != st.inflight.end()) {
          base = f->second->data != nullptr ? f->second->data.get() : unspilled.at(idx).get();
          base_len = base->size();
        } else if (auto b = st.blocks.find(idx); b != st.blocks.end()) {
          if (!(boff == 0 && len >= b->second.length())) {
            base = bases.at(b->second.id()).get();
            base_len = std::min<size_t>(b->second.length(), base->size());
          }
        }
        // A large writer (or a block that already has large content) will grow this image
        // to the whole block: take a block-size buffer from the pool, so no reallocation
        // copies it and no fresh 4 MiB allocation is made per block. Small files keep small
        // buffers.
        DirtyImage d;
        if (len >= (64u << 10) || base_len >= (64u << 10)) d.img = buffers_->Take();
        if (base != nullptr) d.img.assign(base->data(), base_len);
        d.charge = buffered_.Make(d.img.size());
        it = st.dirty.emplace(idx, std::move(d)).first;
      }
      std::string& img = it->second.img;
      if (img.size() < boff + len) {
        img.resize(boff + len, '\0');
        it->second.charge.Set(img.size());
      }
      std::memcpy(img.data() + boff, data.data() + (p - pos), len);
      if (boff + len == bs_) {
        // The writer reached the end of this block: upload it now, in the background.
        auto pending = std::make_shared<PendingBlock>(idx, buffers_->Share(std::move(img)),
                                                      std::move(it->second.charge));
        st.dirty.erase(it);
        SupersedeLocked(st, pending);
        sealed->push_back(std::move(pending));
      }
      p += len;
    }
    st.size = std::max(st.size, end);
    st.mtime_ns = NowNs();
    st.meta_dirty = true;
    return absl::OkStatus();
  }

  // Makes `p` the newest image of its block; an older image that no commit has taken is
  // garbage the moment it is replaced.
  void SupersedeLocked(FileState& st, const std::shared_ptr<PendingBlock>& p)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st.mu) {
    auto [it, inserted] = st.inflight.try_emplace(p->index, p);
    if (inserted) return;
    std::shared_ptr<PendingBlock> old = std::move(it->second);
    it->second = p;
    old->charge = {};  // replaced: its bytes are no longer data to store
    if (!old->committing) {
      old->superseded = true;
      if (old->finished && old->status.ok()) DeleteObjectLater(old->ref.id());
    }
  }

  void StartUpload(const std::shared_ptr<FileState>& st, const std::shared_ptr<PendingBlock>& p) {
    pool_.Submit([this, st, p] { Upload(*st, *p); });
  }

  absl::StatusOr<uint64_t> NextBlockId() {
    absl::MutexLock l(&ids_mu_);
    if (next_id_ >= end_id_) {
      pb::AllocBlockIdsRequest req;
      req.set_volume_id(volume_.id());
      req.set_count(kIdBatch);
      req.set_session_id(session_id_.load());
      ASSIGN_OR_RETURN(pb::AllocBlockIdsResponse resp, Meta(&MetaApi::AllocBlockIds, req));
      next_id_ = resp.first_id();
      end_id_ = next_id_ + kIdBatch;
    }
    return next_id_++;
  }

  absl::Status PutBlock(PendingBlock& p) {
    ASSIGN_OR_RETURN(uint64_t id, NextBlockId());
    const std::string& data = *p.data;
    RETURN_IF_ERROR(store_->Put(blockstore::BlockKey(id), data));
    p.ref.set_index(p.index);
    p.ref.set_id(id);
    p.ref.set_length(static_cast<uint32_t>(data.size()));
    p.ref.set_object_size(static_cast<uint32_t>(data.size()));
    p.ref.set_crc32c(Crc32c(data));
    cache_.Insert(id, p.data);
    return absl::OkStatus();
  }

  void Upload(FileState& st, PendingBlock& p) {
    bool skip = false;
    {
      // Replaced by a newer image while queued: nothing will reference it, so do not spend a
      // PUT on it, and let its buffer go now (a writer rewriting one block faster than the
      // store takes it must not pile up uncounted images in the queue).
      absl::MutexLock l(&st.mu);
      if (p.superseded) {
        p.status = absl::CancelledError("superseded before its upload");
        p.finished = skip = true;
      }
    }
    if (skip) {
      p.done.Notify();
      return;
    }
    ByteGauge::Charge uploading = uploading_.Make(p.data->size());
    absl::Status s = PutBlock(p);
    if (s.ok()) {
      blocks_uploaded_.fetch_add(1, std::memory_order_relaxed);
    } else {
      upload_errors_.fetch_add(1, std::memory_order_relaxed);
      NIGHFS_LOG(WARNING) << "upload of block " << p.index << " of inode " << st.ino
                          << " failed: " << s;
    }
    bool orphan = false;
    {
      absl::MutexLock l(&st.mu);
      p.status = s;
      p.finished = true;
      orphan = p.superseded && s.ok();
    }
    if (orphan) DeleteObjectLater(p.ref.id());
    p.done.Notify();
  }

  void DeleteObjectLater(uint64_t id) {
    pool_.Submit([this, id] {
      absl::Status s = store_->Delete(blockstore::BlockKey(id));
      if (!s.ok()) NIGHFS_LOG(WARNING) << "could not delete unused block " << id << ": " << s;
    });
  }

  // Commits `st` (see CommitOnceLocked) and records the outcome: a failure becomes the file's
  // sticky write error (reported by every later fsync/close until a commit succeeds) and
  // schedules a background retry; a full successful commit clears it.
  absl::Status CommitLocked(const std::shared_ptr<FileState>& st, bool partial = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->flush_mu) {
    absl::Status s = CommitOnceLocked(st, partial);
    {
      absl::MutexLock l(&st->mu);
      if (!s.ok()) {
        RecordFailureLocked(*st, s);
      } else if (!partial && !st->write_error.ok()) {
        st->write_error = absl::OkStatus();
        st->failed_since_ns = 0;
        st->attempts = 0;
        st->next_attempt_ns = 0;
      }
    }
    CheckDirtyCount(st.get());
    return s;
  }

  // Seals every buffered block of `st`, waits for the uploads and records them in the
  // metadata server in one CommitBlocks. On failure nothing buffered is dropped: the next
  // flush (or the background retrier) tries again.
  //
  // With `partial` (back-pressure for a writer far ahead of the store) it only waits for the
  // oldest upload, commits the uploads that have finished, and leaves the rest in flight, so
  // the upload pipeline never drains. The size it records then covers only committed blocks.
  absl::Status CommitOnceLocked(const std::shared_ptr<FileState>& st, bool partial)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(st->flush_mu) {
    std::vector<std::shared_ptr<PendingBlock>> snap;
    std::vector<std::shared_ptr<PendingBlock>> sealed;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    if (partial) {
      std::shared_ptr<PendingBlock> oldest;
      {
        absl::MutexLock l(&st->mu);
        if (st->inflight.empty()) return absl::OkStatus();
        oldest = st->inflight.begin()->second;
      }
      oldest->done.WaitForNotification();
      absl::MutexLock l(&st->mu);
      uint64_t end = 0;
      for (auto& [idx, p] : st->inflight) {
        if (!p->finished) continue;
        if (!p->status.ok()) return PosixError(EIO, p->status.message());
        p->committing = true;
        snap.push_back(p);
        end = std::max<uint64_t>(end, idx * bs_ + p->size);
      }
      if (snap.empty()) return absl::OkStatus();
      size = std::min(st->size, end);
      mtime_ns = st->mtime_ns;
    }
    if (!partial) {
      absl::MutexLock l(&st->mu);
      if (!st->meta_dirty && st->dirty.empty() && st->inflight.empty()) return absl::OkStatus();
      for (auto& [idx, d] : st->dirty) {
        auto p = std::make_shared<PendingBlock>(idx, buffers_->Share(std::move(d.img)),
                                                std::move(d.charge));
        SupersedeLocked(*st, p);
        sealed.push_back(std::move(p));
      }
      st->dirty.clear();
      for (auto& [idx, p] : st->inflight) {
        p->committing = true;
        snap.push_back(p);
      }
      size = st->size;
      mtime_ns = st->mtime_ns;
    }
    for (auto& p : sealed) StartUpload(st, p);

    absl::Status failure;
    for (auto& p : snap) {
      p->done.WaitForNotification();
      if (p->status.ok()) continue;
      // One more try in this thread before the flush reports the error.
      failure = Reupload(*st, p);
      if (!failure.ok()) break;
    }

    // The server answers ESTALE when an id's allocation was reclaimed (this mount's session
    // expired while the data waited): store the images again under fresh ids, once.
    for (int round = 0; failure.ok(); ++round) {
      pb::CommitBlocksRequest req;
      req.set_volume_id(volume_.id());
      req.set_ino(st->ino);
      for (auto& p : snap) *req.add_blocks() = p->ref;
      req.set_min_size(size);
      req.set_mtime_ns(mtime_ns);
      absl::StatusOr<pb::CommitBlocksResponse> resp = Meta(&MetaApi::CommitBlocks, req);
      if (resp.ok()) {
        absl::MutexLock l(&st->mu);
        for (auto& p : snap) {
          st->blocks[p->index] = p->ref;
          auto it = st->inflight.find(p->index);
          // Committed: its charge dies with the last reference to it.
          if (it != st->inflight.end() && it->second == p) {
            p->charge = {};
            st->inflight.erase(it);
          }
        }
        st->attr = resp->attr();
        st->size = std::max(st->size, resp->attr().size());
        if (st->dirty.empty() && st->inflight.empty()) st->meta_dirty = false;
        return absl::OkStatus();
      }
      failure = resp.status();
      if (StatusToErrno(failure) != ESTALE || round > 0) break;
      NIGHFS_LOG(WARNING) << "inode " << st->ino << ": block ids were reclaimed by the "
                          << "metadata server; storing " << snap.size() << " block(s) again";
      // The rest of the current id batch belongs to the same reclaimed range.
      DropIdBatch();
      for (auto& p : snap) {
        failure = Reupload(*st, p);
        if (!failure.ok()) break;
      }
    }
    absl::MutexLock l(&st->mu);
    for (auto& p : snap) p->committing = false;
    NIGHFS_LOG(ERROR) << "could not store data of inode " << st->ino << ": " << failure;
    // Whatever the cause, the caller sees an I/O error: its data is not durable yet.
    return PosixError(EIO, failure.message());
  }

  // Uploads the image of `*p` again under a fresh id; on success `*p` is replaced by the new
  // upload (in the snapshot and, if still current, in the file's table, with its charge).
  absl::Status Reupload(FileState& st, std::shared_ptr<PendingBlock>& p) {
    BlockData img;
    {
      absl::MutexLock l(&st.mu);
      ASSIGN_OR_RETURN(img, LoadImage(*p));
    }
    auto again = std::make_shared<PendingBlock>(p->index, std::move(img));
    Upload(st, *again);
    if (!again->status.ok()) return again->status;
    absl::MutexLock l(&st.mu);
    again->committing = true;
    auto it = st.inflight.find(p->index);
    if (it != st.inflight.end() && it->second == p) {
      // In memory again (a spilled image counts as dirty once more).
      again->charge = p->data != nullptr ? std::move(p->charge) : buffered_.Make(again->size);
      p->charge = {};
      it->second = again;
    }
    p = std::move(again);
    return absl::OkStatus();
  }

  // ---- security.capability absence cache ----
  bool KnownNoCaps(uint64_t ino) {
    absl::MutexLock l(&caps_mu_);
    return no_caps_.contains(ino);
  }
  void RememberNoCaps(uint64_t ino) {
    absl::MutexLock l(&caps_mu_);
    if (no_caps_.size() > 100000) no_caps_.clear();
    no_caps_.insert(ino);
  }
  void ForgetNoCaps(uint64_t ino) {
    absl::MutexLock l(&caps_mu_);
    no_caps_.erase(ino);
  }

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

  absl::Mutex ids_mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(ids_mu_) = 0;
  uint64_t end_id_ ABSL_GUARDED_BY(ids_mu_) = 0;

  absl::Mutex caps_mu_;
  absl::flat_hash_set<uint64_t> no_caps_ ABSL_GUARDED_BY(caps_mu_);

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

  // The pool is declared last so it is destroyed first: queued uploads and prefetches finish
  // while the cache and everything else they use still exist.
  BlockCache cache_;
  ThreadPool pool_;
  // Commits files whose commit failed, in the background (see RetryDue); joined first thing
  // in the destructor.
  absl::Notification stop_retrier_;
  std::thread retrier_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileSystem>> FileSystem::Create(MetaApi* meta,
                                                               blockstore::BlockStore* store,
                                                               const pb::Volume& volume,
                                                               uint64_t session_id,
                                                               const FsOptions& options) {
  if (meta == nullptr || store == nullptr) return absl::InvalidArgumentError("no meta or store");
  if (volume.block_size() == 0) return absl::InvalidArgumentError("volume has no block size");
  // Why here: every mount daemon and test builds its file system through this factory, and
  // the settings must be in place before the first block buffer is allocated.
  TuneMallocForMount();
  return std::unique_ptr<FileSystem>(
      new FileSystemImpl(meta, store, volume, session_id, options));
}

}  // namespace nighfs::fs
