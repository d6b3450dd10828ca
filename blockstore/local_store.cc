// A block store in a local (or NFS-mounted) folder: one file per object, the key being the
// file's path below the root.
//
// Durability: Put acknowledges a block only once a crash can no longer lose or tear it. The
// data goes to a uniquely named temp file in the destination folder, which is fsynced, renamed
// over the final name (atomic within a file system) and then the folder itself is fsynced so
// the new name survives too. Folders that Put creates are made durable the same way, by
// fsyncing their parent. A crash can leave temp files (".nighfs-tmp.*") behind; they are never
// visible as objects. Put and Check remove those older than kStaleTempAge from the folder they
// work in (each folder at most once per kSweepInterval per store): a live writer, in this
// process or another, touches its temp file far more often than that.
//
// Objects and "folders" share one namespace here, unlike in object stores: with an object
// "a", a key "a/b" cannot be stored (and vice versa). nighfs's own keys (BlockKey) never collide
// this way. Delete leaves empty folders in place: removing them would race with a concurrent
// Put into the same folder, and BlockKey reuses the same 256 folders forever.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/scoped_fd.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

constexpr std::string_view kTempPrefix = ".nighfs-tmp";
// A temp file untouched this long belongs to a writer that died: a Put writes a block (at most
// 64 MiB) in one go, which takes seconds even on a slow disk.
constexpr absl::Duration kStaleTempAge = absl::Hours(1);
constexpr absl::Duration kSweepInterval = absl::Minutes(10);
// Block data is file contents whose owners chose their own permissions; the store keeps it
// private to the daemon's user.
constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;
// Folders above the root that Check() creates, like `mkdir -p`.
constexpr mode_t kAncestorDirMode = 0755;

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
         c == '-' || c == '/';
}

// Whether `name`, a directory entry, can be (part of) a key. Anything else in the folder
// (lost+found, temp files, files copied in by hand) is not an object.
bool IsKeySegment(std::string_view name) {
  if (name.empty() || name == "." || name == "..") return false;
  if (absl::StartsWith(AbslView(name), AbslView(kTempPrefix))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return c != '/' && IsKeyChar(c); });
}

template <typename F>
auto RetryOnEintr(F f) {
  while (true) {
    auto r = f();
    if (r >= 0 || errno != EINTR) return r;
  }
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return PosixError(errno, absl::StrCat("write ", what));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = RetryOnEintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) return PosixError(errno, absl::StrCat("open folder ", dir, " for fsync"));
  ScopedFd closer(fd);
  if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) {
    return PosixError(errno, absl::StrCat("fsync folder ", dir));
  }
  return absl::OkStatus();
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Creates `path` and its missing ancestors (but nothing at or above `stop`, which must exist),
// making each new folder durable by fsyncing its parent. An existing folder is fine; an
// existing non-folder is reported by whoever next uses the path (ENOTDIR/EEXIST).
absl::Status MakeDirs(const std::string& path, const std::string& stop, mode_t mode) {
  if (path == stop || path.size() <= stop.size()) return absl::OkStatus();
  if (::mkdir(path.c_str(), mode) == 0) return FsyncDir(Dirname(path));
  if (errno == EEXIST) return absl::OkStatus();
  if (errno != ENOENT) return PosixError(errno, absl::StrCat("mkdir ", path));
  RETURN_IF_ERROR(MakeDirs(Dirname(path), stop, mode));
  if (::mkdir(path.c_str(), mode) == 0) return FsyncDir(Dirname(path));
  if (errno == EEXIST) return absl::OkStatus();  // a concurrent Put made it
  return PosixError(errno, absl::StrCat("mkdir ", path));
}

std::string RandomSuffix() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

struct Entry {
  std::string sort_name;  // the name, plus '/' for a folder: folders sort as their contents do
  bool is_dir = false;
};

class LocalStore : public BlockStore {
 public:
  explicit LocalStore(StoreUrl url) : url_(std::move(url)), root_(url_.path) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    const int fd = RetryOnEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound(key);
      return PosixError(errno, absl::StrCat("open ", path));
    }
    ScopedFd closer(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return PosixError(errno, absl::StrCat("fstat ", path));
    if (!S_ISREG(st.st_mode)) return NotFound(key);  // a folder holding other keys
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    if (offset >= size) return std::string();
    const uint64_t want = std::min(length, size - offset);
    std::string out(want, '\0');
    uint64_t got = 0;
    while (got < want) {
      const ssize_t n = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(offset + got));
      if (n < 0) {
        if (errno == EINTR) continue;
        return PosixError(errno, absl::StrCat("read ", path));
      }
      if (n == 0) break;  // cannot happen for an immutable object; return what exists
      got += static_cast<uint64_t>(n);
    }
    out.resize(got);
    return out;
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    const std::string dir = Dirname(path);
    std::string temp;
    ASSIGN_OR_RETURN(const int fd, CreateTemp(key, dir, &temp));
    ScopedFd file(fd);
    bool renamed = false;
    absl::Cleanup remove_temp = [&] {
      if (!renamed) ::unlink(temp.c_str());
    };
    RETURN_IF_ERROR(WriteAll(fd, data, temp));
    if (RetryOnEintr([&] { return ::fsync(fd); }) != 0) {
      return PosixError(errno, absl::StrCat("fsync ", temp));
    }
    if (file.Close() != 0) return PosixError(errno, absl::StrCat("close ", temp));
    if (::rename(temp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      if (err == EISDIR || err == ENOTEMPTY || err == EEXIST) {
        return PosixError(err, absl::StrCat("cannot store object '", std::string(key), "' in ",
                                            Describe(), ": a folder of other objects has that name"));
      }
      return PosixError(err, absl::StrCat("rename ", temp, " to ", path));
    }
    renamed = true;
    RETURN_IF_ERROR(FsyncDir(dir));
    MaybeSweep(dir);
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    // No folder fsync: a delete lost in a crash only leaks a block (found again by List), while
    // an fsync per delete would slow down removing large files for nothing.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR && errno != EISDIR) {
      return PosixError(errno, absl::StrCat("unlink ", path));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ObjectInfo> Head(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string path = PathOf(key);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound(key);
      return PosixError(errno, absl::StrCat("stat ", path));
    }
    if (!S_ISREG(st.st_mode)) return NotFound(key);
    return ObjectInfo{std::string(key), static_cast<uint64_t>(st.st_size)};
  }

  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys) override {
    if (max_keys < 1) return absl::InvalidArgumentError("List: max_keys must be at least 1");
    // A missing root must not look like an empty store: a scrub or GC would draw conclusions.
    RETURN_IF_ERROR(CheckRootExists());
    ListPage page;
    // Start the walk in the deepest folder the prefix names ("blk/0" -> "blk/"). A prefix that
    // no valid key can start with simply matches nothing; this also keeps ".." out of paths.
    if (!std::all_of(prefix.begin(), prefix.end(), IsKeyChar)) return page;
    const size_t slash = prefix.rfind('/');
    const std::string start_dir(slash == std::string_view::npos ? "" : prefix.substr(0, slash + 1));
    for (size_t b = 0; b < start_dir.size();) {
      const size_t e = start_dir.find('/', b);
      if (!IsKeySegment(std::string_view(start_dir).substr(b, e - b))) return page;
      b = e + 1;
    }
    Walk walk{prefix, page_token, static_cast<size_t>(max_keys) + 1, &page.objects};
    RETURN_IF_ERROR(WalkDir(start_dir, walk));
    if (page.objects.size() > static_cast<size_t>(max_keys)) {
      page.objects.pop_back();
      page.next_token = page.objects.back().key;
    }
    return page;
  }

  absl::Status Check() override {
    RETURN_IF_ERROR(MakeDirs(Dirname(root_), "/", kAncestorDirMode));
    if (::mkdir(root_.c_str(), kDirMode) == 0) {
      RETURN_IF_ERROR(FsyncDir(Dirname(root_)));
    } else if (errno != EEXIST) {
      return PosixError(errno, absl::StrCat("cannot create store folder ", root_));
    }
    struct stat st;
    if (::stat(root_.c_str(), &st) != 0) {
      return PosixError(errno, absl::StrCat("cannot stat store folder ", root_));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("store folder ", root_, " exists but is not a directory"));
    }
    DIR* d = ::opendir(root_.c_str());
    if (d == nullptr) {
      return PosixError(errno, absl::StrCat("store folder ", root_, " is not readable"));
    }
    ::closedir(d);
    // Prove writability by writing, which also catches read-only mounts and full disks that
    // access(W_OK) would not.
    const std::string probe = absl::StrCat(root_, "/", AbslView(kTempPrefix), ".check.", RandomSuffix());
    const int fd = RetryOnEintr([&] {
      return ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
    });
    if (fd < 0) {
      return PosixError(errno, absl::StrCat("store folder ", root_, " is not writable"));
    }
    ScopedFd file(fd);
    absl::Cleanup remove_probe = [&] { ::unlink(probe.c_str()); };
    absl::Status written = WriteAll(fd, "x", probe);
    if (!written.ok()) {
      return absl::Status(written.code(),
                          absl::StrCat("store folder ", root_, " is not writable: ",
                                       written.message()));
    }
    MaybeSweep(root_);
    return absl::OkStatus();
  }

  std::string Describe() const override { return url_.ToString(); }

 private:
  struct Walk {
    std::string_view prefix;
    std::string_view token;
    size_t limit;
    std::vector<ObjectInfo>* out;
  };

  std::string PathOf(std::string_view key) const { return absl::StrCat(root_, "/", AbslView(key)); }

  // Removes the stale temp files of `dir` if it was not swept in the last kSweepInterval.
  // Best effort: a failure only leaves garbage for the next sweep.
  void MaybeSweep(const std::string& dir) {
    const absl::Time now = absl::Now();
    {
      absl::MutexLock lock(&sweep_mu_);
      absl::Time& last = last_sweep_[dir];
      if (now - last < kSweepInterval) return;
      last = now;
    }
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return;
    absl::Cleanup close_dir = [d] { ::closedir(d); };
    const int dfd = ::dirfd(d);
    const int64_t cutoff_s = absl::ToUnixSeconds(now - kStaleTempAge);
    int removed = 0;
    while (const dirent* e = ::readdir(d)) {
      if (!absl::StartsWith(e->d_name, AbslView(kTempPrefix))) continue;
      struct stat st;
      if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
        continue;
      }
      if (st.st_mtime >= cutoff_s) continue;  // maybe a live writer's
      if (::unlinkat(dfd, e->d_name, 0) == 0) ++removed;
    }
    if (removed > 0) {
      NIGHFS_LOG(INFO) << "removed " << removed << " stale temp file(s) left by a crashed writer in "
                       << dir;
    }
  }

  absl::Status NotFound(std::string_view key) const {
    return absl::NotFoundError(absl::StrCat("no object '", AbslView(key), "' in ", Describe()));
  }

  absl::Status CheckRootExists() const {
    struct stat st;
    if (::stat(root_.c_str(), &st) != 0) {
      if (errno == ENOENT) {
        return absl::FailedPreconditionError(absl::StrCat(
            "store folder ", root_, " does not exist (Check() creates it when it should)"));
      }
      return PosixError(errno, absl::StrCat("stat store folder ", root_));
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("store folder ", root_, " is not a directory"));
    }
    return absl::OkStatus();
  }

  // Opens a new temp file next to `final_dir`'s objects, creating the key's folders on first
  // use. The root itself is never created here: if it is missing (an unmounted disk), writing
  // blocks into a fresh folder on the wrong file system would be worse than failing.
  absl::StatusOr<int> CreateTemp(std::string_view key, const std::string& final_dir,
                                 std::string* temp) {
    bool made_dirs = false;
    for (int attempt = 0; attempt < 8; ++attempt) {
      *temp = absl::StrCat(final_dir, "/", AbslView(kTempPrefix), ".", RandomSuffix());
      const int fd = RetryOnEintr([&] {
        return ::open(temp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
      });
      if (fd >= 0) return fd;
      const int err = errno;
      if (err == EEXIST) continue;  // 64 random bits collided with a crashed writer's file
      if (err == ENOENT && !made_dirs) {
        RETURN_IF_ERROR(CheckRootExists());
        RETURN_IF_ERROR(MakeDirs(final_dir, root_, kDirMode));
        made_dirs = true;
        continue;
      }
      if (err == ENOTDIR) {
        return PosixError(ENOTDIR, absl::StrCat("cannot store object '", AbslView(key), "' in ",
                                                Describe(),
                                                ": a parent folder's name is taken by an object"));
      }
      return PosixError(err, absl::StrCat("create ", *temp));
    }
    return absl::InternalError(absl::StrCat("could not pick a unique temp name in ", final_dir));
  }

  // Appends to walk.out, in key order, the objects below folder `dir_key` ("" or "a/b/") that
  // match the walk, stopping at walk.limit.
  absl::Status WalkDir(const std::string& dir_key, Walk& walk) const {
    const std::string dir_path = dir_key.empty() ? root_ : absl::StrCat(root_, "/", dir_key);
    DIR* d = ::opendir(dir_path.c_str());
    if (d == nullptr) {
      // Gone (deleted concurrently, or the prefix names no folder): nothing below it.
      if (errno == ENOENT || errno == ENOTDIR) return absl::OkStatus();
      return PosixError(errno, absl::StrCat("open folder ", dir_path));
    }
    absl::Cleanup close_dir = [d] { ::closedir(d); };
    const int dfd = ::dirfd(d);
    std::vector<Entry> entries;
    while (true) {
      errno = 0;
      const dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) return PosixError(errno, absl::StrCat("read folder ", dir_path));
        break;
      }
      const std::string_view name(e->d_name);
      if (!IsKeySegment(name)) continue;
      unsigned char type = e->d_type;
      if (type == DT_UNKNOWN) {  // some file systems (XFS without ftype, NFS) do not say
        struct stat st;
        if (::fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
      }
      // Symlinks and special files are never objects; not following links also rules out
      // cycles and walks outside the root.
      if (type == DT_DIR) {
        entries.push_back(Entry{absl::StrCat(AbslView(name), "/"), true});
      } else if (type == DT_REG) {
        entries.push_back(Entry{std::string(name), false});
      }
    }
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.sort_name < b.sort_name; });
    for (const Entry& entry : entries) {
      if (walk.out->size() >= walk.limit) return absl::OkStatus();
      const std::string key = dir_key + entry.sort_name;
      const absl::string_view key_view(key);
      if (entry.is_dir) {
        // Descend if the folder may hold matching keys after the token: its keys all start with
        // `key`, so it is entirely before the token when key < token and token does not lie
        // inside it.
        const bool may_match = absl::StartsWith(key_view, AbslView(walk.prefix)) ||
                               absl::StartsWith(AbslView(walk.prefix), key_view);
        const bool before_token = !walk.token.empty() && key_view < AbslView(walk.token) &&
                                  !absl::StartsWith(AbslView(walk.token), key_view);
        if (may_match && !before_token) RETURN_IF_ERROR(WalkDir(key, walk));
        continue;
      }
      if (!absl::StartsWith(key_view, AbslView(walk.prefix))) continue;
      if (!walk.token.empty() && key_view <= AbslView(walk.token)) continue;
      struct stat st;
      if (::fstatat(dfd, entry.sort_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // deleted since readdir
        return PosixError(errno, absl::StrCat("stat ", dir_path, "/", entry.sort_name));
      }
      if (!S_ISREG(st.st_mode)) continue;
      walk.out->push_back(ObjectInfo{key, static_cast<uint64_t>(st.st_size)});
    }
    return absl::OkStatus();
  }

  const StoreUrl url_;
  const std::string root_;  // absolute, no trailing '/'
  absl::Mutex sweep_mu_;
  absl::flat_hash_map<std::string, absl::Time> last_sweep_ ABSL_GUARDED_BY(sweep_mu_);
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockStore>> NewLocalStore(const StoreUrl& url) {
  if (url.scheme != "file" || url.path.empty() || url.path.front() != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "store URL '", url.ToString(), "': a folder store needs file:///absolute/path"));
  }
  if (!url.params.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("store URL '", url.ToString(),
                                                   "': file stores take no parameters (got '",
                                                   url.params.begin()->first, "')"));
  }
  StoreUrl normalized = url;
  while (normalized.path.size() > 1 && normalized.path.back() == '/') normalized.path.pop_back();
  return std::unique_ptr<BlockStore>(new LocalStore(std::move(normalized)));
}

}  // namespace nighfs::blockstore
