// An in-memory cache of blocks keyed by block id. Because blocks are immutable, a cached block
// is never stale: the metadata server alone decides which id is current. Every byte fetched
// from the store is checked before it is cached or returned: a whole block against its recorded
// size and CRC32C, a range of a block against the CRC32C of each of its checksum ranges
// (Block.range_crc32c). A mismatch is fetched again and otherwise reported as DataLoss (EIO),
// never returned as data. A block the store does not have (NotFound) whose ref names a holder
// (a proxy that acknowledged it and may not have flushed it yet) is fetched from that proxy,
// and verified the same way.
//
// A block kept inline in the block map (Block.inline_data, id 0) is served from its ref,
// checked against its size and CRC32C the same way, and never cached or asked of a store.
//
// Small random reads fetch only the checksum ranges they cover and cache them as entries of
// their own; sequential readers and blocks without range checksums fetch whole blocks. A
// random read that misses a block of which a sixteenth of the ranges (at least
// kDenseRanges) is cached already also starts a background fetch of the whole block, when
// the file fits in half the cache and the cache has room for the block without evicting: a
// file read densely at random (a database, an index) is then cached whole after a few misses
// per block instead of one miss per range. A file larger than that keeps costing one range
// per miss: whole blocks of it would evict each other, each fetched for a few ranges' use.
//
// Eviction is scan-resistant (a segmented LRU): a new entry starts on probation; a later
// access that is not the same sequential stream reading on (another reader, or a random read)
// moves it to the protected segment, which holds at most 3/4 of the capacity. Eviction takes
// the probation tail first, so one large sequential read cycles through probation and leaves
// the protected working set alone.
#ifndef NIGHFS_MOUNT_BLOCK_CACHE_H_
#define NIGHFS_MOUNT_BLOCK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  std::atomic<uint64_t> range_fetches{0};   // ranged GETs (part of a block)
  std::atomic<uint64_t> range_bytes{0};     // bytes those fetched
  std::atomic<uint64_t> block_fetches{0};   // whole-block GETs
  std::atomic<uint64_t> block_bytes{0};     // bytes those fetched
};

// Who reads, for the eviction policy.
struct ReadHint {
  uint64_t reader = 0;      // the handle reading; 0 = not a reader (a write's base image)
  bool sequential = false;  // continues this reader's previous read
  uint64_t file_bytes = 0;  // the size of the file read (0: unknown)
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
  absl::StatusOr<BlockData> Get(const meta::v1::Block& ref, ReadHint hint = {});
  // Copies the valid bytes (below ref.length()) of [offset, offset + n) of `ref`'s object to
  // `dst`, leaving the rest of `dst` as it is (bytes past the valid length read as zeros).
  // A random read of a block with range checksums fetches only the ranges it covers.
  absl::Status Read(const meta::v1::Block& ref, uint64_t offset, size_t n, char* dst,
                    ReadHint hint);
  // Starts fetching `ref` in the background unless it is cached or already being fetched.
  void Prefetch(const meta::v1::Block& ref, uint64_t reader = 0);
  // Adds a block this mount just wrote (so reading it back costs no fetch).
  void Insert(uint64_t id, BlockData data);

  size_t bytes() const;
  // Bytes of the protected segment (part of bytes()).
  size_t protected_bytes() const;
  // Bytes of readahead being fetched (not yet in the cache).
  size_t prefetch_bytes() const;
  const BlockCacheStats& stats() const { return stats_; }
  // Whether the whole block `id` / checksum range `range` of it is cached (no policy effect).
  bool ContainsForTest(uint64_t id) const;
  bool ContainsRangeForTest(uint64_t id, uint32_t range) const;

 private:
  static constexpr uint32_t kWhole = ~uint32_t{0};
  static constexpr uint32_t kDenseRanges = 4;
  // Whether a random miss of `ref` should also fetch it whole (see the policy above).
  bool WorthWholeBlockLocked(const meta::v1::Block& ref, const ReadHint& hint)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Key {
    uint64_t id;
    uint32_t range;  // kWhole, or the index of a checksum range
    bool operator==(const Key& o) const { return id == o.id && range == o.range; }
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.id, k.range);
    }
  };
  struct Entry {
    Key key;
    BlockData data;
    bool prot = false;         // in protected_, else in probation_
    uint64_t last_reader = 0;  // ReadHint::reader of the last access (0: written here)
  };
  using List = std::list<Entry>;
  struct Fetch {
    absl::Notification done;
    absl::StatusOr<BlockData> result;
  };

  absl::StatusOr<BlockData> FetchVerified(const meta::v1::Block& ref);
  // Ranges [first, last] of `ref`, fetched in one GET and each verified; one buffer a range.
  absl::StatusOr<std::vector<BlockData>> FetchRangesVerified(const meta::v1::Block& ref,
                                                             uint32_t first, uint32_t last);
  // Bytes [offset, offset + length) of the object of `ref` from the store, else from its
  // holder; DataLoss if neither has it.
  absl::StatusOr<std::string> FetchObject(const meta::v1::Block& ref, const std::string& key,
                                          uint64_t offset = 0,
                                          uint64_t length = blockstore::kToEnd);
  // A whole block (key.range kWhole) replaces the cached ones of its `ranges` ranges.
  void InsertLocked(Key key, BlockData data, uint64_t reader, uint32_t ranges)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry of `key`, with the access recorded (see the policy above); nullptr if absent.
  BlockData LookupLocked(Key key, ReadHint hint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(absl::flat_hash_map<Key, List::iterator>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers (or joins) the in-flight fetch of `ref`; the caller holds mu_.
  std::shared_ptr<Fetch> StartFetch(const meta::v1::Block& ref, bool* owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunFetch(const meta::v1::Block& ref, const std::shared_ptr<Fetch>& fetch,
                uint64_t reader);

  blockstore::BlockStore* const store_;
  const HolderStoreLookup holder_store_;
  const size_t capacity_;
  ThreadPool* const pool_;
  mutable absl::Mutex mu_;
  // Front = most recent. An entry moves between the lists by splice, so index_ stays valid.
  List probation_ ABSL_GUARDED_BY(mu_);
  List protected_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, List::iterator> index_ ABSL_GUARDED_BY(mu_);
  // Block id -> how many of its ranges are cached (ids with none are absent).
  absl::flat_hash_map<uint64_t, uint32_t> ranges_cached_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t protected_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Fetch>> fetching_ ABSL_GUARDED_BY(mu_);
  size_t prefetch_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  BlockCacheStats stats_;
};

// Whether `ref` is an inline block (its bytes in Block.inline_data, no object).
inline bool IsInline(const meta::v1::Block& ref) { return ref.id() == 0; }
// OK when the inline bytes of `ref` have its object size and CRC32C, else DataLoss.
absl::Status CheckInline(const meta::v1::Block& ref);

// Block.range_crc32c helpers: the number of checksum ranges of `ref` (0 when it has none, or
// an inconsistent set, which is then read whole), and the CRC of range `i`.
uint32_t RangeCount(const meta::v1::Block& ref);
uint32_t RangeCrc(const meta::v1::Block& ref, uint32_t i);
// The checksums of each `range_size` bytes of `data`, packed as Block.range_crc32c wants.
std::string RangeChecksums(std::string_view data, uint32_t range_size);

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_BLOCK_CACHE_H_
