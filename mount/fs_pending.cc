// FileSystemImpl data that is not stored yet: FlushAll, the background retrier of failed
// commits, the accounting checks, and spilling of waiting images to disk.

#include "mount/filesystem_impl.h"

#include <algorithm>
#include <cerrno>
#include <random>

#include "absl/strings/str_cat.h"

namespace nighfs::fs {

absl::Status FileSystemImpl::FlushAll() {
  for (auto& st : AllStates()) {
    absl::MutexLock fl(&st->flush_mu);
    (void)CommitLocked(st);  // a failure is recorded in the state and retried below
  }
  const absl::Time deadline = absl::Now() + options_.flush_timeout;
  absl::Time next_log = absl::InfinitePast();
  while (true) {
    const PendingSummary p = SummarizePending();
    if (p.files == 0) return absl::OkStatus();
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      NIGHFS_LOG(ERROR) << "giving up after " << options_.flush_timeout << " (-o flush_timeout): "
                        << p.files << " file(s), " << p.bytes << " bytes were NOT stored and "
                        << "are lost (inodes " << p.inos << "); last error: " << p.last_error;
      return PosixError(EIO, absl::StrCat(p.files, " file(s) (", p.bytes,
                                          " bytes) could not be stored: ", p.last_error));
    }
    if (now >= next_log) {
      NIGHFS_LOG(WARNING) << "waiting for " << p.files << " file(s), " << p.bytes
                          << " bytes to be stored (inodes " << p.inos << "; last error: "
                          << p.last_error << "); giving up in "
                          << absl::Trunc(deadline - now, absl::Milliseconds(100))
                          << " (-o flush_timeout)";
      next_log = now + absl::Seconds(5);
    }
    RetryDue(/*until=*/deadline);
    absl::SleepFor(absl::Milliseconds(50));
  }
}

FileSystemImpl::PendingSummary FileSystemImpl::SummarizePending() const {
  PendingSummary p;
  for (const auto& st : AllStates()) {
    absl::MutexLock l(&st->mu);
    if (st->write_error.ok()) continue;
    if (p.files < 10) absl::StrAppend(&p.inos, p.files == 0 ? "" : ",", st->ino);
    if (p.files == 10) absl::StrAppend(&p.inos, ",...");
    ++p.files;
    p.bytes += st->DirtyBytesLocked();
    p.last_error = std::string(st->write_error.message());
  }
  return p;
}

void FileSystemImpl::RecordFailureLocked(FileState& st, const absl::Status& s) {
  const int64_t now = NowNs();
  if (st.write_error.ok()) st.failed_since_ns = now;
  st.write_error = s;
  ++st.attempts;
  // Exponential backoff with jitter in [d/2, d], so mounts that lost the same store do not
  // all come back at once.
  absl::Duration d = options_.retry_initial_backoff;
  for (uint32_t i = 1; i < st.attempts && d < options_.retry_max_backoff; ++i) d *= 2;
  d = std::min(d, options_.retry_max_backoff);
  thread_local std::mt19937_64 rng(std::random_device{}());
  const int64_t full = absl::ToInt64Nanoseconds(d);
  st.next_attempt_ns = now + full / 2 + static_cast<int64_t>(rng() % (full / 2 + 1));
}

void FileSystemImpl::RetryDue(absl::Time until) {
  const int64_t now = NowNs();
  for (const auto& st : AllStates()) {
    {
      absl::MutexLock l(&st->mu);
      if (st->write_error.ok()) continue;
      if (st->next_attempt_ns > now) {
        // Unmount waits for these: do not sleep past its bound on a long backoff.
        if (until == absl::InfiniteFuture() ||
            absl::FromUnixNanos(st->next_attempt_ns) < until) {
          continue;
        }
        if (now < absl::ToUnixNanos(until) - absl::ToInt64Nanoseconds(absl::Seconds(1))) {
          continue;
        }
      }
    }
    absl::Status s;
    {
      absl::MutexLock fl(&st->flush_mu);
      s = CommitLocked(st);
    }
    if (s.ok()) {
      NIGHFS_LOG(INFO) << "inode " << st->ino << ": data kept after a failed commit is stored";
      ForgetIfClosed(st);
    }
  }
}

void FileSystemImpl::RetryLoop() {
  while (!stop_retrier_.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
    RetryDue();
    MaybeSpill();
    TrimIfIdle();
    TrimIfBloated();
  }
}

void FileSystemImpl::TrimIfBloated() {
  // A busy mount never idles: memory malloc holds free among live buffers (freed patches and
  // evicted ranges between cached ones) would stay resident until it does. Measured: random
  // reads then random writes of a 1 GiB file on s3rver held 361 to 444 MiB free in malloc,
  // 1,048 to 1,134 MiB resident against an 896 MiB budget (scripts/rss_phases.sh). What is
  // resident beyond what malloc has in use is what a trim gives back; malloc's own "free"
  // count keeps the pages a trim released, so it cannot say when to trim again.
  const ProcessMemory m = ReadProcessMemory();
  if (m.rss_bytes > m.heap_in_use_bytes + kMaxResidentSlack) MallocTrim();
}

void FileSystemImpl::TrimIfIdle() {
  const int64_t last = last_activity_ns_.load(std::memory_order_relaxed);
  if (last == trimmed_at_ns_ || buffered_.bytes() != 0) return;
  if (NowNs() - last < absl::ToInt64Nanoseconds(absl::Seconds(2))) return;
  buffers_->Trim();
  MallocTrim();
  trimmed_at_ns_ = last;
}

void FileSystemImpl::CheckDirtyCount(const FileState* only) const {
#ifndef NDEBUG
  int64_t sum = 0;
  int64_t spilled = 0;
  std::vector<std::shared_ptr<FileState>> states = AllStates();
  for (const auto& st : states) {
    if (only != nullptr && st.get() != only) continue;
    absl::MutexLock l(&st->mu);
    for (const auto& [i, d] : st->dirty) {
      DebugCheck(d.charge.bytes() == d.HeldBytes(), absl::StrCat("dirty charge of ", st->ino));
      sum += static_cast<int64_t>(d.charge.bytes());
    }
    for (const auto& [i, p] : st->inflight) {
      DebugCheck(p->charge.bytes() == p->size, absl::StrCat("inflight charge of ", st->ino));
      DebugCheck((p->data == nullptr) != p->spill_path.empty(),
                 absl::StrCat("spill state of ", st->ino));
      (p->data != nullptr ? sum : spilled) += static_cast<int64_t>(p->charge.bytes());
    }
  }
  DebugCheck(buffered_.bytes() >= 0, absl::StrCat("dirty count ", buffered_.bytes()));
  if (only == nullptr) {
    DebugCheck(sum == buffered_.bytes(), absl::StrCat("dirty count ", buffered_.bytes(),
                                                      " != sum of live buffers ", sum));
    DebugCheck(spilled == spilled_.bytes(), absl::StrCat("spilled count ", spilled_.bytes(),
                                                         " != sum of spilled blocks ", spilled));
  }
#else
  (void)only;
#endif
}

absl::StatusOr<BlockData> FileSystemImpl::LoadImage(const PendingBlock& p) {
  if (p.data != nullptr) return p.data;
  absl::StatusOr<std::string> img = p.spill->Read(p.spill_path, p.size);
  if (!img.ok()) {
    NIGHFS_LOG(ERROR) << "cannot read back spilled block " << p.index << ": " << img.status();
    return PosixError(EIO, img.status().message());
  }
  return BlockData(std::make_shared<const std::string>(std::move(*img)));
}

void FileSystemImpl::MaybeSpill() {
  const int64_t high = static_cast<int64_t>(options_.writeback_bytes) / 4 * 3;
  const int64_t low = static_cast<int64_t>(options_.writeback_bytes) / 2;
  if (spill_ == nullptr || buffered_.bytes() <= high) return;
  for (const auto& st : AllStates()) {
    if (buffered_.bytes() <= low) return;
    {
      absl::MutexLock l(&st->mu);
      if (st->write_error.ok()) continue;
    }
    absl::MutexLock fl(&st->flush_mu);  // no commit of this file reads its images meanwhile
    std::vector<std::shared_ptr<PendingBlock>> victims;
    {
      absl::MutexLock l(&st->mu);
      for (auto& [i, p] : st->inflight) {
        if (p->finished && !p->committing && p->data != nullptr) victims.push_back(p);
      }
    }
    for (auto& p : victims) {
      if (buffered_.bytes() <= low) break;
      absl::StatusOr<std::string> path = spill_->Write(*p->data);
      if (!path.ok()) {
        NIGHFS_LOG(ERROR) << "cannot spill block " << p->index << " of inode " << st->ino
                          << " (kept in memory): " << path.status();
        return;
      }
      absl::MutexLock l(&st->mu);
      auto it = st->inflight.find(p->index);
      if (it == st->inflight.end() || it->second != p) {
        spill_->Remove(*path);
        continue;
      }
      p->spill = spill_;
      p->spill_path = std::move(*path);
      p->data = nullptr;
      p->charge = spilled_.Make(p->size);
    }
  }
}

}  // namespace nighfs::fs
