// FileSystemImpl lifecycle (construction starts the retrier, destruction flushes), the
// session id and the status figures; plus AttrToStat and the FileSystem factory.

#include "mount/filesystem.h"

#include <algorithm>
#include <cerrno>

#include "mount/filesystem_impl.h"

namespace nighfs::fs {
namespace {

const Caller kRootCaller;
thread_local const Caller* current_caller = nullptr;

}  // namespace

const Caller& CurrentCaller() {
  return current_caller != nullptr ? *current_caller : kRootCaller;
}

ScopedCaller::ScopedCaller(Caller caller)
    : previous_(current_caller), caller_(std::move(caller)) {
  current_caller = &caller_;
}

ScopedCaller::~ScopedCaller() { current_caller = previous_; }

void ToProto(const Caller& c, pb::Caller* out) {
  out->set_uid(c.uid);
  out->set_gid(c.gid);
  out->mutable_groups()->Assign(c.groups.begin(), c.groups.end());
}

struct stat AttrToStat(const pb::Attr& a, uint32_t block_size) {
  struct stat st;
  std::memset(&st, 0, sizeof st);
  st.st_ino = a.ino();
  st.st_mode = a.mode();
  st.st_nlink = a.nlink();
  st.st_uid = a.uid();
  st.st_gid = a.gid();
  st.st_rdev = a.rdev();
  st.st_size = static_cast<off_t>(a.size());
  // Preferred I/O size: large requests are what keeps a block store busy.
  st.st_blksize = std::min<uint32_t>(block_size, 1u << 20);
  // What the file stores, not its size: `truncate -s 1T` shows 0 blocks and `du` 0, so
  // sparse-aware tools (cp --sparse, tar -S, rsync -S) look for holes.
  st.st_blocks = static_cast<blkcnt_t>((a.stored_bytes() + 511) / 512);
  st.st_atim.tv_sec = a.atime_ns() / 1000000000;
  st.st_atim.tv_nsec = a.atime_ns() % 1000000000;
  st.st_mtim.tv_sec = a.mtime_ns() / 1000000000;
  st.st_mtim.tv_nsec = a.mtime_ns() % 1000000000;
  st.st_ctim.tv_sec = a.ctime_ns() / 1000000000;
  st.st_ctim.tv_nsec = a.ctime_ns() % 1000000000;
  return st;
}

FileSystemImpl::FileSystemImpl(MetaApi* meta, blockstore::BlockStore* store,
                               const pb::Volume& volume, uint64_t session_id,
                               const FsOptions& options)
    : FileSystem(options),
      meta_(meta),
      store_(store),
      volume_(volume),
      bs_(volume.block_size()),
      session_id_(session_id),
      dir_attrs_(options.attr_timeout),
      dir_names_(options.entry_timeout),
      buffers_(BufferPool::Create(volume.block_size(), options.buffer_pool_bytes)),
      cache_(store, options.cache_bytes, &pool_, options.holder_store),
      pool_(options.io_threads) {
  if (!options.spill_dir.empty()) {
    absl::StatusOr<std::shared_ptr<SpillDir>> d = SpillDir::Open(options.spill_dir);
    if (d.ok()) {
      spill_ = std::move(*d);
    } else {
      NIGHFS_LOG(ERROR) << "spilling disabled: " << d.status();
    }
  }
  retrier_ = std::thread([this] { RetryLoop(); });
}

FileSystemImpl::~FileSystemImpl() {
  absl::Status s = FlushAll();
  if (!s.ok()) NIGHFS_LOG(ERROR) << "flush at shutdown failed: " << s;
  stop_retrier_.Notify();
  retrier_.join();
  if (s.ok()) CheckDirtyCount(/*only=*/nullptr);
}

void FileSystemImpl::SetSessionId(uint64_t session_id) {
  session_id_.store(session_id);
  // Ids are owned by the session that allocated them: the old session's unused ones may be
  // reclaimed, so the next block takes a fresh batch.
  DropIdBatch();
}

void FileSystemImpl::DropIdBatch() {
  absl::MutexLock l(&ids_mu_);
  next_id_ = end_id_;
}

void FileSystemImpl::FillStats(status::v1::MountStats* s) const {
  s->set_read_ops(read_ops_.load());
  s->set_write_ops(write_ops_.load());
  s->set_bytes_read(bytes_read_.load());
  s->set_bytes_written(bytes_written_.load());
  s->set_block_cache_hits(cache_.stats().hits.load());
  s->set_block_cache_misses(cache_.stats().misses.load());
  s->set_block_cache_bytes(cache_.bytes());
  s->set_dirty_bytes(static_cast<uint64_t>(std::max<int64_t>(0, buffered_.bytes())));
  const PendingSummary p = SummarizePending();
  s->set_pending_files(p.files);
  s->set_pending_bytes(p.bytes);
  s->set_blocks_uploaded(blocks_uploaded_.load());
  s->set_block_upload_errors(upload_errors_.load());
  s->set_meta_calls(meta_calls_.load());
  s->set_meta_errors(meta_errors_.load());
  s->set_checksum_mismatches(cache_.stats().checksum_mismatches.load());
  s->set_bytes_uploaded(bytes_uploaded_.load());
  s->set_deferred_attrs(deferred_attrs_.load());
  s->set_block_fetches(cache_.stats().block_fetches.load());
  s->set_range_fetches(cache_.stats().range_fetches.load());
  s->set_bytes_fetched(cache_.stats().block_bytes.load() + cache_.stats().range_bytes.load());
}

void FileSystemImpl::FillMemoryAndPending(status::v1::MountStatus* out) const {
  status::v1::MemoryStats* m = out->mutable_memory();
  const ProcessMemory pm = ReadProcessMemory();
  m->set_rss_bytes(pm.rss_bytes);
  m->set_heap_in_use_bytes(pm.heap_in_use_bytes);
  m->set_heap_free_bytes(pm.heap_free_bytes);
  m->set_budget_bytes(options_.cache_bytes + options_.writeback_bytes);
  m->set_cache_bytes(cache_.bytes());
  m->set_dirty_bytes(static_cast<uint64_t>(std::max<int64_t>(0, buffered_.bytes())));
  m->set_uploading_bytes(static_cast<uint64_t>(std::max<int64_t>(0, uploading_.bytes())));
  m->set_prefetch_bytes(cache_.prefetch_bytes());
  m->set_pool_free_bytes(buffers_->free_bytes());
  m->set_spilled_bytes(static_cast<uint64_t>(std::max<int64_t>(0, spilled_.bytes())));
  std::vector<status::v1::PendingFile> files;
  for (const auto& st : AllStates()) {
    absl::MutexLock l(&st->mu);
    if (st->write_error.ok()) continue;
    status::v1::PendingFile f;
    f.set_ino(st->ino);
    f.set_bytes(st->DirtyBytesLocked());
    f.set_since_ns(st->failed_since_ns);
    f.set_attempts(st->attempts);
    f.set_last_error(std::string(st->write_error.message()));
    f.set_next_attempt_ns(st->next_attempt_ns);
    files.push_back(std::move(f));
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return a.since_ns() < b.since_ns();
  });
  if (files.size() > 50) files.resize(50);
  for (auto& f : files) *out->add_pending() = std::move(f);
}

absl::StatusOr<pb::Attr> FileSystem::LookupForKernel(uint64_t parent, const std::string& name) {
  // A name this mount knows is absent from a directory it made needs no round trip
  // (mount/dir_names.h); only with entry_timeout, as every negative entry.
  if (KnownAbsent(parent, name)) return pb::Attr();  // ino 0: a negative entry
  absl::StatusOr<pb::Attr> attr = Lookup(parent, name);
  if (attr.ok() || options_.entry_timeout <= absl::ZeroDuration() ||
      StatusToErrno(attr.status()) != ENOENT) {
    return attr;
  }
  return pb::Attr();  // ino 0: a negative entry
}

absl::StatusOr<std::unique_ptr<FileSystem>> FileSystem::Create(MetaApi* meta,
                                                               blockstore::BlockStore* store,
                                                               const pb::Volume& volume,
                                                               uint64_t session_id,
                                                               const FsOptions& options) {
  if (meta == nullptr || store == nullptr) return absl::InvalidArgumentError("no meta or store");
  if (volume.block_size() == 0) return absl::InvalidArgumentError("volume has no block size");
  // Why here: every mount daemon and test builds its file system through this factory, and
  // the settings must be in place before the first block buffer is allocated.
  TuneMallocForMount();
  return std::unique_ptr<FileSystem>(
      new FileSystemImpl(meta, store, volume, session_id, options));
}

}  // namespace nighfs::fs
