#include "mount/block_cache.h"

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/logging.h"

namespace nighfs::fs {

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

BlockData BlockCache::LookupLocked(uint64_t id) {
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void BlockCache::InsertLocked(uint64_t id, BlockData data) {
  if (capacity_ == 0 || data == nullptr || data->size() > capacity_) return;
  if (index_.contains(id)) return;
  bytes_ += data->size();
  lru_.emplace_front(id, std::move(data));
  index_[id] = lru_.begin();
  while (bytes_ > capacity_ && !lru_.empty()) {
    auto& victim = lru_.back();
    bytes_ -= victim.second->size();
    index_.erase(victim.first);
    lru_.pop_back();
  }
}

void BlockCache::Insert(uint64_t id, BlockData data) {
  absl::MutexLock l(&mu_);
  InsertLocked(id, std::move(data));
}

absl::StatusOr<BlockData> BlockCache::FetchVerified(const meta::v1::Block& ref) {
  const std::string key = blockstore::BlockKey(ref.id());
  absl::Status last;
  // A mismatch may be a torn read on the way; fetch again before calling the block bad.
  for (int attempt = 0; attempt < 3; ++attempt) {
    absl::StatusOr<std::string> got = FetchObject(ref, key);
    if (!got.ok()) return got.status();
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

absl::StatusOr<std::string> BlockCache::FetchObject(const meta::v1::Block& ref,
                                                    const std::string& key) {
  absl::StatusOr<std::string> got = store_->Get(key);
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
  got = (*holder)->Get(key);
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

void BlockCache::RunFetch(const meta::v1::Block& ref, const std::shared_ptr<Fetch>& fetch) {
  fetch->result = FetchVerified(ref);
  {
    absl::MutexLock l(&mu_);
    if (fetch->result.ok()) InsertLocked(ref.id(), *fetch->result);
    fetching_.erase(ref.id());
  }
  fetch->done.Notify();
}

absl::StatusOr<BlockData> BlockCache::Get(const meta::v1::Block& ref) {
  std::shared_ptr<Fetch> fetch;
  bool owner = false;
  {
    absl::MutexLock l(&mu_);
    if (BlockData d = LookupLocked(ref.id())) {
      stats_.hits.fetch_add(1, std::memory_order_relaxed);
      return d;
    }
    stats_.misses.fetch_add(1, std::memory_order_relaxed);
    fetch = StartFetch(ref, &owner);
  }
  if (owner) RunFetch(ref, fetch);
  fetch->done.WaitForNotification();
  return fetch->result;
}

void BlockCache::Prefetch(const meta::v1::Block& ref) {
  std::shared_ptr<Fetch> fetch;
  bool owner = false;
  {
    absl::MutexLock l(&mu_);
    if (index_.contains(ref.id())) return;
    // Readahead is optional: with the pool behind (uploads, other prefetches) or as many
    // blocks already being fetched as there are I/O threads, skip it rather than queue
    // more buffers than the cache can hold.
    if (fetching_.size() >= pool_->threads() || pool_->backlog() >= pool_->threads()) return;
    fetch = StartFetch(ref, &owner);
    if (owner) prefetch_bytes_ += ref.length();
  }
  if (!owner) return;
  pool_->Submit([this, ref, fetch] {
    RunFetch(ref, fetch);
    absl::MutexLock l(&mu_);
    prefetch_bytes_ -= ref.length();
  });
}

}  // namespace nighfs::fs
