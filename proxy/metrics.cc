#include "proxy/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nighfs::proxy {

void ProxyMetrics::ObserveRequest(std::string_view method, double seconds) {
  size_t m = kMethods.size() - 1;  // OTHER
  for (size_t i = 0; i < kMethods.size(); ++i) {
    if (method == kMethods[i]) m = i;
  }
  Histogram& h = histograms_[m];
  for (size_t b = 0; b < kBuckets.size(); ++b) {
    if (seconds <= kBuckets[b]) {
      h.buckets[b].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  h.count.fetch_add(1, std::memory_order_relaxed);
  h.sum_micros.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

namespace {

void Metric(std::string& out, absl::string_view name, absl::string_view type,
            absl::string_view help, uint64_t value) {
  absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name,
                  " ", value, "\n");
}

}  // namespace

std::string ProxyMetrics::Render(const MetricsGauges& g) const {
  std::string out;
  auto counter = [&](absl::string_view name, absl::string_view help,
                     const std::atomic<uint64_t>& v) {
    Metric(out, name, "counter", help, v.load(std::memory_order_relaxed));
  };
  counter("nighfs_proxy_hits_total", "Block reads answered from the cache folder.", hits);
  counter("nighfs_proxy_misses_total", "Block reads that went to the object store.", misses);
  counter("nighfs_proxy_bytes_in_total", "Bytes of blocks accepted by PUT.", bytes_in);
  counter("nighfs_proxy_bytes_out_total", "Bytes of blocks sent by GET.", bytes_out);
  counter("nighfs_proxy_flushed_blocks_total", "Dirty blocks uploaded to their store.",
          flushed_blocks);
  counter("nighfs_proxy_flush_errors_total", "Failed upload attempts (retried).", flush_errors);
  counter("nighfs_proxy_evictions_total", "Clean blocks evicted from the cache folder.",
          evictions);
  counter("nighfs_proxy_corrupt_blocks_total",
          "Cached copies whose CRC32C did not match (dropped, never served).", corrupt_blocks);
  counter("nighfs_proxy_lost_blocks_total",
          "Unflushed blocks whose cached copy was corrupt or missing.", lost_blocks);
  counter("nighfs_proxy_dead_blocks_dropped_total",
          "Unflushed blocks deleted before upload (never sent to the store).",
          dead_blocks_dropped);
  counter("nighfs_proxy_store_gets_total", "Read-through fetches from object stores.",
          store_gets);
  Metric(out, "nighfs_proxy_dirty_bytes", "gauge", "Bytes of blocks not yet flushed.",
         g.dirty_bytes);
  Metric(out, "nighfs_proxy_dirty_blocks", "gauge", "Blocks not yet flushed.", g.dirty_blocks);
  Metric(out, "nighfs_proxy_cached_bytes", "gauge", "Bytes in the cache folder (dirty and clean).",
         g.cached_bytes);
  Metric(out, "nighfs_proxy_cached_blocks", "gauge", "Blocks in the cache folder.",
         g.cached_blocks);
  Metric(out, "nighfs_proxy_quota_bytes", "gauge", "The cache folder's quota.", g.quota_bytes);

  absl::StrAppend(&out,
                  "# HELP nighfs_proxy_request_seconds Time to answer a request.\n"
                  "# TYPE nighfs_proxy_request_seconds histogram\n");
  for (size_t m = 0; m < kMethods.size(); ++m) {
    const Histogram& h = histograms_[m];
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBuckets.size(); ++b) {
      cumulative += h.buckets[b].load(std::memory_order_relaxed);
      absl::StrAppend(&out, "nighfs_proxy_request_seconds_bucket{method=\"", kMethods[m],
                      "\",le=\"", kBuckets[b], "\"} ", cumulative, "\n");
    }
    const uint64_t count = h.count.load(std::memory_order_relaxed);
    absl::StrAppend(&out, "nighfs_proxy_request_seconds_bucket{method=\"", kMethods[m],
                    "\",le=\"+Inf\"} ", count, "\n");
    absl::StrAppend(&out, "nighfs_proxy_request_seconds_sum{method=\"", kMethods[m], "\"} ",
                    absl::StrFormat("%.6f", h.sum_micros.load(std::memory_order_relaxed) / 1e6),
                    "\n");
    absl::StrAppend(&out, "nighfs_proxy_request_seconds_count{method=\"", kMethods[m], "\"} ",
                    count, "\n");
  }
  return out;
}

}  // namespace nighfs::proxy
