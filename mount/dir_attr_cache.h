// The attributes of directories as this mount's own namespace operations left them.
//
// Why: after a create, unlink or rename in a directory the kernel drops the directory's
// cached attributes (its mtime and ctime changed) and asks for them again (GetAttr) on the
// next path walk through it, which default_permissions needs. The reply of the operation
// already carried them (parent_attr), so that GetAttr is answered from here, for
// attr_timeout after the reply: the same promise as the kernel's own attribute cache (another
// mount's changes are seen within attr_timeout). Only replies of this mount's own operations
// fill it, and a reply is kept only when no other change of the same directory by this mount
// started while it was in flight (replies may arrive out of order).
#ifndef NIGHFS_MOUNT_DIR_ATTR_CACHE_H_
#define NIGHFS_MOUNT_DIR_ATTR_CACHE_H_

#include <sys/stat.h>

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "meta.pb.h"

namespace nighfs::fs {

class DirAttrCache {
 public:
  // `ttl` zero: nothing is kept.
  explicit DirAttrCache(absl::Duration ttl) : ttl_(ttl) {}
  DirAttrCache(const DirAttrCache&) = delete;
  DirAttrCache& operator=(const DirAttrCache&) = delete;

  // A change of directory `ino` by this mount starts: what is kept of it is dropped now (it
  // is about to be stale). Pass the ticket to End.
  uint64_t Begin(uint64_t ino) {
    absl::MutexLock l(&mu_);
    Entry& e = entries_[ino];
    e.inflight += 1;
    e.valid = false;
    e.last_begin = ++seq_;
    return e.last_begin;
  }

  // The change begun with `ticket` ended. `attr`: the directory as the change's transaction
  // left it (nullptr, or not a directory, when the change failed or the reply has none); it
  // is kept only if no other change of the directory began since.
  void End(uint64_t ino, uint64_t ticket, const meta::v1::Attr* attr) {
    absl::MutexLock l(&mu_);
    auto it = entries_.find(ino);
    if (it == entries_.end()) return;  // cannot happen: Begin made it
    Entry& e = it->second;
    e.inflight -= 1;
    if (ttl_ > absl::ZeroDuration() && attr != nullptr && attr->ino() == ino &&
        S_ISDIR(attr->mode()) && e.last_begin == ticket) {
      e.attr = *attr;
      e.expires = absl::Now() + ttl_;
      e.valid = true;
    }
    if (e.inflight == 0 && !e.valid) {
      entries_.erase(it);
    } else if (entries_.size() > kMaxEntries) {
      PruneLocked(ino);
    }
  }

  // Forgets `ino` (changed in a way no reply describes), also against changes in flight.
  void Drop(uint64_t ino) {
    absl::MutexLock l(&mu_);
    auto it = entries_.find(ino);
    if (it == entries_.end()) return;
    if (it->second.inflight == 0) {
      entries_.erase(it);
      return;
    }
    it->second.valid = false;
    it->second.last_begin = ++seq_;
  }

  // The kept attributes of `ino`, if fresh.
  std::optional<meta::v1::Attr> Get(uint64_t ino) {
    absl::MutexLock l(&mu_);
    auto it = entries_.find(ino);
    if (it == entries_.end() || !it->second.valid) return std::nullopt;
    if (absl::Now() >= it->second.expires) {
      if (it->second.inflight == 0) entries_.erase(it);
      return std::nullopt;
    }
    return it->second.attr;
  }

  size_t size() const {
    absl::MutexLock l(&mu_);
    return entries_.size();
  }

 private:
  // Directories written to within the last attr_timeout: a few in practice; the bound only
  // stops a pathological workload from growing it.
  static constexpr size_t kMaxEntries = 4096;

  struct Entry {
    meta::v1::Attr attr;
    absl::Time expires;
    int inflight = 0;
    uint64_t last_begin = 0;
    bool valid = false;
  };

  // Forgets what expired; if that is not enough, everything but `keep` and the directories
  // with changes in flight.
  void PruneLocked(uint64_t keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const absl::Time now = absl::Now();
    absl::erase_if(entries_, [&](const auto& kv) {
      return kv.second.inflight == 0 && (!kv.second.valid || now >= kv.second.expires);
    });
    if (entries_.size() > kMaxEntries) {
      absl::erase_if(entries_, [&](const auto& kv) {
        return kv.second.inflight == 0 && kv.first != keep;
      });
    }
  }

  const absl::Duration ttl_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_DIR_ATTR_CACHE_H_
