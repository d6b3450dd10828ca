// FileSystemImpl: attribute changes deferred to a file's next commit (FileState::deferred_attr).
//
// `tar x` and `cp -a` write a file, then set its times, owner and mode through the open
// descriptor, then close it: three SetAttr round trips (each a metadata transaction with its
// WAL sync) and a GetAttr, right before the close commits the data anyway. A change made
// while the file has unsaved writes rides on that commit instead (CommitBlocksRequest.set_attr,
// applied in the same transaction after the blocks), so the file costs one round trip at
// close. The kernel (default_permissions) has already checked the caller's right to make the
// change against the attributes this mount gave it; the mount answers it with the attributes
// the server will compute, and defers only changes whose outcome it knows exactly.
//
// What others see: another mount sees the change when the file's data becomes visible to it
// (the close or fsync: close-to-open), as it sees the data. Within this mount every reply that
// carries the file's attributes shows the change at once. Before a call the server answers
// from the file's attributes (an open's permission check, unlink and rename in a sticky
// directory, xattr rules, link) the deferred changes are committed first.

#include <sys/stat.h>

#include "google/protobuf/util/message_differencer.h"
#include "mount/filesystem_impl.h"

namespace nighfs::fs {

std::optional<pb::Attr> FileSystemImpl::DeferSetAttrLocked(FileState& st, const SetAttrArgs& a) {
  constexpr uint32_t kDeferrable = pb::SETATTR_MODE | pb::SETATTR_UID | pb::SETATTR_GID |
                                   pb::SETATTR_ATIME | pb::SETATTR_ATIME_NOW |
                                   pb::SETATTR_MTIME | pb::SETATTR_MTIME_NOW;
  if (a.valid == 0 || (a.valid & ~kDeferrable) != 0) return std::nullopt;
  const Caller& c = CurrentCaller();
  pb::Caller who;
  ToProto(c, &who);
  absl::MutexLock l(&st.mu);
  // Only when a commit is owed anyway, and `attr` is what the server holds but for this
  // mount's own unsaved changes (no link, unlink or rename since it was read).
  if (!st.HasUnsavedLocked() || st.attr_gen != names_gen_.load()) return std::nullopt;
  pb::SetAttrRequest& d = st.deferred_attr;
  // One caller per commit: the server checks all of them with its credentials.
  if (d.valid() != 0 && !google::protobuf::util::MessageDifferencer::Equals(d.caller(), who)) {
    return std::nullopt;
  }
  if (c.uid != 0) {
    // Not root: only what meta/access.h lets the owner do with no change of the outcome.
    // chown/chgrp by a non-root owner (the group rule, S_ISUID clearing) and a chmod asking
    // for S_ISGID (dropped unless the caller is in the file's group) go at once.
    const uint32_t owner = (d.valid() & pb::SETATTR_UID) ? d.uid() : st.attr.uid();
    if (c.uid != owner) return std::nullopt;
    if (a.valid & (pb::SETATTR_UID | pb::SETATTR_GID)) return std::nullopt;
    if ((a.valid & pb::SETATTR_MODE) && (a.mode & S_ISGID)) return std::nullopt;
  }
  // Root's changes apply as asked (ModeAfterSetAttr changes nothing for root; the kernel
  // sends the S_ISUID/S_ISGID clearing of a chown itself, as a mode change).
  const int64_t now = NowNs();
  uint32_t valid = d.valid();
  if (a.valid & pb::SETATTR_MODE) {
    d.set_mode(a.mode & 07777);
    valid |= pb::SETATTR_MODE;
  }
  if (a.valid & pb::SETATTR_UID) {
    d.set_uid(a.uid);
    valid |= pb::SETATTR_UID;
  }
  if (a.valid & pb::SETATTR_GID) {
    d.set_gid(a.gid);
    valid |= pb::SETATTR_GID;
  }
  if (a.valid & (pb::SETATTR_ATIME | pb::SETATTR_ATIME_NOW)) {
    d.set_atime_ns((a.valid & pb::SETATTR_ATIME_NOW) ? now : a.atime_ns);
    valid |= pb::SETATTR_ATIME;
  }
  if (a.valid & (pb::SETATTR_MTIME | pb::SETATTR_MTIME_NOW)) {
    d.set_mtime_ns((a.valid & pb::SETATTR_MTIME_NOW) ? now : a.mtime_ns);
    valid |= pb::SETATTR_MTIME;
  }
  d.set_valid(valid);
  *d.mutable_caller() = std::move(who);
  st.deferred_ctime_ns = now;
  deferred_attrs_.fetch_add(1, std::memory_order_relaxed);
  return OverlayLocked(st, st.attr);
}

bool FileSystemImpl::HasDeferredAttrs(FileState& st) {
  absl::MutexLock l(&st.mu);
  // A file whose commit failed is left to the background retrier: trying it again on every
  // unlink or open would make them wait on a store outage.
  return st.deferred_attr.valid() != 0 && st.write_error.ok();
}

void FileSystemImpl::CommitDeferredAttrs(uint64_t ino) {
  std::vector<std::shared_ptr<FileState>> states;
  if (ino != 0) {
    if (std::shared_ptr<FileState> st = OpenState(ino)) states.push_back(std::move(st));
  } else {
    states = AllStates();
  }
  for (const std::shared_ptr<FileState>& st : states) {
    if (!HasDeferredAttrs(*st)) continue;
    absl::MutexLock fl(&st->flush_mu);
    // Best effort: a commit that fails (the store is down) is the file's write error, retried
    // in the background; the call goes on, judged by what the server has.
    if (HasDeferredAttrs(*st)) (void)CommitLocked(st);
  }
}

}  // namespace nighfs::fs
