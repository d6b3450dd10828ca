// What the throughput tools of tests/relay share (nighfs-http-bench, nighfs-store-bench): the
// counters their threads add to, and the pseudo-random request bodies they send.
#ifndef NIGHFS_TESTS_RELAY_BENCH_UTIL_H_
#define NIGHFS_TESTS_RELAY_BENCH_UTIL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nighfs::relaybench {

// Counters shared by the threads of one run; thread-safe. Failed requests are errors, not
// throughput; the first one's message is kept for stderr.
struct Totals {
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> errors{0};
  absl::Mutex mu;
  std::string first_error ABSL_GUARDED_BY(mu);
  void Error(std::string what) {
    ++errors;
    absl::MutexLock lock(&mu);
    if (first_error.empty()) first_error = std::move(what);
  }
};

// `size` pseudo-random bytes (xorshift64), the same for the same seed: incompressible, and
// distinct per seed so that a reply carrying another request's bytes is caught.
inline std::string Payload(size_t size, uint64_t seed) {
  std::string s(size, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (size_t j = 0; j < 8 && i + j < size; ++j) s[i + j] = static_cast<char>(x >> (8 * j));
  }
  return s;
}

}  // namespace nighfs::relaybench

#endif  // NIGHFS_TESTS_RELAY_BENCH_UTIL_H_
