// Sparse files: where a file's data is, computed from its block map, and how fallocate's
// modes map onto a map of immutable blocks. Pure functions over a description of the map, so
// tests call them directly and the file-system logic only supplies its open-file state.
//
// A file is a map from block index to a block whose first `length` bytes are data; every other
// byte below the file size is a hole (reads as zeros, stores nothing). A block image buffered
// in the mount counts as a mapped block whose length is the image's size: it may hold zeros,
// and reporting zeros as data is allowed (lseek(2)), reporting data as a hole is not.
#ifndef NIGHFS_MOUNT_SPARSE_H_
#define NIGHFS_MOUNT_SPARSE_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace nighfs::fs {

// One mapped block: its index and its valid length in bytes (<= the block size).
struct MappedBlock {
  uint64_t index = 0;
  uint64_t length = 0;
};

// The first mapped block with index >= `index`, or nullopt when there is none. Lets the
// search skip holes in O(log n) instead of walking every index of a terabyte hole.
using NextMappedFn = absl::FunctionRef<std::optional<MappedBlock>(uint64_t index)>;

// lseek(2) SEEK_DATA: the first data offset >= `offset`. ENXIO when `offset` is negative or
// >= `size`, or when no data follows `offset`.
absl::StatusOr<uint64_t> SeekData(NextMappedFn next, uint64_t block_size, uint64_t size,
                                  int64_t offset);

// lseek(2) SEEK_HOLE: the first hole offset >= `offset`; `size` (the virtual hole at EOF)
// when data runs to the end. ENXIO when `offset` is negative or >= `size`.
absl::StatusOr<uint64_t> SeekHole(NextMappedFn next, uint64_t block_size, uint64_t size,
                                  int64_t offset);

// What fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len) does to a map.
struct PunchPlan {
  // Mapped blocks whose every data byte lies in the punched range: removed from the map.
  std::vector<uint64_t> drop;
  // Byte ranges [first, second) of data the punch covers in blocks that stay: written with
  // zeros. At most two (the range's edges), never past a block's data or the file size.
  std::vector<std::pair<uint64_t, uint64_t>> zero;
};

// Plans a punch of [offset, offset + len) in a file of `size` bytes. `mapped` lists the mapped
// blocks that intersect [offset, min(offset + len, size)) in ascending index order (the
// caller enumerates them from its map). Nothing is planned for bytes at or past `size`.
PunchPlan PlanPunch(const std::vector<MappedBlock>& mapped, uint64_t block_size, uint64_t size,
                    uint64_t offset, uint64_t len);

// fallocate(2) mode checks, in the order the kernel's vfs_fallocate makes them, for what
// nighfs supports: mode 0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
// EINVAL for offset < 0 or len <= 0, EFBIG when offset + len overflows, EOPNOTSUPP for any
// other mode (zero range, collapse, insert, unshare, punch without keep-size).
absl::Status CheckFallocate(int mode, int64_t offset, int64_t len);

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_SPARSE_H_
