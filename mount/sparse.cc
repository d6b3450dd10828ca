#include "mount/sparse.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cerrno>
#include <limits>

#include "common/errno_status.h"

namespace nighfs::fs {

absl::StatusOr<uint64_t> SeekData(NextMappedFn next, uint64_t block_size, uint64_t size,
                                  int64_t offset) {
  if (offset < 0 || static_cast<uint64_t>(offset) >= size) {
    return PosixError(ENXIO, "offset at or past the end of the file");
  }
  const uint64_t pos = static_cast<uint64_t>(offset);
  for (uint64_t i = pos / block_size;;) {
    std::optional<MappedBlock> b = next(i);
    if (!b.has_value()) break;
    const uint64_t start = b->index * block_size;
    if (start >= size) break;
    const uint64_t end = std::min(start + b->length, size);
    if (end > pos && end > start) return std::max(pos, start);
    // Skipped: an empty block, or the block holding `pos` whose valid bytes stop short of it.
    i = b->index + 1;
  }
  return PosixError(ENXIO, "no data at or after the offset");
}

absl::StatusOr<uint64_t> SeekHole(NextMappedFn next, uint64_t block_size, uint64_t size,
                                  int64_t offset) {
  if (offset < 0 || static_cast<uint64_t>(offset) >= size) {
    return PosixError(ENXIO, "offset at or past the end of the file");
  }
  uint64_t pos = static_cast<uint64_t>(offset);
  // Walks a run of adjacent full blocks; the first byte no block covers is the hole.
  while (pos < size) {
    const uint64_t i = pos / block_size;
    std::optional<MappedBlock> b = next(i);
    if (!b.has_value() || b->index != i) return pos;  // block i is not mapped
    const uint64_t end = i * block_size + b->length;
    if (end <= pos) return pos;  // past the block's valid bytes
    if (b->length < block_size) return std::min(end, size);
    pos = end;
  }
  return size;  // the virtual hole at the end of the file
}

PunchPlan PlanPunch(const std::vector<MappedBlock>& mapped, uint64_t block_size, uint64_t size,
                    uint64_t offset, uint64_t len) {
  PunchPlan plan;
  const uint64_t stop =
      std::min(size, len > std::numeric_limits<uint64_t>::max() - offset ? size : offset + len);
  if (offset >= stop) return plan;
  for (const MappedBlock& b : mapped) {
    const uint64_t start = b.index * block_size;
    const uint64_t end = std::min(start + b.length, size);
    if (start >= end || (offset <= start && end <= stop)) {
      // Every byte it holds is punched (or it holds none): the map entry goes, and the bytes
      // past its valid length were zeros already.
      if (start < stop && start + block_size > offset) plan.drop.push_back(b.index);
      continue;
    }
    const uint64_t zs = std::max(start, offset);
    const uint64_t ze = std::min(end, stop);
    if (zs < ze) plan.zero.emplace_back(zs, ze);
  }
  return plan;
}

absl::Status CheckFallocate(int mode, int64_t offset, int64_t len) {
  if (offset < 0 || len <= 0) return PosixError(EINVAL, "negative offset or non-positive length");
  // An object store allocates nothing ahead and a punched block is simply unmapped; ranges
  // that would have to be shifted (collapse, insert) or kept allocated as zeros (zero range,
  // unshare) are not offered. Punch without keep-size is refused as the kernel refuses it.
  if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE &&
      mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    return PosixError(EOPNOTSUPP, "fallocate mode not supported");
  }
  if (offset > std::numeric_limits<int64_t>::max() - len) {
    return PosixError(EFBIG, "offset + length overflows");
  }
  return absl::OkStatus();
}

}  // namespace nighfs::fs
