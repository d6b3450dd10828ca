// nighfs-proxy as a library: the cache, the writeback, the authorizer and the HTTP routes
// (docs: proxy-design "Proxy HTTP API"), started together. main.cc parses flags into
// ProxyOptions; tests start it on loopback with a fake MetaApi and in-memory stores.
#ifndef NIGHFS_PROXY_SERVER_H_
#define NIGHFS_PROXY_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http_server.h"
#include "metadata_client/meta_api.h"
#include "proxy/authorizer.h"
#include "proxy/disk_cache.h"
#include "proxy/metrics.h"
#include "proxy/volumes.h"
#include "proxy/writeback.h"

namespace nighfs::proxy {

struct ProxyOptions {
  // HTTP. http.max_body_bytes is set to max_object_size; http.max_buffered_body_bytes 0 means
  // DefaultBodyBudget(max_object_size).
  HttpServerOptions http;
  // The address clients are told to come back to (x-nighfs-holder, proxy_address):
  // "HOST:PORT" (https) or "http://HOST:PORT"; "" = the bound address (DefaultAdvertise).
  std::string advertise;
  uint64_t max_object_size = 64u << 20;
  bool writeback = true;  // false: write-through (acknowledge after the store has the block)
  DiskCacheOptions cache;  // cache.metrics is set by Start
  WritebackOptions writeback_options;
  absl::Duration token_cache_ttl = absl::Seconds(10);
};

// Request bodies held at once across all connections: 4 objects of the largest size, at least
// 256 MiB. Beyond it a PUT waits (HttpServerOptions.body_budget_wait), then gets 503.
size_t DefaultBodyBudget(uint64_t max_object_size);

class ProxyServer {
 public:
  // Opens the cache (reconciling it with the journal), starts the writeback and the HTTP
  // server. `meta` must outlive the server.
  static absl::StatusOr<std::unique_ptr<ProxyServer>> Start(ProxyOptions options, MetaApi* meta,
                                                            StoreOpener opener);
  virtual ~ProxyServer() = default;  // Stop()

  virtual uint16_t port() const = 0;
  virtual const std::string& advertise() const = 0;
  virtual const ReconcileReport& reconcile_report() const = 0;
  virtual DiskCache& cache() = 0;
  virtual Writeback* writeback() = 0;  // null with writeback off
  virtual Authorizer& authorizer() = 0;
  virtual ProxyMetrics& metrics() = 0;
  virtual HttpServerLoad load() const = 0;
  // Stops serving (in-flight requests finish), then the writeback. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_SERVER_H_
