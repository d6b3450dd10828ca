#include "mount/fuse_adapter.h"
#include "mount/fuse_conn.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/time/time.h"
#include "common/errno_status.h"
#include "common/logging.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;

FuseContext* Ctx(fuse_req_t req) { return static_cast<FuseContext*>(fuse_req_userdata(req)); }
FileSystem* Fs(fuse_req_t req) { return Ctx(req)->fs; }

// The process behind `req`. Root's groups are not asked for: the server lets root pass every
// check they could matter for.
Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Caller caller{c->uid, c->gid, {}};
  if (c->uid == 0 || c->pid == 0) return caller;  // pid 0: a request with no process (release)
  // An error (the process is gone, /proc unreadable) gives no supplementary groups, which can
  // only refuse more, never allow more.
  const pid_t pid = c->pid;
  caller.groups =
      Ctx(req)->groups.Get(c->pid, c->uid, c->gid, [pid] { return ReadProcessGroups(pid); });
  return caller;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

void ReplyError(fuse_req_t req, const absl::Status& s) {
  int err = StatusToErrno(s);
  if (err == 0) err = EIO;
  if (err == EIO) {
    NIGHFS_LOG(ERROR) << "request failed with EIO: " << s;
  } else {
    NIGHFS_LOG(DEBUG) << "request failed: " << s;
  }
  fuse_reply_err(req, err);
}

// An Attr with ino 0 (only from FileSystem::LookupForKernel) is a negative entry: the kernel
// keeps "no such name" for entry_timeout.
void ReplyEntry(fuse_req_t req, const absl::StatusOr<pb::Attr>& attr) {
  if (!attr.ok()) return ReplyError(req, attr.status());
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  if (attr->ino() == 0) {
    e.entry_timeout = Seconds(Fs(req)->options().entry_timeout);
    fuse_reply_entry(req, &e);
    return;
  }
  e.ino = attr->ino();
  e.generation = 1;
  e.attr = AttrToStat(*attr, Ctx(req)->block_size);
  e.attr_timeout = Seconds(Fs(req)->options().attr_timeout);
  e.entry_timeout = Seconds(Fs(req)->options().entry_timeout);
  fuse_reply_entry(req, &e);
}

void ReplyAttr(fuse_req_t req, const absl::StatusOr<pb::Attr>& attr) {
  if (!attr.ok()) return ReplyError(req, attr.status());
  struct stat st = AttrToStat(*attr, Ctx(req)->block_size);
  fuse_reply_attr(req, &st, Seconds(Fs(req)->options().attr_timeout));
}

void ReplyStatus(fuse_req_t req, const absl::Status& s) {
  if (!s.ok()) return ReplyError(req, s);
  fuse_reply_err(req, 0);
}

// Replies to a getxattr/listxattr: the size when asked for it, ERANGE when it doesn't fit.
void ReplyXattr(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (value.size() > size) {
    fuse_reply_err(req, ERANGE);
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

void Init(void* userdata, fuse_conn_info* conn) { ConfigureConnection(conn); }

void Destroy(void* userdata) {
  auto* ctx = static_cast<FuseContext*>(userdata);
  // libfuse calls this from fuse_session_destroy too, after main has flushed and dropped fs.
  if (ctx->fs == nullptr) return;
  absl::Status s = ctx->fs->FlushAll();
  if (!s.ok()) NIGHFS_LOG(ERROR) << "flush at unmount failed: " << s;
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ScopedCaller as(CallerOf(req));
  ReplyEntry(req, Fs(req)->LookupForKernel(parent, name));
}

// Valid replies: fuse_reply_none
void Forget(fuse_req_t req, fuse_ino_t, uint64_t) { fuse_reply_none(req); }
void ForgetMulti(fuse_req_t req, size_t, fuse_forget_data*) { fuse_reply_none(req); }

// Valid replies: fuse_reply_attr, fuse_reply_err
void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  ScopedCaller as(CallerOf(req));
  ReplyAttr(req, Fs(req)->GetAttr(ino));
}

// Valid replies: fuse_reply_attr, fuse_reply_err
void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  SetAttrArgs a;
  if (fi != nullptr) a.fh = fi->fh;
  if (to_set & FUSE_SET_ATTR_MODE) {
    a.valid |= pb::SETATTR_MODE;
    a.mode = attr->st_mode & 07777;
  }
  if (to_set & FUSE_SET_ATTR_UID) {
    a.valid |= pb::SETATTR_UID;
    a.uid = attr->st_uid;
  }
  if (to_set & FUSE_SET_ATTR_GID) {
    a.valid |= pb::SETATTR_GID;
    a.gid = attr->st_gid;
  }
  if (to_set & FUSE_SET_ATTR_SIZE) {
    a.valid |= pb::SETATTR_SIZE;
    a.size = static_cast<uint64_t>(attr->st_size);
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    a.valid |= pb::SETATTR_ATIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    a.valid |= pb::SETATTR_ATIME;
    a.atime_ns = attr->st_atim.tv_sec * 1000000000LL + attr->st_atim.tv_nsec;
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    a.valid |= pb::SETATTR_MTIME_NOW;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    a.valid |= pb::SETATTR_MTIME;
    a.mtime_ns = attr->st_mtim.tv_sec * 1000000000LL + attr->st_mtim.tv_nsec;
  }
  ReplyAttr(req, Fs(req)->SetAttr(ino, a));
}

// Valid replies: fuse_reply_readlink, fuse_reply_err
void Readlink(fuse_req_t req, fuse_ino_t ino) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<std::string> t = Fs(req)->Readlink(ino);
  if (!t.ok()) return ReplyError(req, t.status());
  fuse_reply_readlink(req, t->c_str());
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  ScopedCaller as(CallerOf(req));
  ReplyEntry(req, Fs(req)->Mknod(CurrentCaller(), parent, name, mode, rdev));
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  ScopedCaller as(CallerOf(req));
  ReplyEntry(req, Fs(req)->Mkdir(CurrentCaller(), parent, name, mode));
}

// Valid replies: fuse_reply_err
void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Unlink(parent, name));
}

// Valid replies: fuse_reply_err
void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Rmdir(parent, name));
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  ScopedCaller as(CallerOf(req));
  ReplyEntry(req, Fs(req)->Symlink(CurrentCaller(), parent, name, link));
}

// Valid replies: fuse_reply_err
void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Rename(parent, name, newparent, newname, flags));
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  ScopedCaller as(CallerOf(req));
  ReplyEntry(req, Fs(req)->Link(ino, newparent, newname));
}

// Valid replies: fuse_reply_open, fuse_reply_err
void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<uint64_t> fh = Fs(req)->Open(ino, fi->flags);
  if (!fh.ok()) return ReplyError(req, fh.status());
  fi->fh = *fh;
  // Close-to-open: the page cache is dropped at open, so another mount's writes are seen,
  // unless the open found the file unchanged since the page cache was filled.
  fi->keep_cache = Fs(req)->KeepCache(*fh) ? 1 : 0;
  fuse_reply_open(req, fi);
}

// Valid replies: fuse_reply_create, fuse_reply_err
void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  auto made = Fs(req)->Create(CurrentCaller(), parent, name, mode, fi->flags);
  if (!made.ok()) return ReplyError(req, made.status());
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = made->first.ino();
  e.generation = 1;
  e.attr = AttrToStat(made->first, Ctx(req)->block_size);
  e.attr_timeout = Seconds(Fs(req)->options().attr_timeout);
  e.entry_timeout = Seconds(Fs(req)->options().entry_timeout);
  fi->fh = made->second;
  fi->keep_cache = 0;
  if (fuse_reply_create(req, &e, fi) == -ENOENT) {
    (void)Fs(req)->Release(made->second);  // the caller was interrupted
  }
}

// Valid replies: fuse_reply_buf, fuse_reply_err
void Read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<std::string> data = Fs(req)->Read(fi->fh, static_cast<uint64_t>(off), size);
  if (!data.ok()) return ReplyError(req, data.status());
  fuse_reply_buf(req, data->data(), data->size());
}

// Valid replies: fuse_reply_write, fuse_reply_err
void Write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off,
           fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<size_t> n =
      Fs(req)->Write(fi->fh, static_cast<uint64_t>(off), std::string_view(buf, size));
  if (!n.ok()) return ReplyError(req, n.status());
  fuse_reply_write(req, *n);
}

// Valid replies: fuse_reply_err
void Flush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Flush(fi->fh));
}

// Valid replies: fuse_reply_err
void Release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Release(fi->fh));
}

// Valid replies: fuse_reply_err
void Fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Fsync(fi->fh));
}

// Valid replies: fuse_reply_lseek, fuse_reply_err
// The kernel sends only SEEK_DATA and SEEK_HOLE (it does SEEK_SET/CUR/END itself). Never
// ENOSYS: the kernel would then treat the whole file as data for good.
void Lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<uint64_t> pos = Fs(req)->Lseek(fi->fh, static_cast<int64_t>(off), whence);
  if (!pos.ok()) return ReplyError(req, pos.status());
  fuse_reply_lseek(req, static_cast<off_t>(*pos));
}

// Valid replies: fuse_reply_err
// The kernel has already checked the handle's mode, cleared suid/sgid (file_modified) and
// written back the range's dirty pages; it updates i_size and drops the punched page cache
// after the reply. Unsupported modes get EOPNOTSUPP, never ENOSYS (which disables them all).
void Fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length,
               fuse_file_info* fi) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->Fallocate(fi->fh, mode, static_cast<int64_t>(offset),
                                      static_cast<int64_t>(length)));
}

// Valid replies: fuse_reply_open, fuse_reply_err
void OpenDir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

void DoReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  // An entry takes 24 bytes plus its name (more with attributes): ask for about what fits.
  const size_t estimate = size / (plus ? 160 : 32) + 1;
  auto entries = Fs(req)->ReadDir(ino, static_cast<uint64_t>(off), estimate, plus);
  if (!entries.ok()) return ReplyError(req, entries.status());
  std::string buf(size, '\0');
  size_t used = 0;
  for (const DirEntryOut& e : *entries) {
    size_t n;
    if (plus) {
      fuse_entry_param p;
      std::memset(&p, 0, sizeof p);
      p.ino = e.ino;
      p.generation = 1;
      p.attr = AttrToStat(e.attr, Ctx(req)->block_size);
      p.attr.st_ino = e.ino;
      p.attr.st_mode = e.attr.mode() != 0 ? e.attr.mode() : e.mode;
      p.attr_timeout = Seconds(Fs(req)->options().attr_timeout);
      p.entry_timeout = Seconds(Fs(req)->options().entry_timeout);
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p,
                                 static_cast<off_t>(e.next_offset));
    } else {
      struct stat st;
      std::memset(&st, 0, sizeof st);
      st.st_ino = e.ino;
      st.st_mode = e.mode;
      n = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &st,
                            static_cast<off_t>(e.next_offset));
    }
    if (n > size - used) break;  // did not fit: the next call starts with it
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

// Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_err
void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ScopedCaller as(CallerOf(req));
  DoReadDir(req, ino, size, off, false);
}
void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  ScopedCaller as(CallerOf(req));
  DoReadDir(req, ino, size, off, true);
}

// Valid replies: fuse_reply_err
void ReleaseDir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void FsyncDir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->FsyncDir());
}

// Valid replies: fuse_reply_statfs, fuse_reply_err
void StatFs(fuse_req_t req, fuse_ino_t) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<struct statvfs> sv = Fs(req)->StatFs();
  if (!sv.ok()) return ReplyError(req, sv.status());
  fuse_reply_statfs(req, &*sv);
}

// Valid replies: fuse_reply_err
void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->SetXattr(ino, name, std::string_view(value, size), flags));
}

// Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_xattr, fuse_reply_err
void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<std::string> v = Fs(req)->GetXattr(ino, name);
  if (!v.ok()) return ReplyError(req, v.status());
  ReplyXattr(req, *v, size);
}

// Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_xattr, fuse_reply_err
void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ScopedCaller as(CallerOf(req));
  absl::StatusOr<std::vector<std::string>> names = Fs(req)->ListXattr(ino);
  if (!names.ok()) return ReplyError(req, names.status());
  std::string list;
  for (const std::string& n : *names) {
    list += n;
    list.push_back('\0');
  }
  ReplyXattr(req, list, size);
}

// Valid replies: fuse_reply_err
void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ScopedCaller as(CallerOf(req));
  ReplyStatus(req, Fs(req)->RemoveXattr(ino, name));
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = Init;
  ops.destroy = Destroy;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.readlink = Readlink;
  ops.mknod = Mknod;
  ops.mkdir = Mkdir;
  ops.unlink = Unlink;
  ops.rmdir = Rmdir;
  ops.symlink = Symlink;
  ops.rename = Rename;
  ops.link = Link;
  ops.open = Open;
  ops.create = Create;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Flush;
  ops.release = Release;
  ops.fsync = Fsync;
  ops.lseek = Lseek;
  ops.fallocate = Fallocate;
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.readdirplus = ReadDirPlus;
  ops.releasedir = ReleaseDir;
  ops.fsyncdir = FsyncDir;
  ops.statfs = StatFs;
  ops.setxattr = SetXattr;
  ops.getxattr = GetXattr;
  ops.listxattr = ListXattr;
  ops.removexattr = RemoveXattr;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops* NighfsFuseOps() {
  static const fuse_lowlevel_ops ops = MakeOps();
  return &ops;
}

}  // namespace nighfs::fs
