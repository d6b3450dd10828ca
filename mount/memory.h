// Memory accounting and reuse for a mount (issue 10, items 2 and 4):
//  - ByteGauge: a byte counter whose every increment is owned by a Charge (RAII), so each byte
//    counted is uncounted exactly once, when its buffer dies or is cut.
//  - BufferPool: a bounded free list of block-size buffers reused for block images, so a
//    stream of 4 MiB buffers does not churn malloc (or page faults) block after block.
//  - TuneMallocForMount / MallocTrim / ReadProcessMemory: glibc settings that keep freed
//    block buffers from piling up in per-thread arenas, and what the process really holds.
#ifndef NIGHFS_MOUNT_MEMORY_H_
#define NIGHFS_MOUNT_MEMORY_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nighfs::fs {

// Thread-safe. Must outlive its charges.
class ByteGauge {
 public:
  ByteGauge() = default;
  ByteGauge(const ByteGauge&) = delete;
  ByteGauge& operator=(const ByteGauge&) = delete;

  // Owns `bytes()` of the gauge's count until it is destroyed, Set to another size, or moved
  // from. Not thread-safe itself: guard it like the buffer it describes.
  class Charge {
   public:
    Charge() = default;
    Charge(ByteGauge* gauge, size_t bytes) : gauge_(gauge) { Set(bytes); }
    Charge(Charge&& o) noexcept : gauge_(o.gauge_), bytes_(o.bytes_) {
      o.gauge_ = nullptr;
      o.bytes_ = 0;
    }
    Charge& operator=(Charge&& o) noexcept {
      if (this != &o) {
        Set(0);
        gauge_ = o.gauge_;
        bytes_ = o.bytes_;
        o.gauge_ = nullptr;
        o.bytes_ = 0;
      }
      return *this;
    }
    Charge(const Charge&) = delete;
    Charge& operator=(const Charge&) = delete;
    ~Charge() { Set(0); }

    // Makes this charge `bytes` (the buffer grew or was cut).
    void Set(size_t bytes) {
      if (gauge_ == nullptr) return;
      gauge_->Add(static_cast<int64_t>(bytes) - static_cast<int64_t>(bytes_), bytes_ == 0 && bytes != 0,
                  bytes_ != 0 && bytes == 0);
      bytes_ = bytes;
    }
    size_t bytes() const { return bytes_; }

   private:
    ByteGauge* gauge_ = nullptr;
    size_t bytes_ = 0;
  };

  Charge Make(size_t bytes) { return Charge(this, bytes); }
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Charges holding a nonzero count.
  int64_t live_charges() const { return live_.load(std::memory_order_relaxed); }

 private:
  void Add(int64_t delta, bool born, bool died) {
    bytes_.fetch_add(delta, std::memory_order_relaxed);
    if (born) live_.fetch_add(1, std::memory_order_relaxed);
    if (died) live_.fetch_sub(1, std::memory_order_relaxed);
  }
  std::atomic<int64_t> bytes_{0};
  std::atomic<int64_t> live_{0};
};

// A bounded free list of buffers of one size. Thread-safe; shared by the BlockData it hands
// out (their deleter gives the buffer back), so it lives as long as the last of them.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  // Keeps at most `max_free_bytes` of free buffers of `buffer_size` bytes each.
  static std::shared_ptr<BufferPool> Create(size_t buffer_size, size_t max_free_bytes);

  // An empty string whose capacity is the buffer size (from the free list when it has one).
  std::string Take();
  // Returns `s` to the free list when it is one of ours and the list has room; frees it
  // otherwise.
  void Give(std::string&& s);
  // Immutable shared image of `s` whose buffer comes back to this pool when the last
  // reference dies.
  std::shared_ptr<const std::string> Share(std::string&& s);
  // Frees every free buffer (the mount is idle).
  void Trim();

  size_t buffer_size() const { return size_; }
  size_t free_bytes() const;

 private:
  BufferPool(size_t buffer_size, size_t max_free)
      : size_(buffer_size), max_free_(std::max<size_t>(max_free / std::max<size_t>(buffer_size, 1), 1)) {}
  const size_t size_;
  const size_t max_free_;  // in buffers
  mutable absl::Mutex mu_;
  std::vector<std::string> free_ ABSL_GUARDED_BY(mu_);
};

// Process-wide glibc malloc settings for a mount daemon; idempotent. Why: glibc raises its
// mmap threshold after the first large free (up to 32 MiB), after which every block buffer
// comes from a heap arena; with one arena per thread (up to 8 x cores of them) the freed
// buffers stay mapped in each arena. A fixed threshold below the block size makes every block
// buffer its own mapping, returned to the system when freed, and few arenas bound the rest.
void TuneMallocForMount();
// Gives free heap memory back to the system (cheap when there is none).
void MallocTrim();

struct ProcessMemory {
  uint64_t rss_bytes = 0;
  uint64_t heap_in_use_bytes = 0;
  uint64_t heap_free_bytes = 0;
};
ProcessMemory ReadProcessMemory();

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_MEMORY_H_
