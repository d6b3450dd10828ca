#include "mount/memory.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <mutex>

namespace nighfs::fs {

std::shared_ptr<BufferPool> BufferPool::Create(size_t buffer_size, size_t max_free_bytes) {
  return std::shared_ptr<BufferPool>(new BufferPool(buffer_size, max_free_bytes));
}

std::string BufferPool::Take() {
  {
    absl::MutexLock l(&mu_);
    if (!free_.empty()) {
      std::string s = std::move(free_.back());
      free_.pop_back();
      return s;
    }
  }
  std::string s;
  s.reserve(size_);
  return s;
}

void BufferPool::Give(std::string&& s) {
  // Only buffers of (about) our size: a small or grown string would break the bound.
  if (s.capacity() < size_ || s.capacity() > size_ + size_ / 8) return;
  s.clear();
  absl::MutexLock l(&mu_);
  if (free_.size() < max_free_) free_.push_back(std::move(s));
}

std::shared_ptr<const std::string> BufferPool::Share(std::string&& s) {
  std::weak_ptr<BufferPool> self = weak_from_this();
  return std::shared_ptr<const std::string>(new std::string(std::move(s)),
                                            [self](const std::string* p) {
                                              auto* mp = const_cast<std::string*>(p);
                                              if (auto pool = self.lock()) pool->Give(std::move(*mp));
                                              delete mp;
                                            });
}

void BufferPool::Trim() {
  std::vector<std::string> drop;
  absl::MutexLock l(&mu_);
  drop.swap(free_);
}

size_t BufferPool::free_bytes() const {
  absl::MutexLock l(&mu_);
  return free_.size() * size_;
}

void TuneMallocForMount() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Fixed (not dynamic) thresholds: buffers of 256 KiB and more are mappings of their own.
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
    // FUSE workers, I/O threads and curl all allocate; a few arenas are enough for 2-16 cores.
    mallopt(M_ARENA_MAX, 4);
  });
}

void MallocTrim() { malloc_trim(0); }

ProcessMemory ReadProcessMemory() {
  ProcessMemory m;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    unsigned long long size = 0, resident = 0;
    if (std::fscanf(f, "%llu %llu", &size, &resident) == 2) {
      m.rss_bytes = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    }
    std::fclose(f);
  }
  struct mallinfo2 mi = mallinfo2();
  m.heap_in_use_bytes = mi.uordblks + mi.hblkhd;
  m.heap_free_bytes = mi.fordblks;
  return m;
}

}  // namespace nighfs::fs
