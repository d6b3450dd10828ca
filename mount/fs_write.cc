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
  std::vector<std::shared_ptr<PendingBlock>> sealed;
  bool commit_now = false;
  {
    absl::MutexLock l(&st->mu);
    const uint64_t pos = (h->flags & O_APPEND) ? st->size : offset;
    RETURN_IF_ERROR(ApplyWriteLocked(*st, pos, data, &sealed));
    commit_now = st->inflight.size() >= static_cast<size_t>(options_.max_inflight_per_file);
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

absl::Status FileSystemImpl::Flush(uint64_t fh) { return FlushHandle(fh, nullptr); }

absl::Status FileSystemImpl::FlushHandle(uint64_t fh, bool* sent) {
  ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
  absl::MutexLock fl(&h->state->flush_mu);
  return CommitLocked(h->state, /*partial=*/false, sent);
}

absl::Status FileSystemImpl::Fsync(uint64_t fh) {
  bool sent = false;
  RETURN_IF_ERROR(FlushHandle(fh, &sent));
  // A commit just answered was synced with every change answered before it (the file's
  // create, chmod or rename among them). Without one, with a batching server, those may not
  // be on disk yet.
  if (sent) return absl::OkStatus();
  return SyncNames();
}

absl::Status FileSystemImpl::SyncNames() {
  if (!options_.sync_names_at_fsync) return absl::OkStatus();
  pb::SyncRequest req;
  req.set_volume_id(volume_.id());
  return Meta(&MetaApi::Sync, req).status();
}

absl::Status FileSystemImpl::ApplyWriteLocked(FileState& st, uint64_t pos, std::string_view data,
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
    const std::string_view piece = data.substr(p - pos, len);
    p += len;
    auto it = st.dirty.find(idx);
    if (it == st.dirty.end()) {
      const std::string* base = nullptr;
      size_t base_len = 0;
      DirtyImage d;
      if (auto f = st.inflight.find(idx); f != st.inflight.end()) {
        base = f->second->data != nullptr ? f->second->data.get() : unspilled.at(idx).get();
        base_len = base->size();
      } else if (auto b = st.blocks.find(idx); b != st.blocks.end()) {
        if (!(boff == 0 && len >= b->second.length())) {
          // Some old bytes stay: keep only what is written now, the block is read when the
          // image is sealed.
          d.patch.emplace(b->second, b->second.length());
        }
      }
      // A large writer (or a block that already has large content) will grow this image
      // to the whole block: take a block-size buffer from the pool, so no reallocation
      // copies it and no fresh 4 MiB allocation is made per block. Small files keep small
      // buffers.
      if (!d.patch && (len >= (64u << 10) || base_len >= (64u << 10))) d.img = buffers_->Take();
      if (base != nullptr) d.img.assign(base->data(), base_len);
      d.charge = buffered_.Make(d.HeldBytes());
      it = st.dirty.emplace(idx, std::move(d)).first;
    }
    DirtyImage& d = it->second;
    if (d.patch) {
      d.patch->Write(boff, piece);
      if (d.patch->CoversBase()) {
        // Rewritten from its start past every old byte (a sequential rewrite): a whole
        // image after all, which the writer seals below when it reaches the block's end.
        std::string img = buffers_->Take();
        img.resize(d.patch->length());
        d.patch->Overlay(0, img.size(), img.data());
        d.patch.reset();
        d.img = std::move(img);
      }
      d.charge.Set(d.HeldBytes());
      if (d.patch) continue;
    } else {
      std::string& img = d.img;
      if (img.size() < boff + len) {
        img.resize(boff + len, '\0');
        d.charge.Set(img.size());
      }
      std::memcpy(img.data() + boff, piece.data(), len);
    }
    if (boff + len == bs_) {
      // The writer reached the end of this block: upload it now, in the background.
      auto pending = std::make_shared<PendingBlock>(idx, buffers_->Share(std::move(d.img)),
                                                    std::move(d.charge));
      st.dirty.erase(it);
      SupersedeLocked(st, pending);
      sealed->push_back(std::move(pending));
    }
  }
  st.size = std::max(st.size, end);
  st.mtime_ns = NowNs();
  st.meta_dirty = true;
  // After a deferred utimes the write's own time wins, as it would have on the server.
  st.deferred_attr.set_valid(st.deferred_attr.valid() & ~uint32_t{pb::SETATTR_MTIME});
  return absl::OkStatus();
}

BlockData FileSystemImpl::BuildPatched(const BlockPatch& patch, const BlockData& base) {
  std::string img = buffers_->Take();
  patch.Build(base != nullptr ? std::string_view(*base) : std::string_view(), &img);
  return buffers_->Share(std::move(img));
}

absl::Status FileSystemImpl::SealPatchesLocked(const std::shared_ptr<FileState>& st) {
  // Building a batch adds its images (a whole block each) to a dirty count that is already at
  // writeback_bytes when back-pressure seals: at most 1/16 of that budget is built at a time
  // (4 blocks of 4 MiB with the defaults), so the mount stays within cache + writeback + 128
  // MiB (scripts/bench.sh random writes: peak RSS 888-907 MiB with 16 at a time, 866-874
  // with 4; the budget is 896).
  const size_t batch = std::clamp<size_t>(options_.writeback_bytes / 16 / std::max<uint64_t>(bs_, 1),
                                          1, static_cast<size_t>(std::max(1, options_.max_inflight_per_file)));
  for (;;) {
    // A batch of patches and the stored blocks they change.
    std::vector<pb::Block> bases;
    {
      absl::MutexLock l(&st->mu);
      for (const auto& [idx, d] : st->dirty) {
        if (!d.patch) continue;
        if (!d.patch->CoversBase()) bases.push_back(d.patch->base());
        if (bases.size() == batch) break;
      }
      if (bases.empty()) {
        bool any = false;
        for (const auto& [idx, d] : st->dirty) any = any || d.patch.has_value();
        if (!any) return absl::OkStatus();
      }
    }
    // Fetched side by side (the cache runs prefetches on the I/O pool), then collected.
    for (const pb::Block& ref : bases) cache_.Prefetch(ref);
    absl::flat_hash_map<uint64_t, std::pair<uint64_t, BlockData>> fetched;  // index -> id, bytes
    for (const pb::Block& ref : bases) {
      absl::StatusOr<BlockData> data = cache_.Get(ref);
      if (!data.ok()) {
        NIGHFS_LOG(ERROR) << "cannot read block " << ref.index() << " of inode " << st->ino
                          << " to apply writes to it: " << data.status();
        return PosixError(EIO, data.status().message());
      }
      fetched[ref.index()] = {ref.id(), std::move(*data)};
    }
    std::vector<std::shared_ptr<PendingBlock>> sealed;
    uint64_t size = 0;
    {
      absl::MutexLock l(&st->mu);
      size = st->size;
      for (auto it = st->dirty.begin(); it != st->dirty.end() && sealed.size() < batch;) {
        DirtyImage& d = it->second;
        if (!d.patch) {
          ++it;
          continue;
        }
        BlockData base;
        if (!d.patch->CoversBase()) {
          auto f = fetched.find(it->first);
          if (f == fetched.end() || f->second.first != d.patch->base().id()) {
            // A patch that appeared meanwhile: the next batch.
            ++it;
            continue;
          }
          base = f->second.second;
        }
        BlockData img = BuildPatched(*d.patch, base);
        d.charge.Set(img->size());
        auto p = std::make_shared<PendingBlock>(it->first, std::move(img), std::move(d.charge));
        it = st->dirty.erase(it);
        SupersedeLocked(*st, p);
        sealed.push_back(std::move(p));
      }
    }
    for (auto& p : sealed) StartStoring(st, p, size);  // a small file's block 0 goes inline
    for (auto& p : sealed) p->done.WaitForNotification();
    // Committed now, so the next batch's images replace these in memory, not add to them.
    absl::Status s = CommitOnceLocked(st, /*partial=*/true);
    if (!s.ok()) return s;
  }
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
    bytes_uploaded_.fetch_add(p.size, std::memory_order_relaxed);
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

absl::Status FileSystemImpl::CommitLocked(const std::shared_ptr<FileState>& st, bool partial,
                                          bool* sent) {
  absl::Status s = CommitOnceLocked(st, partial, sent);
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

absl::Status FileSystemImpl::CommitOnceLocked(const std::shared_ptr<FileState>& st, bool partial,
                                              bool* sent) {
  std::vector<std::shared_ptr<PendingBlock>> snap;
  std::vector<std::shared_ptr<PendingBlock>> sealed;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  pb::SetAttrRequest deferred;  // valid() == 0: none
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
    deferred = st->deferred_attr;
  }
  while (!partial) {
    RETURN_IF_ERROR(SealPatchesLocked(st));
    absl::MutexLock l(&st->mu);
    if (!st->HasUnsavedLocked()) return absl::OkStatus();
    bool raced = false;  // a writer added a patch since: seal it first
    for (const auto& [idx, d] : st->dirty) raced = raced || d.patch.has_value();
    if (raced) continue;
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
    deferred = st->deferred_attr;
    break;
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
    if (deferred.valid() != 0) *req.mutable_set_attr() = deferred;
    StampWriter(*st, &req);
    const uint64_t gen = names_gen_.load();
    absl::StatusOr<pb::CommitBlocksResponse> resp = Meta(&MetaApi::CommitBlocks, req);
    if (resp.ok()) {
      if (sent != nullptr) *sent = true;
      absl::MutexLock l(&st->mu);
      // Sent and applied. Nothing was deferred since (that takes flush_mu); a write may
      // only have cleared a bit.
      if (deferred.valid() != 0) st->deferred_attr.Clear();
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
      st->attr_gen = gen;
      st->size = std::max(st->size, resp->attr().size());
      if (st->dirty.empty() && st->inflight.empty()) st->meta_dirty = false;
      return absl::OkStatus();
    }
    failure = resp.status();
    const int err = StatusToErrno(failure);
    if (deferred.valid() != 0 && (err == EPERM || err == EACCES)) {
      // The server refused a deferred change (the file changed owner or mode through another
      // mount since): the data must not wait on it forever. The change is dropped, loudly,
      // as a chmod would have failed had it been sent at once.
      NIGHFS_LOG(ERROR) << "inode " << st->ino << ": the metadata server refused attribute "
                        << "changes deferred to this commit (" << failure
                        << "); committing the data without them";
      deferred.Clear();
      {
        absl::MutexLock l(&st->mu);
        st->deferred_attr.Clear();
      }
      failure = absl::OkStatus();
      continue;
    }
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
