// FileSystemImpl namespace calls: lookup, attributes, create/remove/rename of names,
// directory listing, statfs and extended attributes.

#include "mount/filesystem_impl.h"

#include <linux/fs.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/match.h"
#include "common/status_macros.h"

namespace nighfs::fs {

namespace {

// "." and ".." take directory offsets 0 and 1; the server's cookies start after them.
constexpr uint64_t kDotEntries = 2;

// POSIX ACLs (system.posix_acl_*) are not supported: storing them as plain xattrs would make
// the kernel neither enforce them nor fold them into the mode, and `cp -a` would lose modes.
// Refusing them makes tools fall back to chmod, as on any file system without ACLs.
absl::Status CheckXattrNamespace(const std::string& name) {
  if (name.rfind("system.", 0) == 0) {
    return PosixError(EOPNOTSUPP, "system.* attributes (POSIX ACLs) are not supported");
  }
  return absl::OkStatus();
}


// The fields every "create a name" request shares (Mknod, Mkdir, Symlink): where, and who.
template <class Req>
Req NewEntryRequest(uint64_t volume_id, const Caller& c, uint64_t parent,
                    const std::string& name) {
  Req req;
  req.set_volume_id(volume_id);
  req.set_parent(parent);
  req.set_name(name);
  req.set_uid(c.uid);
  req.set_gid(c.gid);
  ToProto(c, req.mutable_caller());
  return req;
}

}  // namespace

absl::StatusOr<pb::Attr> FileSystemImpl::Lookup(uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  pb::LookupRequest req;
  req.set_volume_id(volume_.id());
  req.set_parent(parent);
  req.set_name(name);
  const uint64_t gen = XattrGen();
  ASSIGN_OR_RETURN(pb::EntryResponse resp, Meta(&MetaApi::Lookup, req));
  NoteXattrs(resp.attr(), gen);
  return Overlay(resp.attr());
}

absl::StatusOr<pb::Attr> FileSystemImpl::GetAttr(uint64_t ino) {
  if (std::optional<pb::Attr> dir = dir_attrs_.Get(ino)) return *dir;
  // A file with deferred attribute changes: this mount holds its newest attributes (the
  // kernel asks for them again before each fchown).
  if (std::shared_ptr<FileState> st = OpenState(ino)) {
    absl::MutexLock l(&st->mu);
    if (st->deferred_attr.valid() != 0 && st->attr_gen == names_gen_.load()) {
      return OverlayLocked(*st, st->attr);
    }
  }
  pb::GetAttrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  const uint64_t gen = XattrGen();
  ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::GetAttr, req));
  NoteXattrs(resp.attr(), gen);
  return Overlay(resp.attr());
}

absl::StatusOr<pb::Attr> FileSystemImpl::SetAttr(uint64_t ino, const SetAttrArgs& a) {
  pb::SetAttrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_valid(a.valid);
  req.set_mode(a.mode);
  req.set_uid(a.uid);
  req.set_gid(a.gid);
  req.set_size(a.size);
  req.set_atime_ns(a.atime_ns);
  req.set_mtime_ns(a.mtime_ns);
  std::shared_ptr<FileState> st = OpenState(ino);
  // The write grant of this file goes with a size change through a handle open for writing
  // (ftruncate after fchmod 0), and with a mode change, which the server accepts from a
  // non-owner only as the kernel stripping suid/sgid for a writer (meta/access.h).
  if ((a.valid & pb::SETATTR_SIZE) && a.fh != 0) {
    absl::StatusOr<std::shared_ptr<Handle>> h = GetHandle(a.fh);
    if (h.ok() && (*h)->state->ino == ino && (OpenAccess((*h)->flags) & 2)) {
      absl::MutexLock l(&(*h)->state->mu);
      req.set_grant((*h)->state->write_grant);
    }
  } else if ((a.valid & pb::SETATTR_MODE) && st != nullptr) {
    absl::MutexLock l(&st->mu);
    req.set_grant(st->write_grant);
  }
  if (st == nullptr) {
    // A directory's attributes change (chmod, chown, utimes of a folder): what this mount
    // kept of them is replaced by the reply.
    DirChange change(dir_attrs_, ino);
    ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::SetAttr, req));
    change.Done(&resp.attr());
    return resp.attr();
  }
  absl::MutexLock fl(&st->flush_mu);
  if (std::optional<pb::Attr> deferred = DeferSetAttrLocked(*st, a)) return *deferred;
  // Buffered writes go first, so a truncate or an explicit mtime is not undone by a later
  // commit of older data.
  RETURN_IF_ERROR(CommitLocked(st));
  const uint64_t gen = names_gen_.load();
  ASSIGN_OR_RETURN(pb::AttrResponse resp, Meta(&MetaApi::SetAttr, req));
  absl::MutexLock l(&st->mu);
  if (a.valid & pb::SETATTR_SIZE) {
    const uint64_t size = a.size;
    for (auto it = st->blocks.begin(); it != st->blocks.end();) {
      const uint64_t start = it->first * bs_;
      if (start >= size) {
        it = st->blocks.erase(it);
        continue;
      }
      if (size - start < it->second.length()) it->second.set_length(size - start);
      ++it;
    }
    // Writes that raced in after the commit above are cut like the server cut its blocks.
    for (auto it = st->dirty.begin(); it != st->dirty.end();) {
      const uint64_t start = it->first * bs_;
      if (start >= size) {
        it = st->dirty.erase(it);  // its charge goes with it
        continue;
      }
      DirtyImage& d = it->second;
      if (size - start < d.Length()) {
        if (d.patch) {
          d.patch->Truncate(size - start);
        } else {
          d.img.resize(size - start);
        }
        d.charge.Set(d.HeldBytes());
      }
      ++it;
    }
    st->size = size;
  }
  st->attr = resp.attr();
  st->attr_gen = gen;
  if (st->dirty.empty() && st->inflight.empty()) st->meta_dirty = false;
  return OverlayLocked(*st, resp.attr());
}

absl::StatusOr<std::string> FileSystemImpl::Readlink(uint64_t ino) {
  pb::ReadlinkRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  ASSIGN_OR_RETURN(pb::ReadlinkResponse resp, Meta(&MetaApi::Readlink, req));
  return resp.target();
}

absl::StatusOr<pb::Attr> FileSystemImpl::Mknod(const Caller& c, uint64_t parent,
                                               const std::string& name, uint32_t mode,
                                               uint64_t rdev) {
  return MakeNode(c, parent, name, mode, rdev, 0, nullptr);
}

absl::StatusOr<pb::Attr> FileSystemImpl::MakeNode(const Caller& c, uint64_t parent,
                                                  const std::string& name, uint32_t mode,
                                                  uint64_t rdev, int open_access,
                                                  std::string* grant) {
  RETURN_IF_ERROR(CheckName(name));
  auto req = NewEntryRequest<pb::MknodRequest>(volume_.id(), c, parent, name);
  req.set_mode(mode);
  req.set_rdev(rdev);
  req.set_open_access(static_cast<uint32_t>(open_access));
  req.set_changer_session_id(session_id_.load());
  DirChange change(dir_attrs_, parent);
  ASSIGN_OR_RETURN(pb::EntryResponse resp, ChangeNames(&MetaApi::Mknod, req, parent, name, {}));
  change.Done(&resp.parent_attr());
  // A new inode has no extended attributes: the kernel's security.capability check before
  // the first write of a new file (every file `tar x` or `cp` makes) is answered here.
  if ((resp.attr().mode() & S_IFMT) == S_IFREG) RememberNoCaps(resp.attr().ino());
  if (grant != nullptr) *grant = resp.grant();
  return resp.attr();
}

absl::StatusOr<pb::Attr> FileSystemImpl::Mkdir(const Caller& c, uint64_t parent,
                                               const std::string& name, uint32_t mode) {
  RETURN_IF_ERROR(CheckName(name));
  auto req = NewEntryRequest<pb::MkdirRequest>(volume_.id(), c, parent, name);
  req.set_mode(mode);
  req.set_changer_session_id(session_id_.load());
  DirChange change(dir_attrs_, parent);
  absl::Time sent;
  ASSIGN_OR_RETURN(pb::EntryResponse resp,
                   ChangeNames(&MetaApi::Mkdir, req, parent, name, {}, &sent));
  dir_names_.Made(resp.attr().ino(), sent);
  change.Done(&resp.parent_attr());
  return resp.attr();
}

absl::StatusOr<pb::Attr> FileSystemImpl::Symlink(const Caller& c, uint64_t parent,
                                                 const std::string& name,
                                                 const std::string& target) {
  RETURN_IF_ERROR(CheckName(name));
  auto req = NewEntryRequest<pb::SymlinkRequest>(volume_.id(), c, parent, name);
  req.set_target(target);
  req.set_changer_session_id(session_id_.load());
  DirChange change(dir_attrs_, parent);
  ASSIGN_OR_RETURN(pb::EntryResponse resp,
                   ChangeNames(&MetaApi::Symlink, req, parent, name, {}));
  change.Done(&resp.parent_attr());
  return resp.attr();
}

absl::StatusOr<pb::Attr> FileSystemImpl::Link(uint64_t ino, uint64_t new_parent,
                                              const std::string& new_name) {
  RETURN_IF_ERROR(CheckName(new_name));
  pb::LinkRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_new_parent(new_parent);
  req.set_new_name(new_name);
  req.set_changer_session_id(session_id_.load());
  CommitDeferredAttrs(ino);
  DirChange change(dir_attrs_, new_parent);
  absl::StatusOr<pb::EntryResponse> resp =
      ChangeNames(&MetaApi::Link, req, new_parent, new_name, {});
  names_gen_.fetch_add(1);
  if (!resp.ok()) return resp.status();
  change.Done(&resp->parent_attr());
  return Overlay(resp->attr());
}

absl::Status FileSystemImpl::Unlink(uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  pb::UnlinkRequest req;
  req.set_volume_id(volume_.id());
  req.set_parent(parent);
  req.set_name(name);
  req.set_session_id(session_id_.load());
  std::shared_ptr<FileState> open = OpenStateOfName(parent, name);
  req.set_sustain(open != nullptr);
  CommitDeferredAttrs(0);
  DirChange change(dir_attrs_, parent);
  absl::StatusOr<pb::UnlinkResponse> resp = ChangeNames(&MetaApi::Unlink, req, parent, {}, name);
  names_gen_.fetch_add(1);
  if (!resp.ok()) return resp.status();
  change.Done(&resp->parent_attr());
  if (open != nullptr && resp->attr().nlink() == 0) MarkSustained(open);
  return absl::OkStatus();
}

absl::Status FileSystemImpl::Rmdir(uint64_t parent, const std::string& name) {
  RETURN_IF_ERROR(CheckName(name));
  pb::RmdirRequest req;
  req.set_volume_id(volume_.id());
  req.set_parent(parent);
  req.set_name(name);
  req.set_changer_session_id(session_id_.load());
  DirChange change(dir_attrs_, parent);
  ASSIGN_OR_RETURN(pb::RmdirResponse resp, ChangeNames(&MetaApi::Rmdir, req, parent, {}, name));
  dir_names_.Forget(resp.removed().ino());
  change.Done(&resp.parent_attr());
  dir_attrs_.Drop(resp.removed().ino());
  return absl::OkStatus();
}

absl::Status FileSystemImpl::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                                    const std::string& new_name, uint32_t flags) {
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckName(new_name));
  pb::RenameRequest req;
  req.set_volume_id(volume_.id());
  req.set_parent(parent);
  req.set_name(name);
  req.set_new_parent(new_parent);
  req.set_new_name(new_name);
  req.set_flags(flags);
  req.set_session_id(session_id_.load());
  std::shared_ptr<FileState> open;
  if (!(flags & RENAME_EXCHANGE)) open = OpenStateOfName(new_parent, new_name);
  req.set_sustain(open != nullptr);
  CommitDeferredAttrs(0);
  DirChange from(dir_attrs_, parent);
  std::optional<DirChange> to;
  if (new_parent != parent) to.emplace(dir_attrs_, new_parent);
  const absl::Time sent = absl::Now();
  absl::StatusOr<pb::RenameResponse> renamed = Meta(&MetaApi::Rename, req);
  names_gen_.fetch_add(1);
  if (!renamed.ok()) {
    dir_names_.Forget(parent);
    dir_names_.Forget(new_parent);
    return renamed.status();
  }
  const pb::RenameResponse& resp = *renamed;
  if (flags & RENAME_EXCHANGE) {  // both names still exist
    dir_names_.Changed(parent, sent, resp.parent_unchanged(), {}, {});
    dir_names_.Changed(new_parent, sent, resp.new_parent_unchanged(), {}, {});
  } else if (new_parent == parent) {
    dir_names_.Changed(parent, sent, resp.parent_unchanged(), new_name, name);
  } else {
    dir_names_.Changed(parent, sent, resp.parent_unchanged(), {}, name);
    dir_names_.Changed(new_parent, sent, resp.new_parent_unchanged(), new_name, {});
  }
  if (resp.replaced().ino() != 0 && S_ISDIR(resp.replaced().mode())) {
    dir_names_.Forget(resp.replaced().ino());
  }
  from.Done(&resp.parent_attr());
  if (to) to->Done(&resp.new_parent_attr());
  // A moved directory's ctime (and "..") changed, a replaced one is gone.
  dir_attrs_.Drop(resp.moved().ino());
  dir_attrs_.Drop(resp.replaced().ino());
  if (open != nullptr && resp.replaced().ino() == open->ino && resp.replaced().nlink() == 0) {
    MarkSustained(open);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DirEntryOut>> FileSystemImpl::ReadDir(
    uint64_t ino, uint64_t offset, size_t max_entries, bool plus) {
  std::vector<DirEntryOut> out;
  if (max_entries == 0) return out;
  // The kernel ignores the attributes of "." and "..", and the listing below reports
  // ENOTDIR for a non-directory: no extra round trip for them.
  pb::Attr self;
  self.set_ino(ino);
  self.set_mode(S_IFDIR);
  for (uint64_t o = offset; o < kDotEntries && out.size() < max_entries; ++o) {
    DirEntryOut e;
    e.name = o == 0 ? "." : "..";
    e.ino = ino;
    e.mode = S_IFDIR;
    e.next_offset = o + 1;
    e.attr = self;
    out.push_back(std::move(e));
  }
  if (out.size() >= max_entries) return out;
  pb::ReadDirRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_cookie(offset >= kDotEntries ? offset - kDotEntries : 0);
  req.set_limit(static_cast<uint32_t>(std::min<size_t>(max_entries - out.size(), 2000)));
  req.set_plus(plus);
  // A listing's permission is checked at its start (opendir checks it once in the kernel):
  // its continuation presents the grant the start got.
  if (req.cookie() != 0) {
    absl::MutexLock l(&dir_grants_mu_);
    if (auto it = dir_grants_.find(ino); it != dir_grants_.end()) req.set_grant(it->second);
  }
  const uint64_t gen = XattrGen();
  ASSIGN_OR_RETURN(pb::ReadDirResponse resp, Meta(&MetaApi::ReadDir, req));
  if (!resp.grant().empty()) {
    absl::MutexLock l(&dir_grants_mu_);
    if (dir_grants_.size() >= 10000) dir_grants_.clear();  // bounded; refilled by listings
    dir_grants_[ino] = resp.grant();
  }
  for (const pb::DirEntry& de : resp.entries()) {
    DirEntryOut e;
    e.name = de.name();
    e.ino = de.ino();
    e.mode = de.mode();
    e.next_offset = de.cookie() + kDotEntries;
    if (plus) {
      NoteXattrs(de.attr(), gen);
      e.attr = Overlay(de.attr());
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<struct statvfs> FileSystemImpl::StatFs() {
  pb::StatFsRequest req;
  req.set_volume_id(volume_.id());
  ASSIGN_OR_RETURN(pb::StatFsResponse resp, Meta(&MetaApi::StatFs, req));
  struct statvfs sv;
  std::memset(&sv, 0, sizeof sv);
  // Object storage has no fixed capacity: report 1 PiB and 2^40 inodes, minus what is used.
  const uint64_t frsize = 4096;
  const uint64_t total = (1ull << 50) / frsize;
  const uint64_t used = (resp.used_bytes() + frsize - 1) / frsize;
  sv.f_bsize = std::min<uint32_t>(bs_, 1u << 20);
  sv.f_frsize = frsize;
  sv.f_blocks = total;
  sv.f_bfree = sv.f_bavail = total > used ? total - used : 0;
  const uint64_t files = 1ull << 40;
  sv.f_files = files;
  sv.f_ffree = sv.f_favail = files - std::min(files, resp.inodes());
  sv.f_namemax = kMaxName;
  return sv;
}

absl::Status FileSystemImpl::SetXattr(uint64_t ino, const std::string& name, std::string_view value,
                                      int flags) {
  RETURN_IF_ERROR(CheckXattrNamespace(name));
  pb::SetXattrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_name(name);
  req.set_value(std::string(value));
  req.set_flags(static_cast<uint32_t>(flags));
  CommitDeferredAttrs(ino);
  DirChange change(dir_attrs_, ino);  // its ctime changes; the reply has no attributes
  absl::Status done = Meta(&MetaApi::SetXattr, req).status();
  ForgetNoXattrs(ino);  // also when the outcome is unknown (a timeout)
  return done;
}

absl::StatusOr<std::string> FileSystemImpl::GetXattr(uint64_t ino, const std::string& name) {
  // The kernel asks for security.capability before every write (to strip it); answering
  // from memory keeps that off the network. Only this mount's own changes are seen here.
  const bool caps = name == "security.capability";
  if (caps && KnownNoCaps(ino)) return PosixError(ENODATA, "no such attribute");
  // `ls -l` asks every file for security.selinux. Only security.* is answered here: the VFS
  // lets anyone read that namespace, so the server could not have refused it instead.
  if (absl::StartsWith(name, "security.") && KnownNoXattrs(ino)) {
    return PosixError(ENODATA, "no such attribute");
  }
  if (!CheckXattrNamespace(name).ok()) return PosixError(ENODATA, "no such attribute");
  pb::GetXattrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_name(name);
  CommitDeferredAttrs(ino);
  absl::StatusOr<pb::GetXattrResponse> resp = Meta(&MetaApi::GetXattr, req);
  if (!resp.ok()) {
    if (caps && StatusToErrno(resp.status()) == ENODATA) RememberNoCaps(ino);
    return resp.status();
  }
  return resp->value();
}

absl::StatusOr<std::vector<std::string>> FileSystemImpl::ListXattr(uint64_t ino) {
  // listxattr needs no permission: an inode known to have none lists none (cp -a, rsync -X).
  if (KnownNoXattrs(ino)) return std::vector<std::string>();
  pb::ListXattrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  CommitDeferredAttrs(ino);
  ASSIGN_OR_RETURN(pb::ListXattrResponse resp, Meta(&MetaApi::ListXattr, req));
  return std::vector<std::string>(resp.names().begin(), resp.names().end());
}

absl::Status FileSystemImpl::RemoveXattr(uint64_t ino, const std::string& name) {
  pb::RemoveXattrRequest req;
  req.set_volume_id(volume_.id());
  req.set_ino(ino);
  req.set_name(name);
  CommitDeferredAttrs(ino);
  DirChange change(dir_attrs_, ino);  // its ctime changes; the reply has no attributes
  absl::Status done = Meta(&MetaApi::RemoveXattr, req).status();
  ForgetNoXattrs(ino);  // also when the outcome is unknown (a timeout)
  return done;
}

std::shared_ptr<FileState> FileSystemImpl::OpenStateOfName(uint64_t parent,
                                                           const std::string& name) {
  {
    absl::MutexLock l(&files_mu_);
    if (files_.empty()) return nullptr;
  }
  pb::LookupRequest req;
  req.set_volume_id(volume_.id());
  req.set_parent(parent);
  req.set_name(name);
  absl::StatusOr<pb::EntryResponse> r = Meta(&MetaApi::Lookup, req);
  if (!r.ok()) return nullptr;
  return OpenState(r->attr().ino());
}

bool FileSystemImpl::KnownNoCaps(uint64_t ino) {
  absl::MutexLock l(&caps_mu_);
  return no_caps_.contains(ino);
}

void FileSystemImpl::RememberNoCaps(uint64_t ino) {
  absl::MutexLock l(&caps_mu_);
  if (no_caps_.size() > 100000) no_caps_.clear();
  no_caps_.insert(ino);
}

uint64_t FileSystemImpl::XattrGen() {
  absl::MutexLock l(&caps_mu_);
  return xattr_gen_;
}

void FileSystemImpl::NoteXattrs(const pb::Attr& attr, uint64_t gen) {
  absl::MutexLock l(&caps_mu_);
  if (!attr.no_xattrs() || gen != xattr_gen_) {
    no_xattrs_.erase(attr.ino());
    return;
  }
  if (no_xattrs_.size() >= 100000) no_xattrs_.clear();
  no_xattrs_[attr.ino()] = absl::Now() + options_.attr_timeout;
}

bool FileSystemImpl::KnownNoXattrs(uint64_t ino) {
  absl::MutexLock l(&caps_mu_);
  auto it = no_xattrs_.find(ino);
  return it != no_xattrs_.end() && absl::Now() < it->second;
}

void FileSystemImpl::ForgetNoXattrs(uint64_t ino) {
  absl::MutexLock l(&caps_mu_);
  no_caps_.erase(ino);
  no_xattrs_.erase(ino);
  ++xattr_gen_;
}

}  // namespace nighfs::fs
