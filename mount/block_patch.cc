#include "mount/block_patch.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <utility>

namespace nighfs::fs {

BlockPatch::BlockPatch(meta::v1::Block base, uint64_t base_len)
    : base_(std::move(base)),
      base_len_(std::min<uint64_t>(base_len, std::min(base_.length(), base_.object_size()))),
      length_(base_len_) {}

void BlockPatch::Write(uint64_t off, std::string_view data) {
  if (data.empty()) return;
  const uint64_t end = off + data.size();
  length_ = std::max(length_, end);
  // The extent to write into: the last one starting at or before `off` if it reaches `off`
  // (so an append or an overwrite inside one extent changes it in place, with no copy of what
  // it holds), else a new one at `off`.
  auto it = extents_.upper_bound(off);
  bool touching = false;
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.size() >= off) {
      it = prev;
      touching = true;
    }
  }
  if (!touching) it = extents_.emplace_hint(it, off, std::string());
  std::string& s = it->second;
  const uint64_t start = it->first;
  capacity_ -= s.capacity();  // added back once `s` is done growing
  if (start + s.size() < end) {
    bytes_ += end - start - s.size();
    s.resize(end - start);
  }
  std::memcpy(s.data() + (off - start), data.data(), data.size());
  // Absorb the extents this one now reaches: their bytes past it are kept, the rest were just
  // overwritten.
  for (auto next = std::next(it); next != extents_.end();) {
    const uint64_t my_end = start + s.size();
    if (next->first > my_end) break;
    const uint64_t next_end = next->first + next->second.size();
    if (next_end > my_end) s.append(next->second, my_end - next->first, std::string::npos);
    bytes_ -= next->second.size();
    bytes_ += next_end > my_end ? next_end - my_end : 0;
    capacity_ -= next->second.capacity();
    next = extents_.erase(next);
  }
  capacity_ += s.capacity();
}

void BlockPatch::Truncate(uint64_t len) {
  base_len_ = std::min(base_len_, len);
  length_ = std::min(length_, len);
  for (auto it = extents_.lower_bound(len); it != extents_.end();) {
    bytes_ -= it->second.size();
    capacity_ -= it->second.capacity();
    it = extents_.erase(it);
  }
  if (extents_.empty()) return;
  auto last = std::prev(extents_.end());
  const uint64_t last_end = last->first + last->second.size();
  if (last_end > len) {
    bytes_ -= last_end - len;
    last->second.resize(len - last->first);
  }
}

meta::v1::Block BlockPatch::ClippedBase() const {
  meta::v1::Block b = base_;
  b.set_length(static_cast<uint32_t>(base_len_));
  return b;
}

bool BlockPatch::CoversBase() const {
  if (base_len_ == 0) return true;
  if (extents_.empty()) return false;
  const auto& [start, s] = *extents_.begin();
  return start == 0 && s.size() >= base_len_;
}

template <typename Fn>
void BlockPatch::ForEachPiece(uint64_t boff, uint64_t n, Fn fn) const {
  const uint64_t end = boff + n;
  auto it = extents_.upper_bound(boff);
  if (it != extents_.begin()) --it;
  for (; it != extents_.end() && it->first < end; ++it) {
    const uint64_t from = std::max(boff, it->first);
    const uint64_t to = std::min(end, it->first + it->second.size());
    if (from < to) fn(from - boff, std::string_view(it->second).substr(from - it->first, to - from));
  }
}

void BlockPatch::Overlay(uint64_t boff, uint64_t n, char* dst) const {
  ForEachPiece(boff, n, [dst](uint64_t at, std::string_view bytes) {
    std::memcpy(dst + at, bytes.data(), bytes.size());
  });
}

std::vector<std::pair<uint64_t, std::string>> BlockPatch::Pieces(uint64_t boff, uint64_t n) const {
  std::vector<std::pair<uint64_t, std::string>> out;
  ForEachPiece(boff, n, [&out](uint64_t at, std::string_view bytes) {
    out.emplace_back(at, std::string(bytes));
  });
  return out;
}

void BlockPatch::Build(std::string_view base_data, std::string* buf) const {
  buf->clear();
  if (!CoversBase()) buf->assign(base_data.substr(0, std::min<uint64_t>(base_len_, base_data.size())));
  buf->resize(length(), '\0');
  Overlay(0, buf->size(), buf->data());
}

}  // namespace nighfs::fs
