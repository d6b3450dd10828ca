// nullfs: the FUSE-overhead baseline of scripts/bench.sh.
//
// A file system on the libfuse3 low-level API that stores no data: reads return zeros and
// writes are accepted and discarded. Whatever it takes to move a byte or answer a stat through
// nullfs is the cost of FUSE itself (kernel crossings, request copies, libfuse's worker pool)
// on this machine; nighfs can only be slower, and the gap is what nighfs adds.
//
// The root directory holds one preset regular file (default "null", 1 TiB) and any regular
// files created at run time, so the same fio jobs and metadata loops run unchanged on nullfs,
// nighfs and a local disk. A file keeps only its attributes: its size follows writes and
// truncates, its content reads as zeros. No subdirectories, links or xattrs (ENOSYS/EPERM).
//
// The connection is negotiated exactly as mount.nighfs does (mount/fuse_adapter.cc, Init):
// 1 MiB max_write and max_readahead, async reads, parallel dirops, readdirplus, no writeback
// cache, keep_cache off at open; and it runs the same multi-threaded loop (64 threads max,
// 16 idle). Change both together, or the comparison means nothing.
//
// usage: nullfs [--size=BYTES] [--name=NAME] MOUNTPOINT
// Runs in the foreground until unmounted (fusermount3 -u MOUNTPOINT) or sent SIGTERM/SIGINT.
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include "mount/fuse_conn.h"
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nighfs::bench {
namespace {

constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
// The same timeouts as mount.nighfs's defaults (attr_timeout=1, entry_timeout=1).
constexpr double kAttrTimeout = 1.0;
constexpr double kEntryTimeout = 1.0;
// Readdir cookies of "." and ".."; entries get increasing cookies from kFirstCookie.
constexpr uint64_t kFirstCookie = 3;

struct Inode {
  struct stat st;
  // Kernel references (lookup, create, readdirplus) not yet forgotten.
  uint64_t nlookup = 0;
};

// All state of the mount. One mutex: nullfs does so little per request that finer locking
// would not show in any benchmark, and a single lock keeps link counts and names consistent.
class NullFs {
 public:
  NullFs(std::string preset_name, uint64_t preset_size) {
    const timespec now = Now();
    Inode root;
    std::memset(&root.st, 0, sizeof root.st);
    root.st.st_ino = kRootIno;
    root.st.st_mode = S_IFDIR | 0777;
    root.st.st_nlink = 2;
    root.st.st_atim = root.st.st_mtim = root.st.st_ctim = now;
    root.nlookup = 1;  // the kernel's implicit reference, never forgotten
    absl::MutexLock l(&mu_);
    inodes_.emplace(kRootIno, root);
    Inode* preset = NewFileLocked(0644, 0, 0);
    preset->st.st_size = static_cast<off_t>(preset_size);
    preset->st.st_blocks = 0;
    AddNameLocked(preset_name, preset->st.st_ino);
  }

  // The attributes of `name` in the root, counting one kernel reference; ENOENT if absent.
  int Lookup(fuse_ino_t parent, const std::string& name, struct stat* out) {
    if (parent != kRootIno) return ENOENT;
    absl::MutexLock l(&mu_);
    auto it = names_.find(name);
    if (it == names_.end()) return ENOENT;
    Inode& in = inodes_.at(it->second.ino);
    ++in.nlookup;
    *out = in.st;
    return 0;
  }

  void Forget(fuse_ino_t ino, uint64_t n) {
    absl::MutexLock l(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end() || ino == kRootIno) return;
    it->second.nlookup -= std::min(n, it->second.nlookup);
    MaybeDropLocked(it);
  }

  int GetAttr(fuse_ino_t ino, struct stat* out) {
    absl::MutexLock l(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return ENOENT;
    *out = it->second.st;
    return 0;
  }

  int SetAttr(fuse_ino_t ino, const struct stat& in, int to_set, struct stat* out) {
    const timespec now = Now();
    absl::MutexLock l(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return ENOENT;
    struct stat& st = it->second.st;
    if (to_set & FUSE_SET_ATTR_SIZE) {
      if (S_ISDIR(st.st_mode)) return EISDIR;
      st.st_size = in.st_size;
      st.st_mtim = now;
    }
    if (to_set & FUSE_SET_ATTR_MODE) st.st_mode = (st.st_mode & S_IFMT) | (in.st_mode & 07777);
    if (to_set & FUSE_SET_ATTR_UID) st.st_uid = in.st_uid;
    if (to_set & FUSE_SET_ATTR_GID) st.st_gid = in.st_gid;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      st.st_atim = now;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      st.st_atim = in.st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      st.st_mtim = now;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      st.st_mtim = in.st_mtim;
    }
    st.st_ctim = now;
    *out = st;
    return 0;
  }

  // Creates a regular file in the root (O_EXCL is the kernel's check plus ours: EEXIST).
  int Create(fuse_ino_t parent, const std::string& name, mode_t mode, uid_t uid, gid_t gid,
             struct stat* out) {
    if (parent != kRootIno) return ENOENT;
    if (!S_ISREG(mode)) return EPERM;
    if (name.size() > 255) return ENAMETOOLONG;
    absl::MutexLock l(&mu_);
    if (names_.count(name) != 0) return EEXIST;
    Inode* in = NewFileLocked(mode & 07777, uid, gid);
    ++in->nlookup;
    AddNameLocked(name, in->st.st_ino);
    TouchRootLocked();
    *out = in->st;
    return 0;
  }

  int Unlink(fuse_ino_t parent, const std::string& name) {
    if (parent != kRootIno) return ENOENT;
    absl::MutexLock l(&mu_);
    auto it = names_.find(name);
    if (it == names_.end()) return ENOENT;
    const fuse_ino_t ino = it->second.ino;
    entries_.erase(it->second.cookie);
    names_.erase(it);
    auto in = inodes_.find(ino);
    in->second.st.st_nlink = 0;
    in->second.st.st_ctim = Now();
    TouchRootLocked();
    MaybeDropLocked(in);
    return 0;
  }

  // The byte count a read of `size` at `off` returns: zeros up to the end of the file.
  int ReadSize(fuse_ino_t ino, uint64_t off, size_t size, size_t* n) {
    absl::MutexLock l(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return ENOENT;
    const uint64_t file_size = static_cast<uint64_t>(it->second.st.st_size);
    *n = off >= file_size ? 0 : static_cast<size_t>(std::min<uint64_t>(size, file_size - off));
    return 0;
  }

  // Discards the data; only the size and mtime change.
  int Write(fuse_ino_t ino, uint64_t off, size_t size) {
    absl::MutexLock l(&mu_);
    auto it = inodes_.find(ino);
    if (it == inodes_.end()) return ENOENT;
    struct stat& st = it->second.st;
    st.st_size = std::max<off_t>(st.st_size, static_cast<off_t>(off + size));
    st.st_mtim = st.st_ctim = Now();
    return 0;
  }

  struct DirEntry {
    std::string name;
    uint64_t cookie;  // the offset that resumes after this entry
    struct stat st;
  };

  // Up to `max` root entries after cookie `off` (0 = from the start). With `plus`, each entry
  // other than "." and ".." counts one kernel reference only once actually sent: the caller
  // calls Forget for entries that did not fit.
  std::vector<DirEntry> ReadDir(uint64_t off, size_t max, bool plus) {
    std::vector<DirEntry> out;
    absl::MutexLock l(&mu_);
    const Inode& root = inodes_.at(kRootIno);
    if (off < 1 && out.size() < max) out.push_back({".", 1, root.st});
    if (off < 2 && out.size() < max) out.push_back({"..", 2, root.st});
    for (auto it = entries_.upper_bound(std::max<uint64_t>(off, kFirstCookie - 1));
         it != entries_.end() && out.size() < max; ++it) {
      Inode& in = inodes_.at(it->second.ino);
      if (plus) ++in.nlookup;
      out.push_back({it->second.name, it->first, in.st});
    }
    return out;
  }

  void StatFs(struct statvfs* sv) {
    absl::MutexLock l(&mu_);
    std::memset(sv, 0, sizeof *sv);
    sv->f_bsize = sv->f_frsize = 4096;
    sv->f_blocks = sv->f_bfree = sv->f_bavail = uint64_t{1} << 40;  // 4 PiB: never full
    sv->f_files = uint64_t{1} << 32;
    sv->f_ffree = sv->f_favail = sv->f_files - inodes_.size();
    sv->f_namemax = 255;
  }

 private:
  struct Name {
    fuse_ino_t ino;
    uint64_t cookie;
  };
  struct Slot {
    std::string name;
    fuse_ino_t ino;
  };

  static timespec Now() {
    timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return t;
  }

  Inode* NewFileLocked(mode_t perm, uid_t uid, gid_t gid) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const timespec now = Now();
    Inode in;
    std::memset(&in.st, 0, sizeof in.st);
    in.st.st_ino = next_ino_++;
    in.st.st_mode = S_IFREG | perm;
    in.st.st_nlink = 1;
    in.st.st_uid = uid;
    in.st.st_gid = gid;
    in.st.st_blksize = 1 << 20;
    in.st.st_atim = in.st.st_mtim = in.st.st_ctim = now;
    return &inodes_.emplace(in.st.st_ino, in).first->second;
  }

  void AddNameLocked(const std::string& name, fuse_ino_t ino) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t cookie = next_cookie_++;
    names_.emplace(name, Name{ino, cookie});
    entries_.emplace(cookie, Slot{name, ino});
  }

  void TouchRootLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    struct stat& st = inodes_.at(kRootIno).st;
    st.st_mtim = st.st_ctim = Now();
  }

  // An inode goes when it has neither a name nor a kernel reference (open files hold one).
  void MaybeDropLocked(std::unordered_map<fuse_ino_t, Inode>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (it->first != kRootIno && it->second.st.st_nlink == 0 && it->second.nlookup == 0) {
      inodes_.erase(it);
    }
  }

  absl::Mutex mu_;
  std::unordered_map<fuse_ino_t, Inode> inodes_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, Name> names_ ABSL_GUARDED_BY(mu_);
  // Root entries by readdir cookie: cookies never move, so a listing resumes correctly while
  // files are created and removed between readdir calls.
  std::map<uint64_t, Slot> entries_ ABSL_GUARDED_BY(mu_);
  fuse_ino_t next_ino_ ABSL_GUARDED_BY(mu_) = kRootIno + 1;
  uint64_t next_cookie_ ABSL_GUARDED_BY(mu_) = kFirstCookie;
};

NullFs* Fs(fuse_req_t req) { return static_cast<NullFs*>(fuse_req_userdata(req)); }

// Reads are answered from this block of zeros; a larger request (the kernel caps them at
// max_pages, 1 MiB here) gets a buffer of its own.
constexpr size_t kZeroBytes = 1 << 20;
const char* Zeros() {
  static const std::vector<char>* const zeros = new std::vector<char>(kZeroBytes, 0);
  return zeros->data();
}

void ReplyEntry(fuse_req_t req, const struct stat& st) {
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = st.st_ino;
  e.generation = 1;
  e.attr = st;
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kEntryTimeout;
  fuse_reply_entry(req, &e);
}

// The same connection settings as mount.nighfs.
void Init(void*, fuse_conn_info* conn) { nighfs::fs::ConfigureConnection(conn); }

// Valid replies: fuse_reply_entry, fuse_reply_err
void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  struct stat st;
  if (int err = Fs(req)->Lookup(parent, name, &st); err != 0) return (void)fuse_reply_err(req, err);
  ReplyEntry(req, st);
}

// Valid replies: fuse_reply_none
void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Fs(req)->Forget(ino, nlookup);
  fuse_reply_none(req);
}

// Valid replies: fuse_reply_none
void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Fs(req)->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

// Valid replies: fuse_reply_attr, fuse_reply_err
void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  struct stat st;
  if (int err = Fs(req)->GetAttr(ino, &st); err != 0) return (void)fuse_reply_err(req, err);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// Valid replies: fuse_reply_attr, fuse_reply_err
void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  struct stat st;
  if (int err = Fs(req)->SetAttr(ino, *attr, to_set, &st); err != 0) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// Valid replies: fuse_reply_entry, fuse_reply_err
void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  const fuse_ctx* c = fuse_req_ctx(req);
  struct stat st;
  if (int err = Fs(req)->Create(parent, name, mode, c->uid, c->gid, &st); err != 0) {
    return (void)fuse_reply_err(req, err);
  }
  ReplyEntry(req, st);
}

// Valid replies: fuse_reply_create, fuse_reply_err
void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
            fuse_file_info* fi) {
  const fuse_ctx* c = fuse_req_ctx(req);
  struct stat st;
  if (int err = Fs(req)->Create(parent, name, mode, c->uid, c->gid, &st); err != 0) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_entry_param e;
  std::memset(&e, 0, sizeof e);
  e.ino = st.st_ino;
  e.generation = 1;
  e.attr = st;
  e.attr_timeout = kAttrTimeout;
  e.entry_timeout = kEntryTimeout;
  fi->fh = 0;
  fi->keep_cache = 0;
  // -ENOENT: the caller was interrupted and the kernel took no reference.
  if (fuse_reply_create(req, &e, fi) == -ENOENT) Fs(req)->Forget(st.st_ino, 1);
}

// Valid replies: fuse_reply_err
void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, Fs(req)->Unlink(parent, name));
}

// Valid replies: fuse_reply_open, fuse_reply_err
void Open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  struct stat st;
  if (int err = Fs(req)->GetAttr(ino, &st); err != 0) return (void)fuse_reply_err(req, err);
  if (S_ISDIR(st.st_mode)) return (void)fuse_reply_err(req, EISDIR);
  if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
    struct stat zero;
    std::memset(&zero, 0, sizeof zero);
    if (int err = Fs(req)->SetAttr(ino, zero, FUSE_SET_ATTR_SIZE, &st); err != 0) {
      return (void)fuse_reply_err(req, err);
    }
  }
  fi->fh = 0;
  fi->keep_cache = 0;  // as nighfs (close-to-open): the page cache is dropped at open
  fuse_reply_open(req, fi);
}

// Valid replies: fuse_reply_buf, fuse_reply_err
void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  size_t n = 0;
  if (int err = Fs(req)->ReadSize(ino, static_cast<uint64_t>(off), size, &n); err != 0) {
    return (void)fuse_reply_err(req, err);
  }
  if (n <= kZeroBytes) return (void)fuse_reply_buf(req, Zeros(), n);
  std::vector<char> big(n, 0);
  fuse_reply_buf(req, big.data(), n);
}

// Valid replies: fuse_reply_write, fuse_reply_err
void Write(fuse_req_t req, fuse_ino_t ino, const char*, size_t size, off_t off,
           fuse_file_info*) {
  if (int err = Fs(req)->Write(ino, static_cast<uint64_t>(off), size); err != 0) {
    return (void)fuse_reply_err(req, err);
  }
  fuse_reply_write(req, size);
}

// Valid replies: fuse_reply_err
void Ok(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void FsyncOk(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

// Valid replies: fuse_reply_open, fuse_reply_err
void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  if (ino != kRootIno) return (void)fuse_reply_err(req, ENOTDIR);
  fi->fh = 0;
  fuse_reply_open(req, fi);
}

void DoReadDir(fuse_req_t req, size_t size, off_t off, bool plus) {
  // As nighfs: ask for about as many entries as fit (24 bytes plus a name, more with attrs).
  const size_t estimate = size / (plus ? 160 : 32) + 1;
  std::vector<NullFs::DirEntry> entries =
      Fs(req)->ReadDir(static_cast<uint64_t>(off), estimate, plus);
  std::vector<char> buf(size);
  size_t used = 0;
  size_t i = 0;
  for (; i < entries.size(); ++i) {
    const NullFs::DirEntry& e = entries[i];
    size_t n;
    if (plus) {
      fuse_entry_param p;
      std::memset(&p, 0, sizeof p);
      p.ino = e.st.st_ino;
      p.generation = 1;
      p.attr = e.st;
      p.attr_timeout = kAttrTimeout;
      p.entry_timeout = kEntryTimeout;
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, e.name.c_str(), &p,
                                 static_cast<off_t>(e.cookie));
    } else {
      n = fuse_add_direntry(req, buf.data() + used, size - used, e.name.c_str(), &e.st,
                            static_cast<off_t>(e.cookie));
    }
    if (n > size - used) break;  // did not fit: the next call starts with it
    used += n;
  }
  // Readdirplus counted a reference for every entry it returned; give back the unsent ones.
  if (plus) {
    for (; i < entries.size(); ++i) {
      if (entries[i].cookie >= kFirstCookie) Fs(req)->Forget(entries[i].st.st_ino, 1);
    }
  }
  fuse_reply_buf(req, buf.data(), used);
}

// Valid replies: fuse_reply_buf, fuse_reply_data, fuse_reply_err
void ReadDir(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  DoReadDir(req, size, off, false);
}
void ReadDirPlus(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  DoReadDir(req, size, off, true);
}

// Valid replies: fuse_reply_statfs, fuse_reply_err
void StatFs(fuse_req_t req, fuse_ino_t) {
  struct statvfs sv;
  Fs(req)->StatFs(&sv);
  fuse_reply_statfs(req, &sv);
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.forget_multi = ForgetMulti;
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.mknod = Mknod;
  ops.create = Create;
  ops.unlink = Unlink;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Ok;
  ops.release = Ok;
  ops.fsync = FsyncOk;
  ops.opendir = OpenDir;
  ops.readdir = ReadDir;
  ops.readdirplus = ReadDirPlus;
  ops.releasedir = Ok;
  ops.fsyncdir = FsyncOk;
  ops.statfs = StatFs;
  return ops;
}

// Parses "123", "4K", "1M", "2G", "1T" (powers of 1024). False on anything else.
bool ParseSize(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str()) return false;
  int shift = 0;
  const std::string unit(end);
  if (unit.empty()) {
    shift = 0;
  } else if (unit == "K" || unit == "k") {
    shift = 10;
  } else if (unit == "M") {
    shift = 20;
  } else if (unit == "G") {
    shift = 30;
  } else if (unit == "T") {
    shift = 40;
  } else {
    return false;
  }
  if (shift > 0 && v > (~0ULL >> shift)) return false;
  *out = static_cast<uint64_t>(v) << shift;
  // st_size is a signed off_t.
  return *out <= static_cast<uint64_t>(INT64_MAX);
}

int Usage() {
  std::fprintf(stderr, "usage: nullfs [--size=BYTES] [--name=NAME] MOUNTPOINT\n"
                       "  --size  size of the preset file, e.g. 1T (default), 64G\n"
                       "  --name  name of the preset file (default: null)\n");
  return 2;
}

int Run(int argc, char** argv) {
  uint64_t size = uint64_t{1} << 40;
  std::string name = "null";
  std::string mount_point;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--size=", 0) == 0) {
      if (!ParseSize(a.substr(7), &size)) return Usage();
    } else if (a.rfind("--name=", 0) == 0) {
      name = a.substr(7);
      if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
        return Usage();
      }
    } else if (a == "-h" || a == "--help") {
      Usage();
      return 0;
    } else if (mount_point.empty() && !a.empty() && a[0] != '-') {
      mount_point = a;
    } else {
      return Usage();
    }
  }
  if (mount_point.empty()) return Usage();

  NullFs fs(name, size);
  static const fuse_lowlevel_ops ops = MakeOps();
  // The same kernel options as mount.nighfs, minus its naming.
  std::vector<std::string> fargs = {"nullfs", "-o",
                                    "default_permissions,fsname=nullfs,subtype=nullfs"};
  std::vector<char*> fargv;
  for (std::string& s : fargs) fargv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fargv.size()), fargv.data());
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, &fs);
  if (se == nullptr) return 1;
  int rc = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, mount_point.c_str()) == 0) {
      std::fprintf(stderr, "nullfs: mounted at %s (preset file %s, %llu bytes)\n",
                   mount_point.c_str(), name.c_str(), static_cast<unsigned long long>(size));
      fuse_loop_config* cfg = fuse_loop_cfg_create();
      fuse_loop_cfg_set_max_threads(cfg, 64);
      fuse_loop_cfg_set_idle_threads(cfg, 16);
      rc = fuse_session_loop_mt(se, cfg) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(cfg);
      fuse_session_unmount(se);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  return rc;
}

}  // namespace
}  // namespace nighfs::bench

int main(int argc, char** argv) { return nighfs::bench::Run(argc, argv); }
