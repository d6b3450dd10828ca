// nighfs-proxy's counters and their Prometheus text rendering (format 0.0.4, GET /metrics).
#ifndef NIGHFS_PROXY_METRICS_H_
#define NIGHFS_PROXY_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace nighfs::proxy {

// Gauges that belong to other components, read when /metrics is rendered.
struct MetricsGauges {
  uint64_t dirty_bytes = 0;
  uint64_t dirty_blocks = 0;
  uint64_t cached_bytes = 0;  // dirty and clean
  uint64_t cached_blocks = 0;
  uint64_t quota_bytes = 0;
};

// Counters every component bumps. Lock-free; safe from any thread.
class ProxyMetrics {
 public:
  std::atomic<uint64_t> hits{0};          // block GET/HEAD answered from the cache folder
  std::atomic<uint64_t> misses{0};        // block GET/HEAD that went to the store
  std::atomic<uint64_t> bytes_in{0};      // PUT bodies accepted
  std::atomic<uint64_t> bytes_out{0};     // GET bodies sent
  std::atomic<uint64_t> flushed_blocks{0};
  std::atomic<uint64_t> flush_errors{0};
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> corrupt_blocks{0};      // cached copies whose CRC32C did not match
  std::atomic<uint64_t> lost_blocks{0};         // dirty blocks whose copy was corrupt or gone
  std::atomic<uint64_t> dead_blocks_dropped{0};  // dirty blocks never uploaded (deleted first)
  std::atomic<uint64_t> store_gets{0};           // read-through fetches from a store

  // One block request of `method` ("GET", "PUT", ...) that took `seconds`.
  void ObserveRequest(std::string_view method, double seconds);

  // The whole exposition.
  std::string Render(const MetricsGauges& gauges) const;

 private:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
  static constexpr std::array<const char*, 5> kMethods = {"GET", "HEAD", "PUT", "DELETE",
                                                               "OTHER"};
  struct Histogram {
    std::array<std::atomic<uint64_t>, kBuckets.size()> buckets{};  // not cumulative
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_micros{0};
  };
  std::array<Histogram, kMethods.size()> histograms_;
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_METRICS_H_
