// FileSystemImpl write path: writes into block buffers, sealing, uploads under fresh block
// ids, and commits of uploaded blocks to the metadata server (with re-upload on ESTALE).

#include "mount/filesystem_impl.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>

#include "common/crc32c.h"
#include "common/status_macros.h"

namespace nighfs::fs {

namespace {

constexpr uint32_t kIdBatch = 256;

}  // namespace

absl::StatusOr<size_t> FileSystemImpl::Write(uint64_t fh, uint64_t offset, std::string_view data) {
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

absl::Status FileSystemImpl::Flush(uint64_t fh) {
  ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
  absl::MutexLock fl(&h->state->flush_mu);
  return CommitLocked(h->state);
}

std::vector<pb::Block> FileSystemImpl::MissingBasesLocked(
    FileState& st, uint64_t pos, size_t n, const absl::flat_hash_map<uint64_t, BlockData>& have) {
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

absl::Status FileSystemImpl::ApplyWriteLocked(FileState& st, uint64_t pos, std::string_view data,
                                              const absl::flat_hash_map<uint64_t, BlockData>& bases,
                                              std::vector<std::shared_ptr<PendingBlock>>* sealed) {
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

void FileSystemImpl::SupersedeLocked(FileState& st, const std::shared_ptr<PendingBlock>& p) {
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

void FileSystemImpl::StartUpload(const std::shared_ptr<FileState>& st,
                                 const std::shared_ptr<PendingBlock>& p) {
  pool_.Submit([this, st, p] { Upload(*st, *p); });
}

void FileSystemImpl::StartStoring(const std::shared_ptr<FileState>& st,
                                  const std::shared_ptr<PendingBlock>& p, uint64_t size) {
  // The whole file fits: its data rides in the commit, which is durable when the commit is
  // (synchronous=FULL on the server), and no PUT or GET is ever spent on it. Once the file has
  // grown past the limit, block 0 is uploaded as an object again and replaces the inline entry
  // (which left no object to collect).
  const uint64_t max = InlineMax();
  if (p->index == 0 && size <= max && p->size <= max) {
    StoreInline(*st, *p);
  } else {
    StartUpload(st, p);
  }
}

void FileSystemImpl::StoreInline(FileState& st, PendingBlock& p) {
  const std::string& data = *p.data;
  p.ref.Clear();
  p.ref.set_index(p.index);
  p.ref.set_length(static_cast<uint32_t>(data.size()));
  p.ref.set_object_size(static_cast<uint32_t>(data.size()));
  p.ref.set_crc32c(Crc32c(data));
  p.ref.set_inline_data(data);
  {
    absl::MutexLock l(&st.mu);
    p.status = absl::OkStatus();
    p.finished = true;
  }
  p.done.Notify();
}

absl::StatusOr<uint64_t> FileSystemImpl::NextBlockId() {
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

absl::Status FileSystemImpl::PutBlock(PendingBlock& p) {
  ASSIGN_OR_RETURN(uint64_t id, NextBlockId());
  const std::string& data = *p.data;
  // Behind a proxy the block may wait on the proxy's disk: the commit records where
  // (Block.holder), so a reader that misses it in the store knows whom to ask.
  ASSIGN_OR_RETURN(std::string holder, store_->PutAndLocate(blockstore::BlockKey(id), data));
  p.ref.set_holder(std::move(holder));
  p.ref.set_index(p.index);
  p.ref.set_id(id);
  p.ref.set_length(static_cast<uint32_t>(data.size()));
  p.ref.set_object_size(static_cast<uint32_t>(data.size()));
  p.ref.set_crc32c(Crc32c(data));
  // Checksums of each range too, so a small random read can fetch and verify part of it.
  // (The server takes ranges of 512 bytes up to the block size.)
  const uint32_t range = static_cast<uint32_t>(
      std::min<uint64_t>(options_.range_checksum_bytes, bs_));
  if (range >= 512 && !data.empty()) {
    p.ref.set_range_size(range);
    p.ref.set_range_crc32c(RangeChecksums(data, range));
  }
  cache_.Insert(id, p.data);
  return absl::OkStatus();
}

void FileSystemImpl::Upload(FileState& st, PendingBlock& p) {
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

void FileSystemImpl::DeleteObjectLater(uint64_t id) {
  if (id == 0) return;  // an inline block (IsInline): no object
  pool_.Submit([this, id] {
    absl::Status s = store_->Delete(blockstore::BlockKey(id));
    if (!s.ok()) NIGHFS_LOG(WARNING) << "could not delete unused block " << id << ": " << s;
  });
}

absl::Status FileSystemImpl::CommitLocked(const std::shared_ptr<FileState>& st, bool partial) {
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

absl::Status FileSystemImpl::CommitOnceLocked(const std::shared_ptr<FileState>& st, bool partial) {
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
  for (auto& p : sealed) StartStoring(st, p, size);

  absl::Status failure;
  for (auto& p : snap) {
    p->done.WaitForNotification();
    if (p->status.ok()) continue;
    // One more try in this thread before the flush reports the error.
    failure = Reupload(*st, p);
    if (!failure.ok()) break;
  }

  // The server answers ESTALE when an id's allocation was reclaimed (this mount's session
  // expired while the data waited): store the images again under fresh ids, once. EINVAL
  // for a commit with inline blocks: store those as objects (InlineRefused), once.
  for (int round = 0; failure.ok(); ++round) {
    pb::CommitBlocksRequest req;
    req.set_volume_id(volume_.id());
    req.set_ino(st->ino);
    for (auto& p : snap) *req.add_blocks() = p->ref;
    req.set_min_size(size);
    req.set_mtime_ns(mtime_ns);
    StampWriter(*st, &req);
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
    if (round > 0) break;
    if (StatusToErrno(failure) == EINVAL &&
        std::any_of(snap.begin(), snap.end(), [](const auto& p) { return IsInline(p->ref); })) {
      failure = InlineRefused(*st, snap);
      continue;
    }
    if (StatusToErrno(failure) != ESTALE) break;
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

absl::Status FileSystemImpl::InlineRefused(FileState& st,
                                           std::vector<std::shared_ptr<PendingBlock>>& snap) {
  if (inline_max_.exchange(0) != 0) {
    NIGHFS_LOG(WARNING) << "the metadata server refused an inline block (its "
                        << "--inline-max-bytes was lowered?): small files go to the block "
                        << "store until the next mount";
  }
  for (auto& p : snap) {
    if (!IsInline(p->ref)) continue;
    RETURN_IF_ERROR(Reupload(st, p, /*keep_inline=*/false));
  }
  return absl::OkStatus();
}

absl::Status FileSystemImpl::Reupload(FileState& st, std::shared_ptr<PendingBlock>& p,
                                      bool keep_inline) {
  BlockData img;
  {
    absl::MutexLock l(&st.mu);
    // An inline block has no id the server could have reclaimed: it stays as it is.
    if (keep_inline && p->finished && p->status.ok() && IsInline(p->ref)) {
      return absl::OkStatus();
    }
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

}  // namespace nighfs::fs
