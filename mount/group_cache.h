// The supplementary groups of the processes behind FUSE requests, cached briefly.
// Reading them (ReadProcessGroups: /proc/PID/task/PID/status, an open, a read and a parse) is
// too dear for every lookup of a build, while a process's groups change only by setgroups(2),
// which login tools call before they exec the user's program.
#ifndef NIGHFS_MOUNT_GROUP_CACHE_H_
#define NIGHFS_MOUNT_GROUP_CACHE_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nighfs::fs {

// At most this many supplementary groups are sent for a caller (the server accepts 1024).
// A process in more groups is checked against the first ones only: it may be refused what
// a later group would allow, never allowed more.
inline constexpr int kMaxCallerGroups = 256;

// The supplementary groups listed on the "Groups:" line of a /proc/PID/status text (at most
// kMaxCallerGroups; none if there is no such line). nighfs reads that file itself instead of
// calling libfuse 3.14's fuse_req_getgroups, which runs strstr over a 4 KiB buffer it does not
// terminate (AddressSanitizer: heap-buffer-overflow when the status text fills the buffer).
std::vector<uint32_t> ParseStatusGroups(std::string_view status);
// ParseStatusGroups of /proc/PID/task/PID/status; empty if it cannot be read.
std::vector<uint32_t> ReadProcessGroups(pid_t pid);

// Thread-safe.
class GroupCache {
 public:
  using Fetch = std::function<std::vector<uint32_t>()>;

  explicit GroupCache(absl::Duration ttl = absl::Seconds(1), size_t max_entries = 4096)
      : ttl_(ttl), max_entries_(max_entries) {}

  // The groups of process `pid` running as uid:gid: from the cache if fetched less than `ttl`
  // ago for the same pid, uid and gid, else from `fetch` (called without the lock held).
  std::vector<uint32_t> Get(pid_t pid, uint32_t uid, uint32_t gid, const Fetch& fetch,
                            absl::Time now = absl::Now()) {
    const Key key{pid, uid, gid};
    {
      absl::MutexLock l(&mu_);
      auto it = entries_.find(key);
      if (it != entries_.end() && now - it->second.fetched < ttl_) return it->second.groups;
    }
    std::vector<uint32_t> groups = fetch();
    absl::MutexLock l(&mu_);
    if (entries_.size() >= max_entries_) entries_.clear();  // bounded; refilled on demand
    entries_[key] = Entry{groups, now};
    return groups;
  }

 private:
  using Key = std::tuple<pid_t, uint32_t, uint32_t>;
  struct Entry {
    std::vector<uint32_t> groups;
    absl::Time fetched;
  };
  const absl::Duration ttl_;
  const size_t max_entries_;
  absl::Mutex mu_;
  absl::flat_hash_map<Key, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_GROUP_CACHE_H_
