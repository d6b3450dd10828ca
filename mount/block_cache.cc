#include "mount/block_cache.h"

#include <algorithm>
#include <cstring>

#include "absl/base/internal/endian.h"
#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/logging.h"

namespace nighfs::fs {

uint32_t RangeCount(const meta::v1::Block& ref) {
  const uint64_t rs = ref.range_size();
  if (rs == 0 || ref.range_crc32c().empty()) return 0;
  const uint64_t n = (uint64_t{ref.object_size()} + rs - 1) / rs;
  return ref.range_crc32c().size() == 4 * n ? static_cast<uint32_t>(n) : 0;
}

uint32_t RangeCrc(const meta::v1::Block& ref, uint32_t i) {
  return absl::little_endian::Load32(ref.range_crc32c().data() + 4 * size_t{i});
}

std::string RangeChecksums(std::string_view data, uint32_t range_size) {
  std::string out;
  if (range_size == 0) return out;
  out.reserve(4 * ((data.size() + range_size - 1) / range_size));
  for (size_t pos = 0; pos < data.size(); pos += range_size) {
    char le[4];
    absl::little_endian::Store32(le, Crc32c(data.substr(pos, range_size)));
    out.append(le, 4);
  }
  return out;
}

absl::Status CheckInline(const meta::v1::Block& ref) {
  const std::string& data = ref.inline_data();
  if (data.size() == ref.object_size() && Crc32c(data) == ref.crc32c()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("inline block ", ref.index(),
                                          " failed verification: size ", data.size(), " (want ",
                                          ref.object_size(), "), crc32c ", Crc32c(data),
                                          " (want ", ref.crc32c(), ")"));
}

BlockCache::BlockCache(blockstore::BlockStore* store, size_t capacity_bytes, ThreadPool* pool,
                       HolderStoreLookup holder_store)
    : store_(store),
      holder_store_(std::move(holder_store)),
      capacity_(capacity_bytes),
      pool_(pool) {}

BlockCache::~BlockCache() = default;

size_t BlockCache::prefetch_bytes() const {
  absl::MutexLock l(&mu_);
  return prefetch_bytes_;
}

size_t BlockCache::bytes() const {
  absl::MutexLock l(&mu_);
  return bytes_;
}

size_t BlockCache::protected_bytes() const {
  absl::MutexLock l(&mu_);
  return protected_bytes_;
}

bool BlockCache::ContainsForTest(uint64_t id) const {
  absl::MutexLock l(&mu_);
  return index_.contains(Key{id, kWhole});
}

bool BlockCache::ContainsRangeForTest(uint64_t id, uint32_t range) const {
  absl::MutexLock l(&mu_);
  return index_.contains(Key{id, range});
}

BlockData BlockCache::LookupLocked(Key key, ReadHint hint) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  List::iterator e = it->second;
  if (e->prot) {
    protected_.splice(protected_.begin(), protected_, e);
  } else if (hint.reader != 0 &&
             (!hint.sequential || (e->last_reader != 0 && e->last_reader != hint.reader))) {
    // Used again, and not merely the next bytes of the stream that brought it in: worth
    // keeping. (A write's base image, reader 0, does not count as a use.)
    e->prot = true;
    protected_bytes_ += e->data->size();
    protected_.splice(protected_.begin(), probation_, e);
    // The protected segment holds at most 3/4 of the cache: its oldest go back on probation.
    while (protected_bytes_ > capacity_ / 4 * 3 && protected_.size() > 1) {
      List::iterator old = std::prev(protected_.end());
      old->prot = false;
      protected_bytes_ -= old->data->size();
      probation_.splice(probation_.begin(), protected_, old);
    }
  } else {
    probation_.splice(probation_.begin(), probation_, e);
  }
  if (hint.reader != 0) e->last_reader = hint.reader;
  return e->data;
}

void BlockCache::EraseLocked(absl::flat_hash_map<Key, List::iterator>::iterator it) {
  List::iterator e = it->second;
  bytes_ -= e->data->size();
  if (e->prot) {
    protected_bytes_ -= e->data->size();
    protected_.erase(e);
  } else {
    probation_.erase(e);
  }
  if (it->first.range != kWhole) {
    auto c = ranges_cached_.find(it->first.id);
    if (--c->second == 0) ranges_cached_.erase(c);
  }
  index_.erase(it);
}

void BlockCache::InsertLocked(Key key, BlockData data, uint64_t reader, uint32_t ranges) {
  if (capacity_ == 0 || data == nullptr || data->size() > capacity_) return;
  if (index_.contains(key)) return;
  if (key.range == kWhole) {
    // The whole block makes its cached ranges redundant: drop them rather than count the
    // bytes twice.
    for (uint32_t r = 0; r < ranges && ranges_cached_.contains(key.id); ++r) {
      if (auto it = index_.find(Key{key.id, r}); it != index_.end()) EraseLocked(it);
    }
  } else {
    ++ranges_cached_[key.id];
  }
  bytes_ += data->size();
  probation_.push_front(Entry{key, std::move(data), false, reader});
  index_[key] = probation_.begin();
  while (bytes_ > capacity_) {
    List& from = probation_.empty() ? protected_ : probation_;
    EraseLocked(index_.find(std::prev(from.end())->key));
  }
}

void BlockCache::Insert(uint64_t id, BlockData data) {
  absl::MutexLock l(&mu_);
  InsertLocked(Key{id, kWhole}, std::move(data), 0, 0);
}

absl::StatusOr<BlockData> BlockCache::FetchVerified(const meta::v1::Block& ref) {
  const std::string key = blockstore::BlockKey(ref.id());
  absl::Status last;
  // A mismatch may be a torn read on the way; fetch again before calling the block bad.
  for (int attempt = 0; attempt < 3; ++attempt) {
    stats_.block_fetches.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<std::string> got = FetchObject(ref, key);
    if (!got.ok()) return got.status();
    stats_.block_bytes.fetch_add(got->size(), std::memory_order_relaxed);
    if (got->size() == ref.object_size() && Crc32c(*got) == ref.crc32c()) {
      return std::make_shared<const std::string>(std::move(*got));
    }
    stats_.checksum_mismatches.fetch_add(1);
    last = absl::DataLossError(absl::StrCat("block ", ref.id(), " failed verification: size ",
                                            got->size(), " (want ", ref.object_size(), "), crc32c ",
                                            Crc32c(*got), " (want ", ref.crc32c(), ")"));
    NIGHFS_LOG(ERROR) << last.message();
  }
  return last;
}

absl::StatusOr<std::vector<BlockData>> BlockCache::FetchRangesVerified(const meta::v1::Block& ref,
                                                                       uint32_t first,
                                                                       uint32_t last) {
  const std::string key = blockstore::BlockKey(ref.id());
  const uint64_t rs = ref.range_size();
  const uint64_t start = first * rs;
  const uint64_t end = std::min<uint64_t>((uint64_t{last} + 1) * rs, ref.object_size());
  absl::Status failure;
  // As for whole blocks: a mismatch is fetched again before the block is called bad.
  for (int attempt = 0; attempt < 3; ++attempt) {
    stats_.range_fetches.fetch_add(1, std::memory_order_relaxed);
    absl::StatusOr<std::string> got = FetchObject(ref, key, start, end - start);
    if (!got.ok()) return got.status();
    stats_.range_bytes.fetch_add(got->size(), std::memory_order_relaxed);
    std::vector<BlockData> out;
    if (got->size() != end - start) {
      failure = absl::DataLossError(absl::StrCat("block ", ref.id(), " bytes ", start, "..", end,
                                                 " failed verification: got ", got->size(),
                                                 " bytes"));
    } else {
      for (uint32_t r = first; r <= last; ++r) {
        const std::string_view bytes = std::string_view(*got).substr(r * rs - start, rs);
        const uint32_t crc = Crc32c(bytes);
        if (crc != RangeCrc(ref, r)) {
          failure = absl::DataLossError(
              absl::StrCat("block ", ref.id(), " range ", r, " (bytes ", r * rs, "..",
                           r * rs + bytes.size(), ") failed verification: crc32c ", crc,
                           " (want ", RangeCrc(ref, r), ")"));
          break;
        }
        out.push_back(std::make_shared<const std::string>(bytes));
      }
      if (out.size() == last - first + 1) return out;
    }
    stats_.checksum_mismatches.fetch_add(1);
    NIGHFS_LOG(ERROR) << failure.message();
  }
  return failure;
}

absl::StatusOr<std::string> BlockCache::FetchObject(const meta::v1::Block& ref,
                                                    const std::string& key, uint64_t offset,
                                                    uint64_t length) {
  absl::StatusOr<std::string> got = store_->Get(key, offset, length);
  if (got.ok() || got.status().code() != absl::StatusCode::kNotFound) return got;
  const std::string missing =
      absl::StrCat("block ", ref.id(), " (", key, ") is missing from the block store");
  if (ref.holder().empty()) return absl::DataLossError(missing);
  // Acknowledged by a proxy that has not flushed it yet (or flushed it since: then the proxy
  // reads it through from the store, or still has it cached).
  if (!holder_store_) {
    return absl::DataLossError(absl::StrCat(missing, ", and this mount cannot ask its holder, ",
                                            "proxy ", ref.holder()));
  }
  absl::StatusOr<blockstore::BlockStore*> holder = holder_store_(ref.holder());
  if (!holder.ok()) {
    return absl::Status(holder.status().code(),
                        absl::StrCat(missing, "; its holder, proxy ", ref.holder(),
                                     ", cannot be asked: ", holder.status().message()));
  }
  stats_.holder_fetches.fetch_add(1, std::memory_order_relaxed);
  got = (*holder)->Get(key, offset, length);
  if (got.ok()) return got;
  if (got.status().code() == absl::StatusCode::kNotFound) {
    return absl::DataLossError(
        absl::StrCat(missing, " and from its holder, proxy ", ref.holder()));
  }
  return absl::Status(got.status().code(),
                      absl::StrCat(missing, "; its holder, proxy ", ref.holder(),
                                   ", failed: ", got.status().message()));
}

std::shared_ptr<BlockCache::Fetch> BlockCache::StartFetch(const meta::v1::Block& ref,
                                                           bool* owner) {
  auto it = fetching_.find(ref.id());
  if (it != fetching_.end()) {
    *owner = false;
    return it->second;
  }
  auto f = std::make_shared<Fetch>();
  fetching_[ref.id()] = f;
  *owner = true;
  return f;
}

void BlockCache::RunFetch(const meta::v1::Block& ref, const std::shared_ptr<Fetch>& fetch,
                          uint64_t reader) {
  fetch->result = FetchVerified(ref);
  {
    absl::MutexLock l(&mu_);
    if (fetch->result.ok()) {
      InsertLocked(Key{ref.id(), kWhole}, *fetch->result, reader, RangeCount(ref));
    }
    fetching_.erase(ref.id());
  }
  fetch->done.Notify();
}

absl::StatusOr<BlockData> BlockCache::Get(const meta::v1::Block& ref, ReadHint hint) {
  if (IsInline(ref)) {
    if (absl::Status s = CheckInline(ref); !s.ok()) {
      stats_.checksum_mismatches.fetch_add(1);
      return s;
    }
    return std::make_shared<const std::string>(ref.inline_data());
  }
  std::shared_ptr<Fetch> fetch;
  bool owner = false;
  {
    absl::MutexLock l(&mu_);
    if (BlockData d = LookupLocked(Key{ref.id(), kWhole}, hint)) {
      stats_.hits.fetch_add(1, std::memory_order_relaxed);
      return d;
    }
    stats_.misses.fetch_add(1, std::memory_order_relaxed);
    fetch = StartFetch(ref, &owner);
  }
  if (owner) RunFetch(ref, fetch, hint.reader);
  fetch->done.WaitForNotification();
  return fetch->result;
}

absl::Status BlockCache::Read(const meta::v1::Block& ref, uint64_t offset, size_t n, char* dst,
                              ReadHint hint) {
  const uint64_t valid = std::min(ref.length(), ref.object_size());
  if (offset >= valid || n == 0) return absl::OkStatus();  // past the stored bytes: zeros
  n = static_cast<size_t>(std::min<uint64_t>(n, valid - offset));
  if (IsInline(ref)) {
    if (absl::Status s = CheckInline(ref); !s.ok()) {
      stats_.checksum_mismatches.fetch_add(1);
      return s;
    }
    std::memcpy(dst, ref.inline_data().data() + offset, n);
    return absl::OkStatus();
  }
  const uint32_t ranges = RangeCount(ref);
  const uint64_t rs = ref.range_size();
  // Ranges only for a random read of a small part of a block: a sequential reader (and
  // readahead) wants the rest of the block soon, so one whole-block GET serves it better.
  bool ranged = false;
  uint32_t first = 0, last = 0;
  if (ranges > 0 && !hint.sequential) {
    first = static_cast<uint32_t>(offset / rs);
    last = static_cast<uint32_t>((offset + n - 1) / rs);
    ranged = (uint64_t{last} - first + 1) * rs <= ref.object_size() / 2;
  }
  std::vector<BlockData> have;
  bool fetch_whole = false;  // a miss in a densely read block (WorthWholeBlockLocked)
  {
    absl::MutexLock l(&mu_);
    if (BlockData d = LookupLocked(Key{ref.id(), kWhole}, hint)) {
      stats_.hits.fetch_add(1, std::memory_order_relaxed);
      std::memcpy(dst, d->data() + offset, n);
      return absl::OkStatus();
    }
    // The whole block is on its way (readahead): wait for it rather than fetch part again.
    if (fetching_.contains(ref.id())) ranged = false;
    if (ranged) {
      bool all = true;
      for (uint32_t r = first; r <= last; ++r) {
        have.push_back(LookupLocked(Key{ref.id(), r}, hint));
        all = all && have.back() != nullptr;
      }
      (all ? stats_.hits : stats_.misses).fetch_add(1, std::memory_order_relaxed);
      fetch_whole = !all && WorthWholeBlockLocked(ref, hint);
    }
  }
  if (!ranged) {
    absl::StatusOr<BlockData> d = Get(ref, hint);
    if (!d.ok()) return d.status();
    std::memcpy(dst, (*d)->data() + offset, n);
    return absl::OkStatus();
  }
  // One GET from the first to the last missing range (the cached ones between come along).
  uint32_t lo = last + 1, hi = first;
  for (uint32_t r = first; r <= last; ++r) {
    if (have[r - first] != nullptr) continue;
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  if (fetch_whole) Prefetch(ref, hint.reader);
  if (lo <= hi) {
    absl::StatusOr<std::vector<BlockData>> got = FetchRangesVerified(ref, lo, hi);
    if (!got.ok()) return got.status();
    absl::MutexLock l(&mu_);
    // The whole block may have arrived meanwhile (a dense reader's fetch): no range copies.
    const bool whole = index_.contains(Key{ref.id(), kWhole});
    for (uint32_t r = lo; r <= hi; ++r) {
      BlockData& d = (*got)[r - lo];
      if (have[r - first] == nullptr) {
        have[r - first] = d;
        if (!whole) InsertLocked(Key{ref.id(), r}, std::move(d), hint.reader, 0);
      }
    }
  }
  for (uint32_t r = first; r <= last; ++r) {
    const uint64_t rstart = uint64_t{r} * rs;
    const uint64_t from = std::max<uint64_t>(offset, rstart);
    const uint64_t to = std::min<uint64_t>(offset + n, rstart + have[r - first]->size());
    if (to > from) std::memcpy(dst + (from - offset), have[r - first]->data() + (from - rstart), to - from);
  }
  return absl::OkStatus();
}

bool BlockCache::WorthWholeBlockLocked(const meta::v1::Block& ref, const ReadHint& hint) {
  if (hint.file_bytes == 0 || hint.file_bytes > capacity_ / 2) return false;
  auto it = ranges_cached_.find(ref.id());
  const uint32_t cached = it == ranges_cached_.end() ? 0 : it->second;
  return cached >= std::max<uint32_t>(kDenseRanges, RangeCount(ref) / 16) &&
         bytes_ + prefetch_bytes_ + ref.length() <= capacity_;
}

void BlockCache::Prefetch(const meta::v1::Block& ref, uint64_t reader) {
  if (IsInline(ref)) return;  // nothing to fetch
  std::shared_ptr<Fetch> fetch;
  bool owner = false;
  {
    absl::MutexLock l(&mu_);
    if (index_.contains(Key{ref.id(), kWhole})) return;
    // Readahead is optional: with the pool behind (uploads, other prefetches) or as many
    // blocks already being fetched as there are I/O threads, skip it rather than queue
    // more buffers than the cache can hold.
    if (fetching_.size() >= pool_->threads() || pool_->backlog() >= pool_->threads()) return;
    fetch = StartFetch(ref, &owner);
    if (owner) prefetch_bytes_ += ref.length();
  }
  if (!owner) return;
  pool_->Submit([this, ref, fetch, reader] {
    RunFetch(ref, fetch, reader);
    absl::MutexLock l(&mu_);
    prefetch_bytes_ -= ref.length();
  });
}

}  // namespace nighfs::fs
