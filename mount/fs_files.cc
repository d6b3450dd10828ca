// FileSystemImpl open-file table and handles: Open/Create/Read/Release and the attribute
// overlay that makes buffered writes visible.

#include "mount/filesystem_impl.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "common/status_macros.h"

namespace nighfs::fs {

namespace {

// How far from the end of a handle's previous read a read still counts as sequential: the
// kernel's readahead window (fuse_conn.h max_readahead), whose requests may run in parallel,
// or one block if that is less.
constexpr uint64_t kSequentialSlack = 1u << 20;

constexpr size_t kMaxPageCacheStamps = 1u << 16;

}  // namespace

absl::StatusOr<uint64_t> FileSystemImpl::Open(uint64_t ino, int flags) {
  std::shared_ptr<FileState> st = AcquireState(ino);
  absl::Status s = LoadState(st, OpenAccess(flags));
  if (!s.ok()) {
    ReleaseState(st);
    return s;
  }
  const bool keep_cache = RecordPageCacheStamp(*st);
  return NewHandle(st, flags, keep_cache);
}

bool FileSystemImpl::KeepCache(uint64_t fh) {
  absl::StatusOr<std::shared_ptr<Handle>> h = GetHandle(fh);
  return h.ok() && (*h)->keep_cache;
}

std::optional<uint64_t> FileSystemImpl::ContentStampLocked(const FileState& st) {
  if (st.HasUnsavedLocked()) return std::nullopt;
  // splitmix64 over (size, then index, id, valid length and CRC of each committed block: an
  // inline block's bytes change under the same id 0).
  uint64_t h = 0x9e3779b97f4a7c15ull;
  auto mix = [&h](uint64_t v) {
    uint64_t z = (h ^ v) + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    h = z ^ (z >> 31);
  };
  mix(st.size);
  for (const auto& [index, b] : st.blocks) {
    mix(index);
    mix(b.id());
    mix(b.length());
    mix(b.crc32c());
  }
  return h;
}

bool FileSystemImpl::RecordPageCacheStamp(FileState& st) {
  std::optional<uint64_t> stamp;
  {
    absl::MutexLock l(&st.mu);
    stamp = ContentStampLocked(st);
  }
  absl::MutexLock l(&stamps_mu_);
  if (!stamp) {
    page_cache_stamps_.erase(st.ino);
    return false;
  }
  auto [it, fresh] = page_cache_stamps_.try_emplace(st.ino, *stamp);
  const bool same = !fresh && it->second == *stamp;
  it->second = *stamp;
  // Bounded: a forgotten stamp only costs one refill of that file's page cache.
  if (page_cache_stamps_.size() > kMaxPageCacheStamps) {
    page_cache_stamps_.clear();
    page_cache_stamps_[st.ino] = *stamp;
  }
  return same;
}

absl::StatusOr<std::pair<pb::Attr, uint64_t>> FileSystemImpl::Create(
    const Caller& c, uint64_t parent, const std::string& name, uint32_t mode, int flags) {
  std::string grant;
  const uint64_t gen = names_gen_.load();
  absl::StatusOr<pb::Attr> made =
      MakeNode(c, parent, name, (mode & 07777) | S_IFREG, 0, OpenAccess(flags), &grant);
  if (made.ok()) {
    std::shared_ptr<FileState> st = AcquireState(made->ino());
    {
      absl::MutexLock fl(&st->flush_mu);
      absl::MutexLock l(&st->mu);
      if (!st->loaded) {
        st->attr = *made;
        st->attr_gen = gen;
        st->size = 0;
        st->loaded = true;
      }
      ScopedCaller as(c);
      KeepGrant(*st, OpenAccess(flags), grant);
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
    a.fh = fh;
    absl::StatusOr<pb::Attr> t = SetAttr(attr.ino(), a);
    if (!t.ok()) {
      (void)Release(fh);
      return t.status();
    }
    attr = *t;
  }
  return std::make_pair(attr, fh);
}

absl::StatusOr<std::string> FileSystemImpl::Read(uint64_t fh, uint64_t offset, size_t size) {
  ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
  FileState& st = *h->state;
  struct Part {
    size_t dst;
    uint64_t boff;
    size_t n;
    pb::Block ref;
  };
  std::vector<Part> parts;
  struct Overlay {  // bytes written over a part (a patched block)
    size_t dst;
    std::string bytes;
  };
  std::vector<Overlay> overlays;
  std::vector<pb::Block> ahead;
  std::string out;
  uint64_t file_bytes = 0;
  // A reader continuing where it stopped (give or take the kernel's parallel readahead
  // requests, which may arrive out of order) is sequential: it gets readahead and whole
  // blocks; any other read is random.
  const uint64_t prev_end = h->last_end.load();
  const uint64_t slack = std::min<uint64_t>(kSequentialSlack, bs_);
  const bool sequential = offset + slack >= prev_end && offset <= prev_end + slack;
  {
    absl::MutexLock l(&st.mu);
    if (offset >= st.size || size == 0) return std::string();
    file_bytes = st.size;
    const uint64_t end = std::min<uint64_t>(offset + size, st.size);
    out.assign(end - offset, '\0');
    for (uint64_t pos = offset; pos < end;) {
      const uint64_t idx = pos / bs_;
      const uint64_t boff = pos % bs_;
      const size_t n = std::min<uint64_t>(bs_ - boff, end - pos);
      const size_t dst = pos - offset;
      if (auto d = st.dirty.find(idx); d != st.dirty.end()) {
        if (const std::optional<BlockPatch>& patch = d->second.patch) {
          // The old block's bytes (fetched below), then what was written over them.
          parts.push_back({dst, boff, n, patch->ClippedBase()});
          for (auto& [at, bytes] : patch->Pieces(boff, n)) {
            overlays.push_back({dst + at, std::move(bytes)});
          }
        } else {
          CopyValid(d->second.img.data(), d->second.img.size(), boff, n, out.data() + dst);
        }
      } else if (auto f = st.inflight.find(idx); f != st.inflight.end()) {
        ASSIGN_OR_RETURN(BlockData img, LoadImage(*f->second));
        CopyValid(img->data(), img->size(), boff, n, out.data() + dst);
      } else if (auto b = st.blocks.find(idx); b != st.blocks.end()) {
        parts.push_back({dst, boff, n, b->second});
      }  // else a hole: zeros
      pos += n;
    }
    // Sequential reader: fetch the next blocks before they are asked for.
    if (options_.readahead_blocks > 0 && sequential) {
      const uint64_t last = (end - 1) / bs_;
      for (uint64_t i = last + 1; i <= last + options_.readahead_blocks; ++i) {
        if (i * bs_ >= st.size) break;
        if (st.dirty.contains(i) || st.inflight.contains(i)) continue;
        if (auto b = st.blocks.find(i); b != st.blocks.end()) ahead.push_back(b->second);
      }
    }
    h->last_end.store(end);
  }
  for (const pb::Block& ref : ahead) cache_.Prefetch(ref, fh);
  for (const Part& p : parts) {
    RETURN_IF_ERROR(cache_.Read(p.ref, p.boff, p.n, out.data() + p.dst, ReadHint{fh, sequential, file_bytes}));
  }
  for (const Overlay& o : overlays) std::memcpy(out.data() + o.dst, o.bytes.data(), o.bytes.size());
  read_ops_.fetch_add(1, std::memory_order_relaxed);
  bytes_read_.fetch_add(out.size(), std::memory_order_relaxed);
  return out;
}

absl::Status FileSystemImpl::Release(uint64_t fh) {
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
    // The page cache now holds what this mount wrote and read: what the next open compares.
    if (s.ok()) {
      RecordPageCacheStamp(*h->state);
    } else {
      absl::MutexLock l(&stamps_mu_);
      page_cache_stamps_.erase(h->state->ino);
    }
  }
  if (!s.ok()) {
    NIGHFS_LOG(ERROR) << "inode " << h->state->ino << ": buffered data could not be stored "
                      << "at close; kept, and retried in the background: " << s;
  }
  ReleaseState(h->state);
  return s;
}

std::shared_ptr<FileState> FileSystemImpl::OpenState(uint64_t ino) {
  absl::MutexLock l(&files_mu_);
  auto it = files_.find(ino);
  return it == files_.end() ? nullptr : it->second;
}

std::shared_ptr<FileState> FileSystemImpl::AcquireState(uint64_t ino) {
  absl::MutexLock l(&files_mu_);
  std::shared_ptr<FileState>& st = files_[ino];
  if (st == nullptr) st = std::make_shared<FileState>(ino);
  ++st->open_count;
  return st;
}

void FileSystemImpl::ReleaseState(const std::shared_ptr<FileState>& st) {
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

void FileSystemImpl::ForgetIfClosed(const std::shared_ptr<FileState>& st) {
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

std::vector<std::shared_ptr<FileState>> FileSystemImpl::AllStates() const {
  std::vector<std::shared_ptr<FileState>> out;
  absl::MutexLock l(&files_mu_);
  out.reserve(files_.size());
  for (const auto& [ino, st] : files_) out.push_back(st);
  return out;
}

void FileSystemImpl::MarkSustained(const std::shared_ptr<FileState>& st) {
  absl::MutexLock l(&files_mu_);
  st->sustained = true;
}

absl::Status FileSystemImpl::LoadState(const std::shared_ptr<FileState>& st, int access) {
  absl::MutexLock fl(&st->flush_mu);
  bool covered;
  {
    absl::MutexLock l(&st->mu);
    covered = (!(access & 4) || !st->read_grant.empty()) &&
              (!(access & 2) || !st->write_grant.empty());
  }
  if (st->loaded && covered) return absl::OkStatus();
  // The server checks this open against the file's attributes: give it the deferred ones.
  // A failed commit does not fail the open (the data stays readable while the store is down;
  // the failure is the file's write error, reported by its next fsync/close).
  if (HasDeferredAttrs(*st)) (void)CommitLocked(st);
  const uint64_t gen = names_gen_.load();
  pb::GetBlocksRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(st->ino);
  req.set_open_access(static_cast<uint32_t>(access));
  // Loaded already (another handle has the file open): only the grant is wanted, not a map
  // that would overwrite what this mount has buffered. No block has an index this large.
  if (st->loaded) req.set_first_index(std::numeric_limits<uint64_t>::max());
  ASSIGN_OR_RETURN(pb::GetBlocksResponse resp, Meta(&MetaApi::GetBlocks, req));
  absl::MutexLock l(&st->mu);
  KeepGrant(*st, access, resp.grant());
  if (st->loaded) return absl::OkStatus();
  st->attr = resp.attr();
  st->attr_gen = gen;
  st->size = resp.attr().size();
  st->blocks.clear();
  for (const pb::Block& b : resp.blocks()) st->blocks[b.index()] = b;
  st->loaded = true;
  return absl::OkStatus();
}

void FileSystemImpl::KeepGrant(FileState& st, int access, const std::string& grant) {
  st.mu.AssertHeld();
  if (access & 4) st.read_grant = grant;
  if (access & 2) {
    st.write_grant = grant;
    ToProto(CurrentCaller(), &st.writer);
  }
}

void FileSystemImpl::StampWriter(FileState& st, pb::CommitBlocksRequest* req) {
  absl::MutexLock l(&st.mu);
  *req->mutable_caller() = st.writer;
  req->set_grant(st.write_grant);
}

uint64_t FileSystemImpl::NewHandle(std::shared_ptr<FileState> st, int flags, bool keep_cache) {
  auto h = std::make_shared<Handle>();
  h->state = std::move(st);
  h->flags = flags;
  h->keep_cache = keep_cache;
  const uint64_t fh = next_fh_.fetch_add(1);
  absl::MutexLock l(&handles_mu_);
  handles_[fh] = std::move(h);
  return fh;
}

absl::StatusOr<std::shared_ptr<Handle>> FileSystemImpl::GetHandle(uint64_t fh) {
  absl::MutexLock l(&handles_mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end()) return PosixError(EBADF, "unknown file handle");
  return it->second;
}

pb::Attr FileSystemImpl::Overlay(const pb::Attr& attr) {
  std::shared_ptr<FileState> st = OpenState(attr.ino());
  if (st == nullptr) return attr;
  absl::MutexLock l(&st->mu);
  return OverlayLocked(*st, attr);
}

pb::Attr FileSystemImpl::OverlayLocked(FileState& st, const pb::Attr& attr) {
  pb::Attr a = attr;
  if (!st.dirty.empty() || !st.inflight.empty()) {
    a.set_stored_bytes(StoredBytesLocked(st, a.stored_bytes()));
  }
  if (st.meta_dirty) {
    a.set_size(st.size);
    a.set_mtime_ns(std::max(a.mtime_ns(), st.mtime_ns));
    a.set_ctime_ns(std::max(a.ctime_ns(), st.mtime_ns));
  }
  const pb::SetAttrRequest& d = st.deferred_attr;
  if (d.valid() != 0) {
    // Applied as the server will apply them after the commit's blocks and mtime (see
    // DeferSetAttrLocked for why no mode bit changes on the way).
    if (d.valid() & pb::SETATTR_MODE) a.set_mode((a.mode() & S_IFMT) | (d.mode() & 07777));
    if (d.valid() & pb::SETATTR_UID) a.set_uid(d.uid());
    if (d.valid() & pb::SETATTR_GID) a.set_gid(d.gid());
    if (d.valid() & pb::SETATTR_ATIME) a.set_atime_ns(d.atime_ns());
    if (d.valid() & pb::SETATTR_MTIME) a.set_mtime_ns(d.mtime_ns());
    a.set_ctime_ns(std::max(a.ctime_ns(), st.deferred_ctime_ns));
  }
  return a;
}

}  // namespace nighfs::fs
