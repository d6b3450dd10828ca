// The proxy's journal: one SQLite database (DIR/proxy.db) with a row per cached block and a row
// per volume the proxy has served. A PUT's row is committed before the PUT is acknowledged, so
// after a crash (kill -9, or with sync also a power loss) every acknowledged block is found.
#ifndef NIGHFS_PROXY_JOURNAL_H_
#define NIGHFS_PROXY_JOURNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct sqlite3;

namespace nighfs::proxy {

struct JournalRow {
  uint64_t volume_id = 0;
  std::string key;
  uint64_t size = 0;
  uint32_t crc32c = 0;
  bool dirty = false;
  int64_t acked_ns = 0;        // when the PUT was acknowledged (dirty rows) or cached
  int64_t last_access_ns = 0;  // for least-recently-used eviction after a restart
};

// What the writeback needs to find a volume's store after a restart (no secrets: store URLs
// carry none).
struct VolumeRow {
  uint64_t id = 0;
  std::string name;
  std::string store_url;
};

// Thread-safe (one connection behind a mutex; each call is one transaction).
class Journal {
 public:
  // Opens or creates `path`. `sync`: every commit is fsynced (synchronous=FULL); otherwise a
  // commit survives the process dying but not the machine losing power (WAL, NORMAL).
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path, bool sync);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  absl::Status Insert(const JournalRow& row);  // replaces a row of the same (volume_id, key)
  absl::Status SetClean(uint64_t volume_id, const std::string& key);
  absl::Status Remove(uint64_t volume_id, const std::string& key);
  absl::Status Touch(uint64_t volume_id, const std::string& key, int64_t last_access_ns);
  absl::StatusOr<std::vector<JournalRow>> LoadBlocks();

  absl::Status PutVolume(const VolumeRow& volume);
  absl::StatusOr<std::vector<VolumeRow>> LoadVolumes();

  // A cheap read and write proving the database is usable (for /healthz).
  absl::Status Check();

 private:
  explicit Journal(sqlite3* db) : db_(db) {}
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_JOURNAL_H_
