// Writes to a stored block that the mount has not read: the bytes written, kept apart from the
// block they change until the block's new image is built at seal time.
//
// Why: a 4 KiB write into a stored 4 MiB block used to read the whole old block first
// (read-modify-write on the caller's time) and then hold a 4 MiB image in the writeback budget,
// so random small writes ran at the store's GET rate and a file of many touched blocks filled
// the budget with old bytes, forcing a full upload every few hundred writes. A patch costs only
// the bytes written; the old block is fetched once, when the image is sealed for upload.
#ifndef NIGHFS_MOUNT_BLOCK_PATCH_H_
#define NIGHFS_MOUNT_BLOCK_PATCH_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "meta.pb.h"

namespace nighfs::fs {

class BlockPatch {
 public:
  // `base` is the stored block written to; only its first `base_len` bytes are still part of
  // the file (a truncation may have cut it).
  BlockPatch(meta::v1::Block base, uint64_t base_len);

  // Records `data` at block offset `off`; later writes win over earlier ones.
  void Write(uint64_t off, std::string_view data);
  // Cuts the image to `len` bytes: base bytes and writes past it are gone (a later extension
  // reads zeros there, as after ftruncate).
  void Truncate(uint64_t len);

  // Bytes of the block image: the base's valid bytes, extended by writes past them and cut by
  // truncations (bytes of the image neither in the base nor written are zeros).
  uint64_t length() const { return length_; }
  // Bytes written and kept.
  uint64_t bytes() const { return bytes_; }
  // What the patch costs in memory, counted against the writeback budget: the extents'
  // allocations (capacity, not size: an extent grown by appends holds up to twice its bytes),
  // plus the bookkeeping of each extent (a map node and a string), so a writer of many tiny
  // scattered pieces cannot hold far more than the budget says.
  uint64_t held_bytes() const { return capacity_ + extents_.size() * kExtentOverhead; }
  static constexpr uint64_t kExtentOverhead = 96;
  const meta::v1::Block& base() const { return base_; }
  uint64_t base_len() const { return base_len_; }
  // The base restricted to the bytes still valid: read it (ranged) for the parts not written.
  meta::v1::Block ClippedBase() const;

  // True when one write covers every base byte still valid: the image needs no base.
  bool CoversBase() const;
  // Copies the written bytes that fall in [boff, boff + n) of the block to dst (dst[0] is
  // block byte boff); bytes not written are left as they are.
  void Overlay(uint64_t boff, uint64_t n, char* dst) const;
  // The written bytes within [boff, boff + n) of the block, as (offset from boff, bytes).
  std::vector<std::pair<uint64_t, std::string>> Pieces(uint64_t boff, uint64_t n) const;
  // The block's new image in `buf` (cleared first): the valid base bytes from `base_data`
  // (the base object; ignored when CoversBase()), zeros, and every write on top.
  void Build(std::string_view base_data, std::string* buf) const;

 private:
  // Calls fn(offset from boff, bytes) for each written piece within [boff, boff + n).
  template <typename Fn>
  void ForEachPiece(uint64_t boff, uint64_t n, Fn fn) const;

  meta::v1::Block base_;
  uint64_t base_len_;
  uint64_t length_;
  // Written ranges: start -> bytes. Never overlapping nor adjacent (Write merges them).
  std::map<uint64_t, std::string> extents_;
  uint64_t bytes_ = 0;
  uint64_t capacity_ = 0;  // sum of the extents' capacity()
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_BLOCK_PATCH_H_
