// Batched durability of namespace changes (nighfs-meta --namespace-sync=batched, issue 14).
//
// By default every metadata commit syncs SQLite's write-ahead log (synchronous=FULL), so each
// create, unlink or rename costs one fdatasync before its reply. In batched mode the writer
// connection runs synchronous=NORMAL (SQLite still never corrupts the database; a crash of the
// machine may lose the last commits, a crash of the process loses nothing) and this class makes
// commits durable when they must be: at a commit that carries file data or allocates block ids,
// at a Sync call (a mount's fsync or fsyncdir), before garbage collection deletes a block, and
// at the latest `interval` after any commit, from its own thread. The WAL is one append-only
// file replayed in order, so what a crash can lose is always a suffix of the acknowledged
// changes, never one change from the middle: a file's data commit makes its creation, and every
// change before it, durable too (the contract of Redis's `appendfsync everysec`, which JuiceFS
// recommends for its metadata).
#ifndef NIGHFS_META_WAL_SYNC_H_
#define NIGHFS_META_WAL_SYNC_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nighfs::meta::internal {

class WalSync {
 public:
  // Syncs `wal_path` (the database's "-wal" file, which must exist) whenever asked, and every `interval` (> 0) while commits are unsynced.
  // `on_sync` (may be empty) runs after each fdatasync that succeeded: a test seam.
  static absl::StatusOr<std::unique_ptr<WalSync>> Open(std::string wal_path,
                                                       absl::Duration interval,
                                                       std::function<void()> on_sync = {});
  // Stops the timer thread after a last sync.
  ~WalSync();
  WalSync(const WalSync&) = delete;
  WalSync& operator=(const WalSync&) = delete;

  // The writer calls this after each COMMIT returns: that commit's frames are in the file.
  void Committed() { committed_.fetch_add(1, std::memory_order_release); }

  // Returns once every commit noted before the call is on disk (one fdatasync, shared by
  // callers that arrive while it runs; none when nothing is unsynced). After a failed
  // fdatasync the kernel may have dropped the unwritten pages and a later sync could succeed
  // without them, so every later call fails too, until nighfs-meta restarts (and replays the
  // WAL from disk): a promise of durability is never given on a guess.
  absl::Status Sync() ABSL_LOCKS_EXCLUDED(mu_);

  // Test seam: fdatasyncs done.
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }

 private:
  WalSync(std::string wal_path, int fd, absl::Duration interval, std::function<void()> on_sync);
  void TimerLoop();

  const std::string wal_path_;
  const absl::Duration interval_;
  const std::function<void()> on_sync_;
  std::atomic<uint64_t> committed_{0};
  std::atomic<uint64_t> syncs_{0};

  absl::Mutex mu_;  // one fdatasync at a time
  // The WAL file itself: SQLite truncates or rewrites it in place and deletes it only when the
  // last connection closes, and the service keeps its connections open longer than this object.
  const int fd_;
  uint64_t synced_ ABSL_GUARDED_BY(mu_) = 0;  // commits known durable
  absl::Status failed_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace nighfs::meta::internal

#endif  // NIGHFS_META_WAL_SYNC_H_
