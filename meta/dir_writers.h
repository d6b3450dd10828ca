// Which session made the last change to each directory's names, as far as this server process
// knows: what EntryResponse.parent_unchanged (and its siblings) report.
//
// Why: a mount that made a directory knows all of its names (none) and, as long as every later
// change of them is its own, keeps knowing them; it can then answer the kernel's lookup of a
// new name (made before every create, `open(O_CREAT|O_EXCL)` always asks) without a round
// trip (mount/dir_names.h). The server is the only one that sees every change, so it says
// whether the previous change of the parent was the same session's.
//
// Kept in memory only: after a restart (or when the table is full, or a batch whose outcome is
// unclear) nothing is known and every answer is "not unchanged", which only costs a mount its
// knowledge. An entry must never claim a session made the last change when another one did, so
// a change is noted in commit order (by the operation, inside its transaction, which runs on
// the one writer) and forgotten again when its transaction does not commit (MetaServiceImpl::
// Write, GroupCommit's on_lost).
#ifndef NIGHFS_META_DIR_WRITERS_H_
#define NIGHFS_META_DIR_WRITERS_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace nighfs::meta::internal {

class DirWriters {
 public:
  // Directories changed since the table was last cleared; past this it starts again empty
  // (a few MiB at most).
  static constexpr size_t kMaxEntries = 1 << 16;

  // `session` (0: none) changes the names of directory (vol, dir) now. Returns whether the
  // previous change known here was also `session`'s.
  bool Note(uint64_t vol, uint64_t dir, uint64_t session) {
    absl::MutexLock l(&mu_);
    if (session == 0) {
      last_.erase({vol, dir});
      return false;
    }
    if (last_.size() >= kMaxEntries) last_.clear();
    auto [it, inserted] = last_.try_emplace({vol, dir}, session);
    const bool mine = !inserted && it->second == session;
    it->second = session;
    return mine;
  }

  // The change noted for (vol, dir) was undone: nothing is known of it.
  void Forget(uint64_t vol, uint64_t dir) {
    absl::MutexLock l(&mu_);
    last_.erase({vol, dir});
  }

  void Clear() {
    absl::MutexLock l(&mu_);
    last_.clear();
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::pair<uint64_t, uint64_t>, uint64_t> last_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::meta::internal

#endif  // NIGHFS_META_DIR_WRITERS_H_
