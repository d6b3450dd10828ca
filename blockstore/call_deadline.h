// Per-call deadlines of BlockStore calls (issue 13): a caller that owns a retry budget (the
// routing store, which fails over to another route instead of waiting on one) bounds every
// store call made under it, including the store's own retries and each HTTP attempt's timeout.
//
// The deadline is scoped to the calling thread rather than passed as a parameter: every
// BlockStore call runs synchronously on its caller's thread, so a deadline set around a call
// reaches the HTTP layer under any number of wrappers (counting, fault injection, routing)
// without each of them forwarding an argument, and stores that do no network I/O (a local
// folder, memory) need no change. Scopes nest: the inner deadline is never later than the
// outer one.
#ifndef NIGHFS_BLOCKSTORE_CALL_DEADLINE_H_
#define NIGHFS_BLOCKSTORE_CALL_DEADLINE_H_

#include "absl/time/time.h"

namespace nighfs::blockstore {

// The deadline of the BlockStore calls this thread makes now: the earliest of the enclosing
// ScopedCallDeadlines, absl::InfiniteFuture() outside any.
absl::Time CallDeadline();

// Sets the calling thread's call deadline to min(`deadline`, the enclosing one) for its
// lifetime. Not movable: create it on the stack around the calls it bounds.
class ScopedCallDeadline {
 public:
  explicit ScopedCallDeadline(absl::Time deadline);
  ~ScopedCallDeadline();
  ScopedCallDeadline(const ScopedCallDeadline&) = delete;
  ScopedCallDeadline& operator=(const ScopedCallDeadline&) = delete;

 private:
  const absl::Time outer_;
};

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_CALL_DEADLINE_H_
