#include "meta/group_commit.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace nighfs::meta::internal {
namespace {

absl::Status Exec(sql::Connection* db, std::string_view statement) {
  absl::StatusOr<std::unique_ptr<sql::Statement>> st = db->Prepare(statement);
  if (!st.ok()) return st.status();
  return (*st)->Run();
}

}  // namespace

size_t GroupCommit::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

absl::Status GroupCommit::Run(absl::FunctionRef<bool(sql::Connection*)> op, bool durable) {
  Writer w{op, &CurrentPrincipal(), durable};
  mu_.Lock();
  queue_.push_back(&w);
  while (!w.done && queue_.front() != &w) w.cv.Wait(&mu_);
  if (w.done) {
    mu_.Unlock();
    return w.status;
  }
  // This writer leads: it commits itself and the writers queued behind it. Writers arriving
  // meanwhile queue up for the next batch, which the first of them will lead.
  std::vector<Writer*> batch(queue_.begin(),
                             queue_.begin() + static_cast<std::ptrdiff_t>(
                                                  std::min(queue_.size(), kMaxBatch)));
  mu_.Unlock();
  CommitBatch(batch.data(), batch.size());
  mu_.Lock();
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(batch.size()));
  // A woken writer needs mu_ to return, so none of them is gone before the Unlock below.
  for (Writer* other : batch) {
    if (other == &w) continue;
    other->done = true;
    other->cv.Signal();
  }
  if (!queue_.empty()) queue_.front()->cv.Signal();
  mu_.Unlock();
  return w.status;
}

void GroupCommit::CommitBatch(Writer* const* batch, size_t n) {
  absl::MutexLock lock(&writer_mu_);
  sql::Connection* db = writer_.get();
  absl::StatusOr<std::unique_ptr<sql::Transaction>> txn = db->Begin(sql::TxMode::kWrite);
  if (!txn.ok()) {
    for (size_t i = 0; i < n; ++i) batch[i]->status = txn.status();
    return;
  }
  // A single write needs no savepoint: rolling back the transaction undoes it.
  const bool savepoints = n > 1;
  absl::Status aborted;  // once set, the transaction is gone or must be rolled back whole
  bool any_kept = false;
  for (size_t i = 0; i < n && aborted.ok(); ++i) {
    Writer* w = batch[i];
    if (savepoints) aborted = Exec(db, "SAVEPOINT nighfs_write");
    if (!aborted.ok()) break;
    bool threw = false;
    {
      ScopedPrincipal as(*w->principal);
      try {
        w->kept = w->op(db);
      } catch (const std::exception& e) {
        // Run on another writer's thread: the exception must not escape into that caller.
        NIGHFS_LOG(ERROR) << "meta: a write threw: " << e.what();
        threw = true;
      }
    }
    if (threw) {
      w->kept = false;
      w->status = absl::InternalError("internal error: the operation threw an exception");
    } else {
      w->ran = true;
    }
    if (!db->InTransaction()) {
      // The engine rolled the whole transaction back (disk full, I/O error): the batch's earlier
      // writes are gone too. Nothing is committed, so a retry of any of them is safe.
      aborted = absl::UnavailableError(
          "metadata transaction aborted by the database; nothing was written, retry");
      break;
    }
    if (savepoints && !w->kept) aborted = Exec(db, "ROLLBACK TO SAVEPOINT nighfs_write");
    if (savepoints && aborted.ok()) aborted = Exec(db, "RELEASE SAVEPOINT nighfs_write");
    any_kept |= w->kept;
  }
  absl::Status commit = aborted;
  bool must_sync = false;
  if (commit.ok() && any_kept) {
    commit = (*txn)->Commit();
    commits_.fetch_add(1, std::memory_order_relaxed);
    if (commit.ok() && wal_sync_ != nullptr) {
      wal_sync_->Committed();
      for (size_t i = 0; i < n; ++i) must_sync |= batch[i]->kept && batch[i]->durable;
    }
  }
  // The batch is committed (visible to readers) either way; a durable write whose sync failed
  // is told so, and a retry of it gets its recorded reply only once a sync succeeds.
  const absl::Status synced = must_sync ? wal_sync_->Sync() : absl::OkStatus();
  // Without a commit, the transaction's destructor rolls back whatever is left.
  if (!commit.ok() && on_lost_) on_lost_();
  for (size_t i = 0; i < n; ++i) {
    Writer* w = batch[i];
    if (!w->ran) {
      if (w->status.ok()) w->status = aborted.ok() ? commit : aborted;
    } else if (w->kept) {
      w->status = commit.ok() && w->durable ? synced : commit;
    }  // else it returned false: its writes are undone, its own result says why
  }
}

}  // namespace nighfs::meta::internal
