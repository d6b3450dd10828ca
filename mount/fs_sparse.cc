// FileSystemImpl sparse-file calls (lseek SEEK_DATA/SEEK_HOLE, fallocate) on the open-file
// state; the pure planning functions are in mount/sparse.h.

#include "mount/filesystem_impl.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cerrno>

#include "common/status_macros.h"

namespace nighfs::fs {

absl::StatusOr<uint64_t> FileSystemImpl::Lseek(uint64_t fh, int64_t offset, int whence) {
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

absl::Status FileSystemImpl::Fallocate(uint64_t fh, int mode, int64_t offset, int64_t len) {
  ASSIGN_OR_RETURN(std::shared_ptr<Handle> h, GetHandle(fh));
  if ((h->flags & O_ACCMODE) == O_RDONLY) return PosixError(EBADF, "not open for writing");
  RETURN_IF_ERROR(CheckFallocate(mode, offset, len));
  const uint64_t off = static_cast<uint64_t>(offset);
  const uint64_t end = off + static_cast<uint64_t>(len);
  if (mode == FALLOC_FL_KEEP_SIZE) return absl::OkStatus();  // nothing to reserve
  if (mode == 0) return GrowTo(h->state, end);
  return PunchHole(fh, h, off, static_cast<uint64_t>(len));
}

std::optional<MappedBlock> FileSystemImpl::NextMappedLocked(FileState& st, uint64_t i) {
  std::optional<MappedBlock> best;
  auto consider = [&best](uint64_t index, uint64_t length) {
    if (!best.has_value() || index < best->index) best = MappedBlock{index, length};
  };
  if (auto d = st.dirty.lower_bound(i); d != st.dirty.end()) consider(d->first, d->second.Length());
  if (auto f = st.inflight.lower_bound(i); f != st.inflight.end()) {
    consider(f->first, f->second->size);
  }
  if (auto b = st.blocks.lower_bound(i); b != st.blocks.end()) {
    consider(b->first, b->second.length());
  }
  return best;
}

uint64_t FileSystemImpl::StoredBytesLocked(FileState& st, uint64_t committed) {
  int64_t delta = 0;
  auto replace = [&](uint64_t index, uint64_t length) {
    auto b = st.blocks.find(index);
    delta += static_cast<int64_t>(length) -
             static_cast<int64_t>(b == st.blocks.end() ? 0 : b->second.length());
  };
  for (const auto& [index, d] : st.dirty) replace(index, d.Length());
  for (const auto& [index, p] : st.inflight) {
    if (!st.dirty.contains(index)) replace(index, p->size);
  }
  return static_cast<uint64_t>(std::max<int64_t>(0, static_cast<int64_t>(committed) + delta));
}

absl::Status FileSystemImpl::GrowTo(const std::shared_ptr<FileState>& st, uint64_t end) {
  absl::MutexLock fl(&st->flush_mu);
  {
    absl::MutexLock l(&st->mu);
    if (st->size >= end) return absl::OkStatus();
  }
  pb::CommitBlocksRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(st->ino);
  req.set_min_size(end);
  StampWriter(*st, &req);
  ASSIGN_OR_RETURN(pb::CommitBlocksResponse resp, Meta(&MetaApi::CommitBlocks, req));
  absl::MutexLock l(&st->mu);
  st->attr = resp.attr();
  st->size = std::max(st->size, resp.attr().size());
  return absl::OkStatus();
}

absl::Status FileSystemImpl::PunchHole(uint64_t fh, const std::shared_ptr<Handle>& h,
                                       uint64_t offset, uint64_t len) {
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
      StampWriter(*st, &req);
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

absl::Status FileSystemImpl::WriteZerosAt(uint64_t fh, const Handle& h, uint64_t pos, uint64_t n) {
  const std::string zeros(n, '\0');
  if (!(h.flags & O_APPEND)) return Write(fh, pos, zeros).status();
  const uint64_t plain = NewHandle(h.state, O_WRONLY);
  absl::Status s = Write(plain, pos, zeros).status();
  absl::MutexLock l(&handles_mu_);
  handles_.erase(plain);
  return s;
}

}  // namespace nighfs::fs
