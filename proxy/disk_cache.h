// The proxy's cache folder: block files DIR/<volume_id>/<key> (written as a temp file and
// renamed), a SQLite journal row per file (proxy/journal.h), a quota with least-recently-used
// eviction of clean blocks, and a CRC32C check on every read from disk. Dirty blocks (PUT
// acknowledged, not yet in the store) are never evicted; when they would pass the quota, a PUT
// is refused (ResourceExhausted) and nothing of it stays.
#ifndef NIGHFS_PROXY_DISK_CACHE_H_
#define NIGHFS_PROXY_DISK_CACHE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proxy/journal.h"
#include "proxy/metrics.h"

namespace nighfs::proxy {

struct DiskCacheOptions {
  std::string folder;            // the cache folder (--disk-folder); created if missing
  std::string journal_path;      // the SQLite journal (--db-folder/proxy.db)
  uint64_t quota_bytes = 0;      // bytes of blocks held at most (dirty and clean); > 0
  bool sync = false;             // fsync each block file, its folder and each journal commit
  ProxyMetrics* metrics = nullptr;  // required; must outlive the cache
};

// What start-up found when it compared the folder with the journal.
struct ReconcileReport {
  uint64_t blocks = 0;          // rows kept
  uint64_t dirty_blocks = 0;    // of which not yet flushed (the writeback picks them up)
  uint64_t lost_blocks = 0;     // dirty rows whose file was missing or of the wrong size
  uint64_t dropped_rows = 0;    // clean rows whose file was missing or of the wrong size
  uint64_t orphan_files = 0;    // files without a row (an interrupted PUT), deleted
};

struct BlockInfo {
  uint64_t size = 0;
  uint32_t crc32c = 0;
  bool dirty = false;
  int64_t acked_ns = 0;
};

// Parses --disk-quota: a size ("600G", "1T", tools/size.h) or a percentage ("90%") of the file
// system that holds `folder`.
absl::StatusOr<uint64_t> ResolveQuota(std::string_view text, const std::string& folder);

// All methods are thread-safe. Writes of one key are serialized; different keys proceed in
// parallel (only the index and the journal are shared).
class DiskCache {
 public:
  // Opens (creating) the folder and the journal and reconciles them: temp files and files
  // without a row are deleted; rows whose file is missing or of the wrong size are dropped
  // (dirty ones are logged as LOST and counted in metrics->lost_blocks).
  static absl::StatusOr<std::unique_ptr<DiskCache>> Open(const DiskCacheOptions& options,
                                                         ReconcileReport* report = nullptr);
  ~DiskCache();
  DiskCache(const DiskCache&) = delete;
  DiskCache& operator=(const DiskCache&) = delete;

  // Stores a block the store does not have yet (a PUT in writeback mode); the journal row is
  // committed (dirty) before this returns. When the key is cached already with the same bytes:
  // OK and *existed = true (nothing changes). AlreadyExists when it holds different bytes
  // (blocks are immutable). ResourceExhausted when dirty bytes would pass the quota, or the
  // disk is full; nothing is left behind then.
  absl::Status PutDirty(uint64_t volume_id, std::string_view key, std::string_view data,
                        uint32_t crc32c, bool* existed = nullptr);
  // Caches a block the store has (read-through, write-through). Evicts least-recently-used
  // clean blocks to make room; ResourceExhausted when it cannot (the caller serves uncached).
  // OK without change when the key is cached already.
  absl::Status PutClean(uint64_t volume_id, std::string_view key, std::string_view data,
                        uint32_t crc32c);
  // The whole block, its CRC32C verified. NotFound when not cached. DataLoss when the copy on
  // disk is corrupt or gone: it has been dropped and counted already (a dirty one as LOST), so
  // the caller can fetch it again from the store.
  absl::StatusOr<std::string> Read(uint64_t volume_id, std::string_view key);
  // The journal's facts about a cached block, without reading it; nullopt when not cached.
  std::optional<BlockInfo> Lookup(uint64_t volume_id, std::string_view key);
  // The block is in its store now: it becomes evictable.
  absl::Status MarkClean(uint64_t volume_id, std::string_view key);
  // Forgets the block (row first, then file). OK when it was not cached.
  absl::Status Remove(uint64_t volume_id, std::string_view key);
  // Every dirty block, oldest acknowledgement first (the writeback's work after a restart).
  std::vector<JournalRow> DirtyBlocks();

  MetricsGauges Gauges();
  // OK, or why the cache cannot take writes: folder not writable, journal unusable, dirty
  // bytes at the quota.
  absl::Status Health();
  Journal& journal();
  const std::string& folder() const;

 private:
  class Impl;
  explicit DiskCache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_DISK_CACHE_H_
