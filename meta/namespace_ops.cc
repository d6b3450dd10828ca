// MetaServiceImpl's POSIX namespace calls: Lookup, GetAttr, SetAttr, the creation of nodes
// (Mknod, Mkdir, Symlink, Link), Unlink, Rmdir, Rename, ReadDir, Readlink, extended
// attributes and StatFs.
#include "meta/meta_service_impl.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace nighfs::meta::internal {

namespace {

// What Unlink and Rmdir look up and check before removing (parent, name): the directory
// (searchable by the caller), the entry, its inode, and that the caller may delete it
// (write on the directory, sticky rules).
struct Removal {
  Inode dir;
  Dentry entry;
  Inode node;
};

absl::StatusOr<Removal> FindRemovable(Tx& tx, const Cred& cred, uint64_t vol, uint64_t parent,
                                      const std::string& name) {
  ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, parent));
  RETURN_IF_ERROR(CheckSearch(cred, dir.node()));
  ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(vol, parent, name));
  ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(vol, d.ino));
  RETURN_IF_ERROR(CheckDelete(cred, dir.node(), n.node()));
  return Removal{std::move(dir), std::move(d), std::move(n)};
}

// Whether inode `ino` has no extended attributes (Attr.no_xattrs).
absl::StatusOr<bool> NoXattrs(Tx& tx, uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                  "SELECT 1 FROM xattrs WHERE volume_id = ? AND ino = ? LIMIT 1",
                                  vol, ino));
  ASSIGN_OR_RETURN(bool row, st->Step());
  return !row;
}

}  // namespace

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Lookup(const pb::LookupRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(req.volume_id(), req.parent()));
    RETURN_IF_ERROR(CheckSearch(asker.cred, dir.node()));
    ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(req.volume_id(), req.parent(), req.name()));
    ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(req.volume_id(), d.ino));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    ASSIGN_OR_RETURN(const bool none, NoXattrs(tx, req.volume_id(), n.ino));
    r.mutable_attr()->set_no_xattrs(none);
    return r;
  });
}

absl::StatusOr<pb::AttrResponse> MetaServiceImpl::GetAttr(const pb::GetAttrRequest& req) {
  RETURN_IF_ERROR(AskerOf(req).status());  // stat needs no permission on the inode itself
  return Read([&](Tx& tx) -> absl::StatusOr<pb::AttrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    pb::AttrResponse r;
    *r.mutable_attr() = n.Proto();
    ASSIGN_OR_RETURN(const bool none, NoXattrs(tx, req.volume_id(), n.ino));
    r.mutable_attr()->set_no_xattrs(none);
    return r;
  });
}

absl::StatusOr<pb::AttrResponse> MetaServiceImpl::SetAttr(const pb::SetAttrRequest& req) {
  const uint32_t valid = req.valid();
  if ((valid & pb::SETATTR_SIZE) && req.size() > kMaxFileSize) {
    return FsError(EFBIG, absl::StrCat("size ", req.size(), " is too large"));
  }
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("SetAttr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::AttrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    if (valid & pb::SETATTR_SIZE) {
      if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
      if (!n.IsReg()) {
        return FsError(EINVAL, absl::StrCat("inode ", n.ino, " is not a regular file"));
      }
    }
    RETURN_IF_ERROR(ApplyOwnerModeTimes(asker.cred, req,
                                        Granted(asker, req.grant(), vol, n.ino, kMayWrite),
                                        tx.now, &n));
    if ((valid & pb::SETATTR_SIZE) && req.size() != n.size) {
      const uint64_t size = req.size();
      if (size < n.size) {
        ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(vol));
        const uint64_t bs = v.block_size;
        // Blocks wholly at or past the new end are dropped; their objects become garbage.
        const uint64_t first_dropped = size / bs + (size % bs != 0 ? 1 : 0);
        ASSIGN_OR_RETURN(int64_t dropped_bytes,
                         QueryInt(tx.db, 0,
                                  "SELECT COALESCE(SUM(length), 0) FROM blocks "
                                  "WHERE volume_id = ? AND ino = ? AND idx >= ?",
                                  vol, n.ino, first_dropped));
        n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, dropped_bytes);
        RETURN_IF_ERROR(Exec(tx.db,
                             "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                             "SELECT volume_id, block_id, object_size, ? FROM blocks "
                             "WHERE volume_id = ? AND ino = ? AND idx >= ? "
                             "AND block_id IS NOT NULL",
                             tx.now, vol, n.ino, first_dropped));
        RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ? AND idx >= ?",
                             vol, n.ino, first_dropped));
        // The block holding the new end keeps its object (or inline bytes, checked whole by
        // readers as an object is); bytes past `length` read as zeros, so growing the file
        // later shows a hole, not the old bytes.
        if (size % bs != 0) {
          const uint64_t idx = size / bs;
          const uint64_t keep = size - idx * bs;
          ASSIGN_OR_RETURN(int64_t old_length,
                           QueryInt(tx.db, 0,
                                    "SELECT length FROM blocks WHERE volume_id = ? AND ino = ? "
                                    "AND idx = ?",
                                    vol, n.ino, idx));
          if (static_cast<uint64_t>(old_length) > keep) {
            n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, old_length - keep);
          }
          RETURN_IF_ERROR(Exec(tx.db,
                               "UPDATE blocks SET length = ? WHERE volume_id = ? AND ino = ? AND "
                               "idx = ? AND length > ?",
                               keep, vol, n.ino, idx, keep));
        }
      }
      n.size = size;
      if (!(valid & (pb::SETATTR_MTIME | pb::SETATTR_MTIME_NOW))) n.mtime_ns = tx.now;
    }
    n.ctime_ns = (valid & pb::SETATTR_CTIME) ? req.ctime_ns() : tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    pb::AttrResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::Status MetaServiceImpl::ApplyOwnerModeTimes(const Cred& cred, const pb::SetAttrRequest& req,
                                                  bool write_granted, int64_t now, Inode* n) {
  const uint32_t valid = req.valid();
  RETURN_IF_ERROR(CheckSetAttr(cred, n->node(), valid, req.mode(), req.uid(), req.gid(),
                               write_granted));
  if (valid & pb::SETATTR_MODE) n->mode = (n->mode & S_IFMT) | (req.mode() & 07777);
  if (valid & pb::SETATTR_UID) n->uid = req.uid();
  if (valid & pb::SETATTR_GID) n->gid = req.gid();
  n->mode = ModeAfterSetAttr(cred, valid, n->mode, n->gid);
  if (valid & pb::SETATTR_ATIME) n->atime_ns = req.atime_ns();
  if (valid & pb::SETATTR_ATIME_NOW) n->atime_ns = now;
  if (valid & pb::SETATTR_MTIME) n->mtime_ns = req.mtime_ns();
  if (valid & pb::SETATTR_MTIME_NOW) n->mtime_ns = now;
  return absl::OkStatus();
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::CreateNode(std::string_view method,
                                                              const std::string& request_id,
                                                              uint64_t vol, uint64_t parent,
                                                              const std::string& name,
                                                              uint32_t mode, uint32_t uid,
                                                              uint32_t gid, uint64_t rdev,
                                                              const std::string* target,
                                                              const Asker& asker,
                                                              int open_access) {
  RETURN_IF_ERROR(CheckName(name));
  RETURN_IF_ERROR(CheckMknodType(asker.cred, mode));
  // The kernel makes a new inode the caller's; only root may name another owner.
  if (!asker.cred.IsRoot()) {
    uid = asker.cred.uid;
    gid = asker.cred.gid;
  }
  return WriteOnce(method, request_id, [&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, parent));
    RETURN_IF_ERROR(CheckSearch(asker.cred, dir.node()));
    ASSIGN_OR_RETURN(std::optional<Dentry> existing, tx.FindDentry(vol, parent, name));
    if (existing) {
      return FsError(EEXIST, absl::StrCat(Quote(name), " exists in directory ", parent));
    }
    RETURN_IF_ERROR(CheckCreate(asker.cred, dir.node()));
    Inode n;
    ASSIGN_OR_RETURN(n.ino, tx.AllocIno(vol));
    n.mode = mode;
    n.uid = uid;
    n.gid = gid;
    // BSD group semantics under a setgid directory, which new directories inherit.
    if (dir.mode & S_ISGID) {
      n.gid = dir.gid;
      if (S_ISDIR(mode)) n.mode |= S_ISGID;
    }
    // inode_init_owner(): no group-executable setgid file in a group the creator is not in.
    if (!S_ISDIR(mode) && (n.mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
        !asker.cred.IsRoot() && !asker.cred.InGroup(n.gid)) {
      n.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    n.rdev = rdev;
    n.nlink = S_ISDIR(mode) ? 2 : 1;
    n.size = target != nullptr ? target->size() : 0;
    n.atime_ns = n.mtime_ns = n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.InsertInode(vol, n, target));
    RETURN_IF_ERROR(tx.InsertDentry(vol, parent, name, n.ino));
    if (S_ISDIR(mode)) dir.nlink += 1;
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    *r.mutable_parent_attr() = dir.Proto();
    if (open_access != 0) r.set_grant(MakeGrant(grant_key_, vol, n.ino, asker.session, open_access));
    r.set_parent_unchanged(NoteDirChange(tx, asker, vol, parent));
    // A new directory has no names, and the changes of them start with this session's.
    if (S_ISDIR(mode)) NoteDirChange(tx, asker, vol, n.ino);
    return r;
  });
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Mknod(const pb::MknodRequest& req) {
  uint32_t type = req.mode() & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      break;
    default:  // S_IFDIR, S_IFLNK and bit patterns that are no type
      return FsError(EINVAL, absl::StrFormat("mknod cannot create file type %#o", type));
  }
  const uint64_t rdev = (type == S_IFCHR || type == S_IFBLK) ? req.rdev() : 0;
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  const int open_access = type == S_IFREG ? static_cast<int>(req.open_access()) : 0;
  return CreateNode("Mknod", req.request_id(), req.volume_id(), req.parent(), req.name(), type | (req.mode() & 07777),
                    req.uid(), req.gid(), rdev, nullptr, asker, open_access);
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Mkdir(const pb::MkdirRequest& req) {
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return CreateNode("Mkdir", req.request_id(), req.volume_id(), req.parent(), req.name(), S_IFDIR | (req.mode() & 07777),
                    req.uid(), req.gid(), 0, nullptr, asker);
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Symlink(const pb::SymlinkRequest& req) {
  if (req.target().empty()) return FsError(ENOENT, "empty symlink target");
  if (req.target().size() > kMaxSymlinkBytes) {
    return FsError(ENAMETOOLONG, absl::StrCat("symlink target of ", req.target().size(),
                                              " bytes is longer than ", kMaxSymlinkBytes));
  }
  if (req.target().find('\0') != std::string::npos) {
    return FsError(EINVAL, "symlink target contains NUL");
  }
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return CreateNode("Symlink", req.request_id(), req.volume_id(), req.parent(), req.name(), S_IFLNK | 0777, req.uid(),
                    req.gid(), 0, &req.target(), asker);
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Link(const pb::LinkRequest& req) {
  RETURN_IF_ERROR(CheckName(req.new_name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("Link", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, req.new_parent()));
    RETURN_IF_ERROR(CheckSearch(asker.cred, dir.node()));
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    ASSIGN_OR_RETURN(std::optional<Dentry> existing,
                     tx.FindDentry(vol, req.new_parent(), req.new_name()));
    if (existing) {
      return FsError(EEXIST, absl::StrCat(Quote(req.new_name()), " exists in directory ",
                                          req.new_parent()));
    }
    RETURN_IF_ERROR(CheckCreate(asker.cred, dir.node()));
    if (n.IsDir()) return FsError(EPERM, absl::StrCat("cannot link directory ", n.ino));
    // An unlinked file kept open cannot get a name back (linkat(2) gives ENOENT).
    if (n.nlink == 0) return FsError(ENOENT, absl::StrCat("inode ", n.ino, " has been unlinked"));
    if (n.nlink >= kMaxLinks) {
      return FsError(EMLINK, absl::StrCat("inode ", n.ino, " has ", n.nlink, " links already"));
    }
    RETURN_IF_ERROR(tx.InsertDentry(vol, req.new_parent(), req.new_name(), n.ino));
    n.nlink += 1;
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    *r.mutable_parent_attr() = dir.Proto();
    r.set_parent_unchanged(NoteDirChange(tx, asker, vol, req.new_parent()));
    return r;
  });
}

absl::StatusOr<pb::UnlinkResponse> MetaServiceImpl::Unlink(const pb::UnlinkRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("Unlink", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::UnlinkResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Removal rm, FindRemovable(tx, asker.cred, vol, req.parent(), req.name()));
    Inode& dir = rm.dir;
    const Dentry& d = rm.entry;
    Inode& n = rm.node;
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat(Quote(req.name()), " is a directory"));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", d.id));
    ASSIGN_OR_RETURN(n, tx.DropLink(vol, n, req.session_id(), req.sustain(), options_.session_timeout));
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::UnlinkResponse r;
    *r.mutable_attr() = n.Proto();
    *r.mutable_parent_attr() = dir.Proto();
    r.set_parent_unchanged(NoteDirChange(tx, asker, vol, req.parent()));
    return r;
  });
}

absl::StatusOr<pb::RmdirResponse> MetaServiceImpl::Rmdir(const pb::RmdirRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("Rmdir", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RmdirResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Removal rm, FindRemovable(tx, asker.cred, vol, req.parent(), req.name()));
    Inode& dir = rm.dir;
    const Dentry& d = rm.entry;
    Inode& n = rm.node;
    if (!n.IsDir()) return FsError(ENOTDIR, absl::StrCat(Quote(req.name()), " is not a directory"));
    ASSIGN_OR_RETURN(bool empty, tx.DirIsEmpty(vol, n.ino));
    if (!empty) return FsError(ENOTEMPTY, absl::StrCat("directory ", Quote(req.name()), " is not empty"));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", d.id));
    RETURN_IF_ERROR(tx.FreeInode(vol, n.ino));
    dir.nlink -= 1;
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::RmdirResponse r;
    *r.mutable_parent_attr() = dir.Proto();
    n.nlink = 0;
    n.ctime_ns = tx.now;
    *r.mutable_removed() = n.Proto();
    r.set_parent_unchanged(NoteDirChange(tx, asker, vol, req.parent()));
    return r;
  });
}

absl::StatusOr<pb::RenameResponse> MetaServiceImpl::Rename(const pb::RenameRequest& req) {
  const uint32_t flags = req.flags();
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange)) {
    return FsError(EINVAL, absl::StrCat("unsupported rename flags ", flags));
  }
  RETURN_IF_ERROR(CheckName(req.name()));
  RETURN_IF_ERROR(CheckName(req.new_name()));
  const bool exchange = flags & kRenameExchange;
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("Rename", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RenameResponse> {
    const uint64_t vol = req.volume_id();
    const uint64_t p_old = req.parent();
    const uint64_t p_new = req.new_parent();
    const bool same_parent = p_old == p_new;
    ASSIGN_OR_RETURN(Inode old_dir, tx.GetDir(vol, p_old));
    ASSIGN_OR_RETURN(Inode new_dir, tx.GetDir(vol, p_new));
    RETURN_IF_ERROR(CheckSearch(asker.cred, old_dir.node()));
    RETURN_IF_ERROR(CheckSearch(asker.cred, new_dir.node()));
    ASSIGN_OR_RETURN(Dentry src_d, tx.GetDentry(vol, p_old, req.name()));
    ASSIGN_OR_RETURN(Inode src, tx.GetEntryInode(vol, src_d.ino));
    ASSIGN_OR_RETURN(std::optional<Dentry> dst_d, tx.FindDentry(vol, p_new, req.new_name()));

    // The order of the checks follows Linux's renameat2.
    if ((flags & kRenameNoReplace) && dst_d) {
      return FsError(EEXIST, absl::StrCat(Quote(req.new_name()), " exists in directory ", p_new));
    }
    if (exchange && !dst_d) {
      return FsError(ENOENT, absl::StrCat("no entry ", Quote(req.new_name()), " in directory ",
                                          p_new, " to exchange with"));
    }
    pb::RenameResponse r;
    // Renaming a name onto itself, or onto another name of the same inode, changes nothing.
    if (dst_d && dst_d->ino == src.ino) {
      *r.mutable_moved() = src.Proto();
      *r.mutable_parent_attr() = old_dir.Proto();
      *r.mutable_new_parent_attr() = new_dir.Proto();
      return r;
    }
    std::optional<Inode> dst;
    if (dst_d) {
      ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(vol, dst_d->ino));
      dst = n;
    }
    // A directory cannot move below itself.
    if (src.IsDir()) {
      ASSIGN_OR_RETURN(bool loop, tx.IsAncestorOrSelf(vol, src.ino, p_new));
      if (loop) {
        return FsError(EINVAL, absl::StrCat("cannot move directory ", src.ino,
                                            " into its own subtree"));
      }
    }
    if (exchange && dst->IsDir()) {
      ASSIGN_OR_RETURN(bool loop, tx.IsAncestorOrSelf(vol, dst->ino, p_old));
      if (loop) {
        return FsError(EINVAL, absl::StrCat("cannot move directory ", dst->ino,
                                            " into its own subtree"));
      }
    }
    RETURN_IF_ERROR(CheckRename(asker.cred, old_dir.node(), src.node(), new_dir.node(),
                                dst ? std::optional<Node>(dst->node()) : std::nullopt,
                                same_parent, exchange));

    // nlink of the parents: each directory child holds a link to its parent ("..").
    int64_t old_dir_delta = 0;
    int64_t new_dir_delta = 0;
    if (exchange) {
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET ino = ? WHERE id = ?", dst->ino, src_d.id));
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET ino = ? WHERE id = ?", src.ino, dst_d->id));
      if (src.IsDir()) { old_dir_delta -= 1; new_dir_delta += 1; }
      if (dst->IsDir()) { new_dir_delta -= 1; old_dir_delta += 1; }
      src.ctime_ns = tx.now;
      dst->ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, src));
      RETURN_IF_ERROR(tx.UpdateInode(vol, *dst));
      *r.mutable_replaced() = dst->Proto();
    } else {
      if (dst) {
        if (src.IsDir() && !dst->IsDir()) {
          return FsError(ENOTDIR, absl::StrCat(Quote(req.new_name()), " is not a directory"));
        }
        if (!src.IsDir() && dst->IsDir()) {
          return FsError(EISDIR, absl::StrCat(Quote(req.new_name()), " is a directory"));
        }
        if (dst->IsDir()) {
          ASSIGN_OR_RETURN(bool empty, tx.DirIsEmpty(vol, dst->ino));
          if (!empty) {
            return FsError(ENOTEMPTY, absl::StrCat("directory ", Quote(req.new_name()),
                                                   " is not empty"));
          }
        }
        RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", dst_d->id));
      }
      // The entry keeps its id (readdir cookie): a listing of the new directory already past it
      // may miss the moved name, which POSIX allows for entries changed during a listing.
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET parent = ?, name = ? WHERE id = ?", p_new,
                           Blob{req.new_name()}, src_d.id));
      if (src.IsDir()) { old_dir_delta -= 1; new_dir_delta += 1; }
      src.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, src));
      if (dst) {
        if (dst->IsDir()) {
          new_dir_delta -= 1;
          RETURN_IF_ERROR(tx.FreeInode(vol, dst->ino));
          dst->nlink = 0;
          dst->ctime_ns = tx.now;
        } else {
          ASSIGN_OR_RETURN(*dst, tx.DropLink(vol, *dst, req.session_id(), req.sustain(),
                                             options_.session_timeout));
        }
        *r.mutable_replaced() = dst->Proto();
      }
    }
    if (same_parent) {
      old_dir.nlink = static_cast<uint32_t>(old_dir.nlink + old_dir_delta + new_dir_delta);
      old_dir.mtime_ns = old_dir.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, old_dir));
      new_dir = old_dir;
    } else {
      old_dir.nlink = static_cast<uint32_t>(old_dir.nlink + old_dir_delta);
      new_dir.nlink = static_cast<uint32_t>(new_dir.nlink + new_dir_delta);
      old_dir.mtime_ns = old_dir.ctime_ns = tx.now;
      new_dir.mtime_ns = new_dir.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, old_dir));
      RETURN_IF_ERROR(tx.UpdateInode(vol, new_dir));
    }
    *r.mutable_moved() = src.Proto();
    *r.mutable_parent_attr() = old_dir.Proto();
    *r.mutable_new_parent_attr() = new_dir.Proto();
    r.set_parent_unchanged(NoteDirChange(tx, asker, vol, p_old));
    r.set_new_parent_unchanged(same_parent ? r.parent_unchanged()
                                           : NoteDirChange(tx, asker, vol, p_new));
    return r;
  });
}

absl::StatusOr<pb::ReadDirResponse> MetaServiceImpl::ReadDir(const pb::ReadDirRequest& req) {
  uint32_t limit = req.limit() == 0 ? kReadDirDefaultLimit : std::min(req.limit(), kReadDirMaxLimit);
  // A cookie past INT64_MAX cannot have come from us: nothing follows it.
  const int64_t cookie = req.cookie() > kMaxFileSize ? std::numeric_limits<int64_t>::max()
                                                     : static_cast<int64_t>(req.cookie());
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ReadDirResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, req.ino()));
    pb::ReadDirResponse r;
    if (!Granted(asker, req.grant(), vol, dir.ino, kMayRead)) {
      RETURN_IF_ERROR(CheckPermission(asker.cred, dir.node(), kMayRead));
      r.set_grant(MakeGrant(grant_key_, vol, dir.ino, asker.session, kMayRead));
    }
    // One row more than asked tells whether the listing is complete.
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT d.id, d.name, i.ino, i.mode, i.uid, i.gid, i.size, "
                                    "i.nlink, i.rdev, i.atime_ns, i.mtime_ns, i.ctime_ns, "
                                    "i.stored_bytes, NOT EXISTS (SELECT 1 FROM xattrs x "
                                    "WHERE x.volume_id = i.volume_id AND x.ino = i.ino) "
                                    "FROM dentries d JOIN inodes i "
                                    "ON i.volume_id = d.volume_id AND i.ino = d.ino "
                                    "WHERE d.volume_id = ? AND d.parent = ? AND d.id > ? "
                                    "ORDER BY d.id LIMIT ?",
                                    vol, req.ino(), cookie, limit + 1));
    r.set_eof(true);
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      if (static_cast<uint32_t>(r.entries_size()) == limit) {
        r.set_eof(false);
        break;
      }
      Inode n = ReadInode(*st, 2);
      pb::DirEntry* e = r.add_entries();
      e->set_cookie(static_cast<uint64_t>(st->ColumnInt64(0)));
      e->set_name(st->ColumnBlob(1));
      e->set_ino(n.ino);
      e->set_mode(n.mode);
      if (req.plus()) {
        n.ToProto(e->mutable_attr());
        e->mutable_attr()->set_no_xattrs(st->ColumnInt64(13) != 0);
      }
    }
    return r;
  });
}

absl::StatusOr<pb::ReadlinkResponse> MetaServiceImpl::Readlink(const pb::ReadlinkRequest& req) {
  RETURN_IF_ERROR(AskerOf(req).status());  // readlink needs no permission on the link
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ReadlinkResponse> {
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT mode, target FROM inodes WHERE volume_id = ? AND ino = ?",
                                    req.volume_id(), req.ino()));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return FsError(ENOENT, absl::StrCat("no inode ", req.ino()));
    if (!S_ISLNK(static_cast<uint32_t>(st->ColumnInt64(0)))) {
      return FsError(EINVAL, absl::StrCat("inode ", req.ino(), " is not a symlink"));
    }
    pb::ReadlinkResponse r;
    r.set_target(st->ColumnBlob(1));
    return r;
  });
}

// ---- xattrs ----

absl::StatusOr<pb::SetXattrResponse> MetaServiceImpl::SetXattr(const pb::SetXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  if (req.value().size() > kMaxXattrValueBytes) {
    return FsError(E2BIG, absl::StrCat("xattr value of ", req.value().size(),
                                       " bytes is larger than ", kMaxXattrValueBytes));
  }
  if ((req.flags() & ~(kXattrCreate | kXattrReplace)) != 0) {
    return FsError(EINVAL, absl::StrCat("unsupported xattr flags ", req.flags()));
  }
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("SetXattr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::SetXattrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    RETURN_IF_ERROR(CheckXattrAccess(asker.cred, n.node(), req.name(), /*write=*/true));
    ASSIGN_OR_RETURN(int64_t exists, QueryInt(tx.db, 0,
                                              "SELECT 1 FROM xattrs WHERE volume_id = ? AND "
                                              "ino = ? AND name = ?",
                                              vol, n.ino, Blob{req.name()}));
    if ((req.flags() & kXattrCreate) && exists) {
      return FsError(EEXIST, absl::StrCat("xattr ", Quote(req.name()), " exists"));
    }
    if ((req.flags() & kXattrReplace) && !exists) {
      return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    }
    RETURN_IF_ERROR(Exec(tx.db,
                         "INSERT INTO xattrs (volume_id, ino, name, value) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (volume_id, ino, name) DO UPDATE SET value = excluded.value",
                         vol, n.ino, Blob{req.name()}, Blob{req.value()}));
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    return pb::SetXattrResponse();
  });
}

absl::StatusOr<pb::GetXattrResponse> MetaServiceImpl::GetXattr(const pb::GetXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::GetXattrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    RETURN_IF_ERROR(CheckXattrAccess(asker.cred, n.node(), req.name(), /*write=*/false));
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT value FROM xattrs WHERE volume_id = ? AND ino = ? "
                                    "AND name = ?",
                                    req.volume_id(), n.ino, Blob{req.name()}));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    pb::GetXattrResponse r;
    r.set_value(st->ColumnBlob(0));
    return r;
  });
}

absl::StatusOr<pb::ListXattrResponse> MetaServiceImpl::ListXattr(const pb::ListXattrRequest& req) {
  RETURN_IF_ERROR(AskerOf(req).status());  // listxattr needs no permission (as in the kernel)
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListXattrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT name FROM xattrs WHERE volume_id = ? AND ino = ? "
                                    "ORDER BY name",
                                    req.volume_id(), n.ino));
    pb::ListXattrResponse r;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      r.add_names(st->ColumnBlob(0));
    }
    return r;
  });
}

absl::StatusOr<pb::RemoveXattrResponse> MetaServiceImpl::RemoveXattr(
    const pb::RemoveXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return WriteOnce("RemoveXattr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RemoveXattrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    RETURN_IF_ERROR(CheckXattrAccess(asker.cred, n.node(), req.name(), /*write=*/true));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM xattrs WHERE volume_id = ? AND ino = ? AND name = ?",
                         vol, n.ino, Blob{req.name()}));
    if (tx.db->Changes() == 0) return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    return pb::RemoveXattrResponse();
  });
}

absl::StatusOr<pb::StatFsResponse> MetaServiceImpl::StatFs(const pb::StatFsRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::StatFsResponse> {
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(req.volume_id()));
    ASSIGN_OR_RETURN(int64_t used, QueryInt(tx.db, 0,
                                            "SELECT COALESCE(SUM(object_size), 0) FROM blocks "
                                            "WHERE volume_id = ?",
                                            v.id));
    ASSIGN_OR_RETURN(int64_t inodes, QueryInt(tx.db, 0,
                                              "SELECT COUNT(*) FROM inodes WHERE volume_id = ?",
                                              v.id));
    pb::StatFsResponse r;
    r.set_used_bytes(static_cast<uint64_t>(used));
    r.set_inodes(static_cast<uint64_t>(inodes));
    r.set_block_size(v.block_size);
    return r;
  });
}

absl::StatusOr<pb::SyncResponse> MetaServiceImpl::Sync(const pb::SyncRequest& /*req*/) {
  // The log is one file for every volume: syncing it covers the caller's volume (and others').
  if (wal_sync_ != nullptr) RETURN_IF_ERROR(wal_sync_->Sync());
  return pb::SyncResponse();
}

}  // namespace nighfs::meta::internal
