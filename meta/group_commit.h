// Group commit for the metadata server's one writer connection, after LevelDB's writer queue:
// writes that arrive while another batch is being committed queue up; the first of them then
// runs every queued write in one transaction (each in its own savepoint, so one write's failure
// undoes only its own work) and commits them together, so a burst of concurrent writes pays one
// WAL sync (synchronous=FULL) instead of one each. A write returns only after the commit that
// holds it: no reply is sent for work that is not on disk.
#ifndef NIGHFS_META_GROUP_COMMIT_H_
#define NIGHFS_META_GROUP_COMMIT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "meta/principal.h"
#include "meta/sql.h"
#include "meta/wal_sync.h"

namespace nighfs::meta::internal {

class GroupCommit {
 public:
  // At most this many writes share one transaction, so a writer that leads a batch does not
  // wait for an unbounded amount of others' work.
  static constexpr size_t kMaxBatch = 64;

  // `on_lost` (may be empty) runs on the writer, before the next batch starts, whenever a
  // batch's writes are lost (the transaction was aborted or did not commit): state kept
  // outside the database about what those writes did must be dropped then.
  //
  // `wal_sync` (may be null; must outlive this) is set when the writer runs
  // synchronous=NORMAL (nighfs-meta --namespace-sync=batched): each commit is then noted
  // there, and a batch holding a durable write is synced before any of its writers returns.
  // Null: the writer runs synchronous=FULL and every commit is durable when it returns.
  explicit GroupCommit(std::unique_ptr<sql::Connection> writer,
                       std::function<void()> on_lost = {}, WalSync* wal_sync = nullptr)
      : writer_(std::move(writer)), on_lost_(std::move(on_lost)), wal_sync_(wal_sync) {}
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Runs `op` on the writer connection inside a write transaction that other writes may share.
  // `op` returns true to keep what it wrote, false to have it undone. `op` may run on another
  // caller's thread (the one leading the batch), under this caller's principal
  // (meta/principal.h); the caller blocks until it has run and its batch is committed.
  // Returns OK when `op` returned false (its writes are undone whatever happens to the batch)
  // or when what it kept is committed; otherwise why not: the transaction could not begin or
  // commit, or the database aborted it (then nothing of `op` is written, and `op` may not have
  // run at all).
  // `durable`: with a WalSync, what `op` kept is on disk when Run returns OK (otherwise it
  // is within WalSync's interval); without one, always.
  absl::Status Run(absl::FunctionRef<bool(sql::Connection*)> op, bool durable = true)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Test seams: COMMITs issued (each one WAL sync when it changed something), and writes
  // waiting for their batch to start.
  uint64_t commits() const { return commits_.load(std::memory_order_relaxed); }
  size_t queued() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Writer {
    absl::FunctionRef<bool(sql::Connection*)> op;
    const Principal* principal;
    bool durable;
    absl::CondVar cv;
    bool done = false;  // set by the leader of its batch
    absl::Status status;
    bool ran = false;
    bool kept = false;
  };

  // Runs `batch` in one transaction and sets each writer's status (not `done`).
  void CommitBatch(Writer* const* batch, size_t n) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  // Front: the writer leading the batch being committed, or about to lead the next one.
  std::deque<Writer*> queue_ ABSL_GUARDED_BY(mu_);

  // Used by one batch leader at a time; the mutex is never contended (leaders take turns
  // through queue_), it documents and checks the ownership.
  absl::Mutex writer_mu_;
  std::unique_ptr<sql::Connection> writer_ ABSL_PT_GUARDED_BY(writer_mu_);
  const std::function<void()> on_lost_;
  WalSync* const wal_sync_;
  std::atomic<uint64_t> commits_{0};
};

}  // namespace nighfs::meta::internal

#endif  // NIGHFS_META_GROUP_COMMIT_H_
