#include "proxy/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <list>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/scoped_fd.h"
#include "proxy/av.h"
#include "tools/size.h"

namespace nighfs::proxy {

namespace fs = std::filesystem;

absl::StatusOr<uint64_t> ResolveQuota(std::string_view text, const std::string& folder) {
  absl::string_view t = AV(text);
  if (absl::ConsumeSuffix(&t, "%")) {
    double percent = 0;
    if (!absl::SimpleAtod(t, &percent) || percent <= 0 || percent > 100) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --disk-quota '", AV(text), "': a percentage is above 0 and at most 100"));
    }
    struct statvfs st;
    if (::statvfs(folder.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot measure the file system of ", folder, ": ", std::strerror(errno)));
    }
    const double total = static_cast<double>(st.f_blocks) * static_cast<double>(st.f_frsize);
    return static_cast<uint64_t>(total * percent / 100.0);
  }
  absl::StatusOr<uint64_t> bytes = tools::ParseSize(text);
  if (!bytes.ok()) return bytes.status();
  if (*bytes == 0) return absl::InvalidArgumentError("--disk-quota must be above 0");
  return *bytes;
}

namespace {

constexpr std::string_view kTempPrefix = ".nighfs-tmp";

int64_t NowNs() { return absl::ToUnixNanos(absl::Now()); }

std::string IndexKey(uint64_t volume_id, std::string_view key) {
  return absl::StrCat(volume_id, "/", AV(key));
}

absl::Status FsyncPath(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECTORY));
  if (fd.get() < 0) return PosixError(errno, absl::StrCat("open ", path));
  if (::fsync(fd.get()) != 0) return PosixError(errno, absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

// ENOSPC and EDQUOT are back-pressure (503), not an internal error.
absl::Status WriteError(int err, std::string_view what) {
  if (err == ENOSPC || err == EDQUOT) {
    return absl::ResourceExhaustedError(absl::StrCat("disk full: ", AV(what)));
  }
  return PosixError(err, AV(what));
}

}  // namespace

class DiskCache::Impl {
 public:
  Impl(const DiskCacheOptions& options, std::unique_ptr<Journal> journal)
      : options_(options), journal_(std::move(journal)) {}

  absl::Status Reconcile(ReconcileReport* report);
  absl::Status Put(uint64_t volume_id, std::string_view key, std::string_view data,
                   uint32_t crc32c, bool dirty, bool* existed);
  absl::StatusOr<std::string> Read(uint64_t volume_id, std::string_view key);
  std::optional<BlockInfo> Lookup(uint64_t volume_id, std::string_view key);
  absl::Status MarkClean(uint64_t volume_id, std::string_view key);
  absl::Status Remove(uint64_t volume_id, std::string_view key);
  std::vector<JournalRow> DirtyBlocks();
  MetricsGauges Gauges();
  absl::Status Health();
  Journal& journal() { return *journal_; }
  const std::string& folder() const { return options_.folder; }

 private:
  struct Entry {
    uint64_t volume_id = 0;
    std::string key;
    uint64_t size = 0;
    uint32_t crc32c = 0;
    bool dirty = false;
    int64_t acked_ns = 0;
    int64_t persisted_access_ns = 0;
    std::list<std::string>::iterator lru;  // valid iff !dirty
  };

  // Holds one key exclusively: writes, removals and drops of a key never interleave.
  class KeyLock {
   public:
    KeyLock(Impl* impl, std::string key) : impl_(impl), key_(std::move(key)) {
      absl::MutexLock lock(&impl_->mu_);
      while (impl_->busy_.contains(key_)) impl_->key_released_.Wait(&impl_->mu_);
      impl_->busy_.insert(key_);
    }
    ~KeyLock() {
      absl::MutexLock lock(&impl_->mu_);
      impl_->busy_.erase(key_);
      impl_->key_released_.SignalAll();
    }
    KeyLock(const KeyLock&) = delete;
    KeyLock& operator=(const KeyLock&) = delete;

   private:
    Impl* impl_;
    std::string key_;
  };

  std::string PathOf(std::string_view index_key) const {
    return absl::StrCat(options_.folder, "/", AV(index_key));
  }
  absl::Status WriteFile(const std::string& path, std::string_view data);
  // Removes an entry from the index (REQUIRES mu_); the caller deletes row and file.
  void EraseLocked(const std::string& index_key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops a copy found corrupt or missing: counted, logged (LOST when dirty), row and file
  // removed. Takes the key lock.
  void DropCorrupt(uint64_t volume_id, std::string_view key, const std::string& why);
  void DeleteRowAndFile(uint64_t volume_id, const std::string& key);

  const DiskCacheOptions options_;
  std::unique_ptr<Journal> journal_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> index_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // clean blocks, most recent first
  absl::flat_hash_set<std::string> busy_ ABSL_GUARDED_BY(mu_);  // keys held by a KeyLock
  absl::CondVar key_released_;
  uint64_t total_bytes_ ABSL_GUARDED_BY(mu_) = 0;     // indexed blocks
  uint64_t dirty_bytes_ ABSL_GUARDED_BY(mu_) = 0;     // indexed dirty blocks
  uint64_t dirty_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // writes in progress
  uint64_t reserved_dirty_ ABSL_GUARDED_BY(mu_) = 0;  // of which dirty
};

absl::Status DiskCache::Impl::Reconcile(ReconcileReport* report) {
  ReconcileReport r;
  absl::StatusOr<std::vector<JournalRow>> rows = journal_->LoadBlocks();
  if (!rows.ok()) return rows.status();
  absl::flat_hash_map<std::string, JournalRow> by_path;
  for (JournalRow& row : *rows) {
    std::string k = IndexKey(row.volume_id, row.key);
    by_path.emplace(std::move(k), std::move(row));
  }
  // Files: only under DIR/<volume_id>/ (the journal may share the folder).
  absl::flat_hash_map<std::string, uint64_t> file_sizes;
  std::error_code ec;
  for (const fs::directory_entry& top : fs::directory_iterator(options_.folder, ec)) {
    uint64_t vid = 0;
    if (!top.is_directory() || !absl::SimpleAtoi(top.path().filename().string(), &vid)) continue;
    std::error_code walk_ec;
    for (auto it = fs::recursive_directory_iterator(top.path(), walk_ec);
         it != fs::recursive_directory_iterator(); it.increment(walk_ec)) {
      if (walk_ec) break;
      if (!it->is_regular_file()) continue;
      const std::string rel = fs::relative(it->path(), options_.folder).string();
      const bool temp = absl::StartsWith(it->path().filename().string(), AV(kTempPrefix));
      if (temp || !by_path.contains(rel)) {
        if (!temp) ++r.orphan_files;
        std::error_code rm_ec;
        fs::remove(it->path(), rm_ec);
        continue;
      }
      file_sizes[rel] = it->file_size();
    }
    if (walk_ec) {
      return absl::InternalError(absl::StrCat("cannot read the cache folder ", top.path().string(),
                                              ": ", walk_ec.message()));
    }
  }
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot read the cache folder ", options_.folder, ": ", ec.message()));
  }
  std::vector<std::pair<int64_t, std::string>> clean;  // (last access, index key)
  absl::MutexLock lock(&mu_);
  for (auto& [path, row] : by_path) {
    auto f = file_sizes.find(path);
    if (f == file_sizes.end() || f->second != row.size) {
      const std::string why = f == file_sizes.end()
                                  ? "file missing"
                                  : absl::StrCat("file has ", f->second, " bytes, journal says ",
                                                 row.size);
      if (row.dirty) {
        NIGHFS_LOG(ERROR) << "LOST unflushed block " << row.key << " of volume " << row.volume_id
                          << " (" << why << "): it was acknowledged but never reached the store";
        ++r.lost_blocks;
        options_.metrics->lost_blocks.fetch_add(1);
      } else {
        ++r.dropped_rows;
      }
      if (absl::Status s = journal_->Remove(row.volume_id, row.key); !s.ok()) return s;
      std::error_code rm_ec;
      fs::remove(PathOf(path), rm_ec);
      continue;
    }
    Entry e;
    e.volume_id = row.volume_id;
    e.key = row.key;
    e.size = row.size;
    e.crc32c = row.crc32c;
    e.dirty = row.dirty;
    e.acked_ns = row.acked_ns;
    e.persisted_access_ns = row.last_access_ns;
    total_bytes_ += e.size;
    if (e.dirty) {
      dirty_bytes_ += e.size;
      ++dirty_blocks_;
      ++r.dirty_blocks;
    } else {
      clean.emplace_back(row.last_access_ns, path);
    }
    ++r.blocks;
    index_.emplace(path, std::move(e));
  }
  std::sort(clean.begin(), clean.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [access, path] : clean) {
    lru_.push_back(path);
    index_[path].lru = std::prev(lru_.end());
  }
  if (report != nullptr) *report = r;
  return absl::OkStatus();
}

absl::Status DiskCache::Impl::WriteFile(const std::string& path, std::string_view data) {
  const fs::path target(path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return WriteError(ec.value(), absl::StrCat("mkdir ", target.parent_path().string()));
  const std::string temp =
      (target.parent_path() / absl::StrCat(AV(kTempPrefix), "-",
                                           absl::BytesToHexString(RandomBytes(8))))
          .string();
  ScopedFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) return WriteError(errno, absl::StrCat("create ", temp));
  auto fail = [&temp](absl::Status s) {
    ::unlink(temp.c_str());
    return s;
  };
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(WriteError(errno, absl::StrCat("write ", temp)));
    done += static_cast<size_t>(n);
  }
  if (options_.sync && ::fsync(fd.get()) != 0) {
    return fail(WriteError(errno, absl::StrCat("fsync ", temp)));
  }
  if (fd.Close() != 0) return fail(WriteError(errno, absl::StrCat("close ", temp)));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail(WriteError(errno, absl::StrCat("rename ", temp)));
  }
  if (options_.sync) {
    // The new name, and every folder created for it up to the cache folder, must be on disk.
    for (fs::path dir = target.parent_path();; dir = dir.parent_path()) {
      if (absl::Status s = FsyncPath(dir.string()); !s.ok()) {
        ::unlink(path.c_str());
        return s;
      }
      if (dir.string().size() <= options_.folder.size() || !dir.has_parent_path()) break;
    }
  }
  return absl::OkStatus();
}

void DiskCache::Impl::EraseLocked(const std::string& index_key) {
  auto it = index_.find(index_key);
  if (it == index_.end()) return;
  Entry& e = it->second;
  total_bytes_ -= e.size;
  if (e.dirty) {
    dirty_bytes_ -= e.size;
    --dirty_blocks_;
  } else {
    lru_.erase(e.lru);
  }
  index_.erase(it);
}

void DiskCache::Impl::DeleteRowAndFile(uint64_t volume_id, const std::string& key) {
  if (absl::Status s = journal_->Remove(volume_id, key); !s.ok()) {
    // The file goes anyway: start-up drops a row whose file is missing.
    NIGHFS_LOG(WARNING) << "proxy cache: " << s;
  }
  ::unlink(PathOf(IndexKey(volume_id, key)).c_str());
}

absl::Status DiskCache::Impl::Put(uint64_t volume_id, std::string_view key, std::string_view data,
                                  uint32_t crc32c, bool dirty, bool* existed) {
  if (existed != nullptr) *existed = false;
  const std::string ik = IndexKey(volume_id, key);
  KeyLock key_lock(this, ik);
  std::vector<std::pair<uint64_t, std::string>> victims;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = index_.find(ik); it != index_.end()) {
      if (it->second.size != data.size() || it->second.crc32c != crc32c) {
        return absl::AlreadyExistsError(absl::StrCat(
            "block ", AV(key), " exists with different contents; blocks are never overwritten"));
      }
      if (existed != nullptr) *existed = true;
      return absl::OkStatus();
    }
    const uint64_t size = data.size();
    const uint64_t quota = options_.quota_bytes;
    if (dirty && dirty_bytes_ + reserved_dirty_ + size > quota) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "unflushed blocks fill the cache quota (", dirty_bytes_ + reserved_dirty_,
          " of ", quota, " bytes); retry when the writeback has caught up"));
    }
    // Evict least-recently-used clean blocks until this one fits. Each victim is held (as a
    // KeyLock would) until its row and file are gone, so a new copy of the same key cannot be
    // written meanwhile and then deleted with the old one.
    for (auto it = lru_.end(); total_bytes_ + reserved_bytes_ + size > quota && it != lru_.begin();) {
      --it;
      if (busy_.contains(*it)) continue;
      const std::string victim = *it;
      const Entry& e = index_[victim];
      victims.emplace_back(e.volume_id, e.key);
      busy_.insert(victim);
      it = std::next(it);  // EraseLocked invalidates the victim's position
      EraseLocked(victim);
    }
    if (total_bytes_ + reserved_bytes_ + size > quota) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("no room in the cache quota for ", size, " bytes"));
    } else {
      reserved_bytes_ += size;
      if (dirty) reserved_dirty_ += size;
    }
  }
  for (const auto& [vid, vkey] : victims) {
    DeleteRowAndFile(vid, vkey);
    options_.metrics->evictions.fetch_add(1);
  }
  if (!victims.empty()) {
    absl::MutexLock lock(&mu_);
    for (const auto& [vid, vkey] : victims) busy_.erase(IndexKey(vid, vkey));
    key_released_.SignalAll();
  }
  if (!refused.ok()) return refused;
  const int64_t now = NowNs();
  absl::Status s = WriteFile(PathOf(ik), data);
  if (s.ok()) {
    JournalRow row{volume_id, std::string(key), data.size(), crc32c, dirty, now, now};
    s = journal_->Insert(row);
    if (!s.ok()) ::unlink(PathOf(ik).c_str());
  }
  absl::MutexLock lock(&mu_);
  reserved_bytes_ -= data.size();
  if (dirty) reserved_dirty_ -= data.size();
  if (!s.ok()) return s;
  Entry e;
  e.volume_id = volume_id;
  e.key = std::string(key);
  e.size = data.size();
  e.crc32c = crc32c;
  e.dirty = dirty;
  e.acked_ns = now;
  e.persisted_access_ns = now;
  total_bytes_ += e.size;
  if (dirty) {
    dirty_bytes_ += e.size;
    ++dirty_blocks_;
  } else {
    lru_.push_front(ik);
    e.lru = lru_.begin();
  }
  index_.emplace(ik, std::move(e));
  return absl::OkStatus();
}

void DiskCache::Impl::DropCorrupt(uint64_t volume_id, std::string_view key,
                                  const std::string& why) {
  const std::string ik = IndexKey(volume_id, key);
  KeyLock key_lock(this, ik);
  bool dirty = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(ik);
    if (it == index_.end()) return;  // dropped by someone else meanwhile
    dirty = it->second.dirty;
    EraseLocked(ik);
  }
  options_.metrics->corrupt_blocks.fetch_add(1);
  if (dirty) {
    options_.metrics->lost_blocks.fetch_add(1);
    NIGHFS_LOG(ERROR) << "LOST unflushed block " << key << " of volume " << volume_id
                      << ": its cached copy is " << why
                      << "; it was acknowledged but never reached the store";
  } else {
    NIGHFS_LOG(WARNING) << "proxy cache: dropped block " << key << " of volume " << volume_id
                        << ": " << why << " (fetched again from the store when read)";
  }
  DeleteRowAndFile(volume_id, std::string(key));
}

absl::StatusOr<std::string> DiskCache::Impl::Read(uint64_t volume_id, std::string_view key) {
  const std::string ik = IndexKey(volume_id, key);
  uint64_t size;
  uint32_t crc;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(ik);
    if (it == index_.end()) return absl::NotFoundError(absl::StrCat(AV(key), " is not cached"));
    size = it->second.size;
    crc = it->second.crc32c;
  }
  std::string data;
  std::string problem;
  ScopedFd fd(::open(PathOf(ik).c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno != ENOENT) return PosixError(errno, absl::StrCat("open cached ", AV(key)));
    // Evicted or removed between the lookup and the open: a plain miss. Still indexed: lost.
    absl::MutexLock lock(&mu_);
    if (!index_.contains(ik)) return absl::NotFoundError(absl::StrCat(AV(key), " is not cached"));
    problem = "missing";
  } else {
    data.resize(size);
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::read(fd.get(), data.data() + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return PosixError(errno, absl::StrCat("read cached ", AV(key)));
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
    char extra;
    if (done != size || ::read(fd.get(), &extra, 1) != 0) {
      problem = "of the wrong size";
    } else if (Crc32c(data) != crc) {
      problem = "corrupt (CRC32C mismatch)";
    }
  }
  if (!problem.empty()) {
    DropCorrupt(volume_id, key, problem);
    return absl::DataLossError(absl::StrCat("cached copy of ", AV(key), " was ", problem));
  }
  // Recently used; the journal learns of it at most once a minute per block.
  const int64_t now = NowNs();
  bool persist = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(ik);
    if (it != index_.end()) {
      if (!it->second.dirty) lru_.splice(lru_.begin(), lru_, it->second.lru);
      if (now - it->second.persisted_access_ns > 60'000'000'000) {
        it->second.persisted_access_ns = now;
        persist = true;
      }
    }
  }
  if (persist) (void)journal_->Touch(volume_id, std::string(key), now);
  return data;
}

std::optional<BlockInfo> DiskCache::Impl::Lookup(uint64_t volume_id, std::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = index_.find(IndexKey(volume_id, key));
  if (it == index_.end()) return std::nullopt;
  return BlockInfo{it->second.size, it->second.crc32c, it->second.dirty, it->second.acked_ns};
}

absl::Status DiskCache::Impl::MarkClean(uint64_t volume_id, std::string_view key) {
  const std::string ik = IndexKey(volume_id, key);
  KeyLock key_lock(this, ik);
  {
    absl::MutexLock lock(&mu_);
    auto it = index_.find(ik);
    if (it == index_.end() || !it->second.dirty) return absl::OkStatus();
  }
  if (absl::Status s = journal_->SetClean(volume_id, std::string(key)); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = index_.find(ik);
  if (it == index_.end() || !it->second.dirty) return absl::OkStatus();
  it->second.dirty = false;
  dirty_bytes_ -= it->second.size;
  --dirty_blocks_;
  lru_.push_front(ik);
  it->second.lru = lru_.begin();
  return absl::OkStatus();
}

absl::Status DiskCache::Impl::Remove(uint64_t volume_id, std::string_view key) {
  const std::string ik = IndexKey(volume_id, key);
  KeyLock key_lock(this, ik);
  {
    absl::MutexLock lock(&mu_);
    if (!index_.contains(ik)) return absl::OkStatus();
  }
  // The row goes first: a crash between the two leaves a file without a row, which start-up
  // deletes, never a row that would bring a deleted block back.
  if (absl::Status s = journal_->Remove(volume_id, std::string(key)); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    EraseLocked(ik);
  }
  ::unlink(PathOf(ik).c_str());
  return absl::OkStatus();
}

std::vector<JournalRow> DiskCache::Impl::DirtyBlocks() {
  std::vector<JournalRow> rows;
  absl::MutexLock lock(&mu_);
  for (const auto& [ik, e] : index_) {
    if (!e.dirty) continue;
    rows.push_back(JournalRow{e.volume_id, e.key, e.size, e.crc32c, true, e.acked_ns,
                              e.persisted_access_ns});
  }
  std::sort(rows.begin(), rows.end(),
            [](const JournalRow& a, const JournalRow& b) { return a.acked_ns < b.acked_ns; });
  return rows;
}

MetricsGauges DiskCache::Impl::Gauges() {
  absl::MutexLock lock(&mu_);
  MetricsGauges g;
  g.dirty_bytes = dirty_bytes_;
  g.dirty_blocks = dirty_blocks_;
  g.cached_bytes = total_bytes_;
  g.cached_blocks = index_.size();
  g.quota_bytes = options_.quota_bytes;
  return g;
}

absl::Status DiskCache::Impl::Health() {
  const std::string probe = absl::StrCat(options_.folder, "/", AV(kTempPrefix), "-health-",
                                         absl::BytesToHexString(RandomBytes(4)));
  ScopedFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return absl::UnavailableError(absl::StrCat("cache folder ", options_.folder,
                                               " is not writable: ", std::strerror(errno)));
  }
  ::unlink(probe.c_str());
  if (absl::Status s = journal_->Check(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("journal unusable: ", s.message()));
  }
  absl::MutexLock lock(&mu_);
  if (dirty_bytes_ >= options_.quota_bytes) {
    return absl::UnavailableError(absl::StrCat("unflushed blocks fill the quota (", dirty_bytes_,
                                               " of ", options_.quota_bytes, " bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DiskCache>> DiskCache::Open(const DiskCacheOptions& options,
                                                           ReconcileReport* report) {
  if (options.metrics == nullptr) return absl::InvalidArgumentError("DiskCache needs metrics");
  if (options.quota_bytes == 0) return absl::InvalidArgumentError("--disk-quota must be above 0");
  std::error_code ec;
  fs::create_directories(options.folder, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the cache folder ", options.folder, ": ", ec.message()));
  }
  // Cached blocks are the volumes' data: private to the proxy.
  ::chmod(options.folder.c_str(), 0700);
  absl::StatusOr<std::unique_ptr<Journal>> journal =
      Journal::Open(options.journal_path, options.sync);
  if (!journal.ok()) return journal.status();
  auto impl = std::make_unique<Impl>(options, *std::move(journal));
  if (absl::Status s = impl->Reconcile(report); !s.ok()) return s;
  return std::unique_ptr<DiskCache>(new DiskCache(std::move(impl)));
}

DiskCache::DiskCache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskCache::~DiskCache() = default;

absl::Status DiskCache::PutDirty(uint64_t volume_id, std::string_view key, std::string_view data,
                                 uint32_t crc32c, bool* existed) {
  return impl_->Put(volume_id, key, data, crc32c, /*dirty=*/true, existed);
}
absl::Status DiskCache::PutClean(uint64_t volume_id, std::string_view key, std::string_view data,
                                 uint32_t crc32c) {
  return impl_->Put(volume_id, key, data, crc32c, /*dirty=*/false, nullptr);
}
absl::StatusOr<std::string> DiskCache::Read(uint64_t volume_id, std::string_view key) {
  return impl_->Read(volume_id, key);
}
std::optional<BlockInfo> DiskCache::Lookup(uint64_t volume_id, std::string_view key) {
  return impl_->Lookup(volume_id, key);
}
absl::Status DiskCache::MarkClean(uint64_t volume_id, std::string_view key) {
  return impl_->MarkClean(volume_id, key);
}
absl::Status DiskCache::Remove(uint64_t volume_id, std::string_view key) {
  return impl_->Remove(volume_id, key);
}
std::vector<JournalRow> DiskCache::DirtyBlocks() { return impl_->DirtyBlocks(); }
MetricsGauges DiskCache::Gauges() { return impl_->Gauges(); }
absl::Status DiskCache::Health() { return impl_->Health(); }
Journal& DiskCache::journal() { return impl_->journal(); }
const std::string& DiskCache::folder() const { return impl_->folder(); }

}  // namespace nighfs::proxy
