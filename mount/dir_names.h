// The names of directories this mount made, while every change of them is its own.
//
// Why: the kernel looks a name up before every create (FUSE sends LOOKUP, then CREATE or
// MKNOD; `open(O_CREAT|O_EXCL)`, which `tar x`, `cp` and `git` use, asks even past a cached
// negative entry). In a directory this mount just made, that lookup is one round trip per new
// file for an answer the mount can know: a new directory has no names, and the metadata
// server says in each namespace reply whether the previous change of the parent was this
// session's own (EntryResponse.parent_unchanged; meta/dir_writers.h). While that holds, the
// names of the directory are exactly those this mount's own calls left, and a lookup of any
// other name is answered "no such entry" here.
//
// The promise is the kernel's own for negative entries: another mount's new name in such a
// directory is seen within entry_timeout. Knowledge lasts entry_timeout from the sending of
// the last call that confirmed it, and ends at the first reply that does not confirm it or the
// first call in the directory that fails (its outcome, or someone else's change, is unknown).
// Names are kept as 64-bit hashes: a collision only sends a lookup to the server.
#ifndef NIGHFS_MOUNT_DIR_NAMES_H_
#define NIGHFS_MOUNT_DIR_NAMES_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nighfs::fs {

class DirNames {
 public:
  // At most this many directories and names (over all of them) are known; past either, a
  // directory is forgotten (a few MiB at most).
  static constexpr size_t kMaxDirs = 4096;
  static constexpr size_t kMaxNames = 1 << 18;

  // `ttl` is entry_timeout; zero keeps nothing.
  explicit DirNames(absl::Duration ttl) : ttl_(ttl) {}
  DirNames(const DirNames&) = delete;
  DirNames& operator=(const DirNames&) = delete;

  // This mount made directory `dir` with a call sent at `sent`: it has no names.
  void Made(uint64_t dir, absl::Time sent) {
    if (ttl_ <= absl::ZeroDuration()) return;
    absl::MutexLock l(&mu_);
    if (dirs_.size() >= kMaxDirs) PruneLocked(sent);
    if (dirs_.size() >= kMaxDirs) return;
    Dir& d = dirs_[dir];
    names_ -= d.names.size();
    d.names.clear();
    d.until = sent + ttl_;
  }

  // A call sent at `sent` changed the names of `dir`: `added` (may be empty) now exists and
  // `removed` (may be empty) does not. `unchanged` is the reply's parent_unchanged: false ends
  // what is known of `dir`.
  void Changed(uint64_t dir, absl::Time sent, bool unchanged, std::string_view added,
               std::string_view removed) {
    absl::MutexLock l(&mu_);
    auto it = dirs_.find(dir);
    if (it == dirs_.end()) return;
    Dir& d = it->second;
    if (!unchanged) {
      EraseLocked(it);
      return;
    }
    if (!removed.empty()) names_ -= d.names.erase(Hash(removed));
    if (!added.empty()) names_ += d.names.insert(Hash(added)).second ? 1 : 0;
    if (names_ > kMaxNames) {
      EraseLocked(it);
      return;
    }
    if (sent + ttl_ > d.until) d.until = sent + ttl_;
  }

  // A call in `dir` failed or changed it in a way no reply describes: forget it.
  void Forget(uint64_t dir) {
    absl::MutexLock l(&mu_);
    auto it = dirs_.find(dir);
    if (it != dirs_.end()) EraseLocked(it);
  }

  // True if `name` is known not to exist in `dir` now.
  bool KnownAbsent(uint64_t dir, std::string_view name) {
    absl::MutexLock l(&mu_);
    auto it = dirs_.find(dir);
    if (it == dirs_.end()) return false;
    if (absl::Now() >= it->second.until) {
      EraseLocked(it);
      return false;
    }
    return !it->second.names.contains(Hash(name));
  }

  size_t dirs() const {
    absl::MutexLock l(&mu_);
    return dirs_.size();
  }

 private:
  struct Dir {
    absl::flat_hash_set<uint64_t> names;
    absl::Time until;
  };
  using Map = absl::flat_hash_map<uint64_t, Dir>;

  static uint64_t Hash(std::string_view name) { return absl::HashOf(name); }

  void EraseLocked(Map::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    names_ -= it->second.names.size();
    dirs_.erase(it);
  }

  void PruneLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::erase_if(dirs_, [&](const auto& kv) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      if (now < kv.second.until) return false;
      names_ -= kv.second.names.size();
      return true;
    });
  }

  const absl::Duration ttl_;
  mutable absl::Mutex mu_;
  Map dirs_ ABSL_GUARDED_BY(mu_);
  size_t names_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_DIR_NAMES_H_
