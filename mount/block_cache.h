// An in-memory LRU cache of whole blocks keyed by block id. Because blocks are immutable, a
// cached block is never stale: the metadata server alone decides which id is current. Every
// block fetched from the store is checked against its recorded size and CRC32C before it is
// cached or returned; a mismatch is fetched again and otherwise reported as DataLoss (EIO),
// never returned as data. A block the store does not have (NotFound) whose ref names a holder
// (a proxy that acknowledged it and may not have flushed it yet) is fetched from that proxy,
// and verified the same way.
#ifndef NIGHFS_MOUNT_BLOCK_CACHE_H_
#define NIGHFS_MOUNT_BLOCK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "blockstore/block_store.h"
#include "meta.pb.h"
#include "mount/filesystem.h"
#include "mount/thread_pool.h"

namespace nighfs::fs {

using BlockData = std::shared_ptr<const std::string>;

struct BlockCacheStats {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> checksum_mismatches{0};
  std::atomic<uint64_t> holder_fetches{0};  // blocks the store lacked, asked of their holder
};

class BlockCache {
 public:
  // `store` and `pool` must outlive the cache. `holder_store` (may be unset) finds the proxy
  // holding a block the store does not have. Thread-safe.
  BlockCache(blockstore::BlockStore* store, size_t capacity_bytes, ThreadPool* pool,
             HolderStoreLookup holder_store = {});
  ~BlockCache();

  // The whole object of `ref`, from the cache or the store (one fetch however many callers
  // ask at once).
  absl::StatusOr<BlockData> Get(const meta::v1::Block& ref);
  // Starts fetching `ref` in the background unless it is cached or already being fetched.
  void Prefetch(const meta::v1::Block& ref);
  // Adds a block this mount just wrote (so reading it back costs no fetch).
  void Insert(uint64_t id, BlockData data);

  size_t bytes() const;
  // Bytes of readahead being fetched (not yet in the cache).
  size_t prefetch_bytes() const;
  const BlockCacheStats& stats() const { return stats_; }

 private:
  struct Fetch {
    absl::Notification done;
    absl::StatusOr<BlockData> result;
  };
  absl::StatusOr<BlockData> FetchVerified(const meta::v1::Block& ref);
  // The object of `ref` from the store, else from its holder; DataLoss if neither has it.
  absl::StatusOr<std::string> FetchObject(const meta::v1::Block& ref, const std::string& key);
  void InsertLocked(uint64_t id, BlockData data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  BlockData LookupLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers (or joins) the in-flight fetch of `ref`; the caller holds mu_.
  std::shared_ptr<Fetch> StartFetch(const meta::v1::Block& ref, bool* owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunFetch(const meta::v1::Block& ref, const std::shared_ptr<Fetch>& fetch);

  blockstore::BlockStore* const store_;
  const HolderStoreLookup holder_store_;
  const size_t capacity_;
  ThreadPool* const pool_;
  mutable absl::Mutex mu_;
  // LRU: front = most recent.
  std::list<std::pair<uint64_t, BlockData>> lru_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, std::list<std::pair<uint64_t, BlockData>>::iterator> index_
      ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Fetch>> fetching_ ABSL_GUARDED_BY(mu_);
  size_t prefetch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  BlockCacheStats stats_;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_BLOCK_CACHE_H_
