#include "proxy/server.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "proxy/daemon.h"

namespace nighfs::proxy {

size_t DefaultBodyBudget(uint64_t max_object_size) {
  return static_cast<size_t>(std::max<uint64_t>(4 * max_object_size, 256u << 20));
}

namespace {

constexpr char kChecksumHeader[] = "x-amz-checksum-crc32c";
constexpr char kHolderHeader[] = "x-nighfs-holder";

std::string XmlEscape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// An S3-shaped error reply.
ServerResponse S3Error(int status, absl::string_view code, absl::string_view message,
                       absl::string_view resource = "") {
  ServerResponse r;
  r.status = status;
  r.content_type = "application/xml";
  r.body = absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>", code,
                        "</Code><Message>", XmlEscape(message), "</Message>");
  if (!resource.empty()) absl::StrAppend(&r.body, "<Resource>", XmlEscape(resource), "</Resource>");
  absl::StrAppend(&r.body, "</Error>\n");
  if (status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

ServerResponse Text(int status, std::string body) {
  ServerResponse r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

// A failure of the cache or a store, as the client should see it.
ServerResponse StatusReply(const absl::Status& s, absl::string_view resource) {
  switch (s.code()) {
    case absl::StatusCode::kUnauthenticated:
      return S3Error(401, "Unauthorized", s.message(), resource);
    case absl::StatusCode::kPermissionDenied:
      return S3Error(403, "AccessDenied", s.message(), resource);
    case absl::StatusCode::kNotFound:
      return S3Error(404, "NoSuchKey", s.message(), resource);
    case absl::StatusCode::kAlreadyExists:
      return S3Error(409, "ObjectImmutable", s.message(), resource);
    case absl::StatusCode::kResourceExhausted:
      return S3Error(503, "SlowDown", s.message(), resource);
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
      return S3Error(503, "ServiceUnavailable", s.message(), resource);
    default:
      return S3Error(500, "InternalError", s.message(), resource);
  }
}

// The big-endian bytes of a CRC32C, as S3's checksum headers carry them (base64).
std::string CrcBytes(uint32_t crc) {
  return std::string{static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                     static_cast<char>(crc >> 8), static_cast<char>(crc)};
}

// A failure of a block store (or of fetching from one), as the client should see it: the
// store's own refusals (bad credentials, say) are the proxy's problem, never a 401/403 that
// would make a client doubt its token.
ServerResponse StoreReply(const absl::Status& s, absl::string_view resource) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
      return S3Error(404, "NoSuchKey", s.message(), resource);
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
      return S3Error(503, "ServiceUnavailable", absl::StrCat("block store: ", s.message()),
                     resource);
    default:
      return S3Error(502, "BadGateway", absl::StrCat("block store: ", s.message()), resource);
  }
}

std::string ChecksumBase64(uint32_t crc) { return Base64Encode(CrcBytes(crc)); }

std::string ETag(uint32_t crc) { return absl::StrFormat("\"%08x\"", crc); }

// "Authorization: Bearer <secret>" -> secret; "" when absent or another scheme.
std::string BearerSecret(const ServerRequest& req) {
  std::string value = req.Header("Authorization");
  absl::string_view v = absl::StripAsciiWhitespace(value);
  if (v.size() < 7 || !absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) return "";
  return std::string(absl::StripAsciiWhitespace(v.substr(7)));
}

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};

// The range a "Range" header asks of an object of `size` bytes: nullopt for the whole object
// (no header, or one we do not understand, which RFC 9110 says to ignore); OutOfRange when
// unsatisfiable.
absl::StatusOr<std::optional<ByteRange>> ParseRange(absl::string_view header, uint64_t size) {
  if (header.empty()) return std::nullopt;
  absl::string_view spec = header;
  if (!absl::ConsumePrefix(&spec, "bytes=") || spec.find(',') != absl::string_view::npos) {
    return std::nullopt;
  }
  const size_t dash = spec.find('-');
  if (dash == absl::string_view::npos) return std::nullopt;
  absl::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last b bytes
    uint64_t n = 0;
    if (!absl::SimpleAtoi(b, &n)) return std::nullopt;
    if (n == 0 || size == 0) return absl::OutOfRangeError("empty suffix range");
    n = std::min(n, size);
    return ByteRange{size - n, size - 1};
  }
  if (!absl::SimpleAtoi(a, &first)) return std::nullopt;
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!absl::SimpleAtoi(b, &last) || last < first) {
    return std::nullopt;
  }
  if (first >= size) return absl::OutOfRangeError("range starts past the end");
  return ByteRange{first, std::min(last, size - 1)};
}

class ProxyServerImpl : public ProxyServer {
 public:
  ProxyServerImpl(ProxyOptions options, MetaApi* meta, StoreOpener opener)
      : options_(std::move(options)), meta_(meta), opener_(std::move(opener)) {}
  ~ProxyServerImpl() override { Stop(); }

  absl::Status Init();

  uint16_t port() const override { return http_->port(); }
  const std::string& advertise() const override { return advertise_; }
  const ReconcileReport& reconcile_report() const override { return report_; }
  DiskCache& cache() override { return *cache_; }
  Writeback* writeback() override { return writeback_.get(); }
  Authorizer& authorizer() override { return *authorizer_; }
  ProxyMetrics& metrics() override { return metrics_; }
  HttpServerLoad load() const override { return http_->load(); }
  void Stop() override {
    if (http_ != nullptr) http_->Stop();
    if (writeback_ != nullptr) writeback_->Stop();
  }

 private:
  struct Flight {
    absl::Notification done;
    absl::StatusOr<std::shared_ptr<const std::string>> result;
  };
  struct BlockRequest {
    std::string volume;
    std::string key;
    std::string resource;  // "/volume/key" for error bodies
  };

  ServerResponse Handle(const ServerRequest& req);
  // HttpServerOptions::screen: a PUT's path, method and token are checked before its body is
  // read, so a stranger cannot fill the body budget.
  std::optional<ServerResponse> Screen(const ServerRequest& req);
  // The checks of a block request that need no body: path, method, token. A reply when the
  // request ends there; else *block and *grant are filled.
  std::optional<ServerResponse> Admit(const ServerRequest& req, BlockRequest* block, Grant* grant);
  ServerResponse HandleBlock(const ServerRequest& req);
  ServerResponse Put(const ServerRequest& req, const BlockRequest& block, const Grant& grant,
                     blockstore::BlockStore& store);
  ServerResponse Get(const ServerRequest& req, const BlockRequest& block, const Grant& grant,
                     blockstore::BlockStore& store, bool head);
  ServerResponse Delete(const BlockRequest& block, const Grant& grant,
                        blockstore::BlockStore& store);
  // The block from the cache, or else fetched once from the store however many ask at once.
  absl::StatusOr<std::shared_ptr<const std::string>> ReadBlock(uint64_t volume_id,
                                                               const std::string& key,
                                                               blockstore::BlockStore& store,
                                                               bool* hit);

  const ProxyOptions options_;
  MetaApi* const meta_;
  const StoreOpener opener_;
  ProxyMetrics metrics_;
  ReconcileReport report_;
  std::unique_ptr<DiskCache> cache_;
  std::unique_ptr<Volumes> volumes_;
  std::unique_ptr<Writeback> writeback_;
  std::unique_ptr<Authorizer> authorizer_;
  std::string advertise_;
  std::atomic<bool> ready_{false};  // the authorizer exists (set once the port is known)
  std::unique_ptr<HttpServer> http_;

  absl::Mutex flights_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Flight>> flights_ ABSL_GUARDED_BY(flights_mu_);
};

absl::Status ProxyServerImpl::Init() {
  DiskCacheOptions cache_options = options_.cache;
  cache_options.metrics = &metrics_;
  absl::StatusOr<std::unique_ptr<DiskCache>> cache = DiskCache::Open(cache_options, &report_);
  if (!cache.ok()) return cache.status();
  cache_ = *std::move(cache);
  volumes_ = std::make_unique<Volumes>(&cache_->journal(), opener_);
  if (absl::Status s = volumes_->Load(); !s.ok()) return s;
  if (options_.writeback) {
    writeback_ = std::make_unique<Writeback>(options_.writeback_options, cache_.get(),
                                             volumes_.get(), meta_, &metrics_);
    writeback_->Start();
  } else if (!cache_->DirtyBlocks().empty()) {
    // Unflushed blocks of an earlier run with writeback: they still go to the store.
    writeback_ = std::make_unique<Writeback>(options_.writeback_options, cache_.get(),
                                             volumes_.get(), meta_, &metrics_);
    writeback_->Start();
  }
  HttpServerOptions http = options_.http;
  http.max_body_bytes = static_cast<size_t>(options_.max_object_size);
  if (http.max_buffered_body_bytes == 0) {
    http.max_buffered_body_bytes = DefaultBodyBudget(options_.max_object_size);
  }
  http.max_buffered_body_bytes = std::max(http.max_buffered_body_bytes, http.max_body_bytes);
  http.screen = [this](const ServerRequest& req) { return Screen(req); };
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(http, [this](const ServerRequest& req) { return Handle(req); });
  if (!server.ok()) return server.status();
  http_ = *std::move(server);
  advertise_ = options_.advertise.empty()
                   ? DefaultAdvertise(HostPort{http.bind_address, http.port}, http_->port(),
                                      /*plaintext=*/http.tls_cert_file.empty())
                   : options_.advertise;
  AuthorizerOptions auth;
  auth.meta = meta_;
  auth.proxy_address = advertise_;
  auth.ttl = options_.token_cache_ttl;
  authorizer_ = std::make_unique<Authorizer>(std::move(auth));
  ready_.store(true);
  return absl::OkStatus();
}

ServerResponse ProxyServerImpl::Handle(const ServerRequest& req) {
  absl::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  const bool get = req.method == "GET" || req.method == "HEAD";
  // Probes: no auth, and /ping touches neither disk nor store.
  if (path == "/ping" && get) return Text(200, "pong\n");
  if (path == "/healthz" && get) {
    absl::Status health = cache_->Health();
    return health.ok() ? Text(200, "ok\n") : Text(503, absl::StrCat(health.message(), "\n"));
  }
  if (path == "/metrics" && get) {
    ServerResponse r = Text(200, metrics_.Render(cache_->Gauges()));
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    return r;
  }
  if (!ready_.load()) return S3Error(503, "ServiceUnavailable", "starting");

  const absl::Time start = absl::Now();
  ServerResponse r = HandleBlock(req);
  metrics_.ObserveRequest(req.method, absl::ToDoubleSeconds(absl::Now() - start));
  return r;
}

std::optional<ServerResponse> ProxyServerImpl::Screen(const ServerRequest& req) {
  // Only a PUT has a body worth refusing before it is read; the rest are checked in Handle.
  if (req.method != "PUT" || !ready_.load()) return std::nullopt;
  BlockRequest block;
  Grant grant;
  return Admit(req, &block, &grant);
}

std::optional<ServerResponse> ProxyServerImpl::Admit(const ServerRequest& req,
                                                     BlockRequest* block, Grant* grant) {
  absl::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  // "/{volume}/{key}"
  absl::string_view rest = path;
  if (!absl::ConsumePrefix(&rest, "/")) {
    return S3Error(400, "InvalidURI", "the path must be /VOLUME/KEY");
  }
  const size_t slash = rest.find('/');
  block->resource = std::string(path);
  if (slash == absl::string_view::npos || slash == 0) {
    return S3Error(400, "InvalidURI", "the path must be /VOLUME/KEY (no listings)",
                   block->resource);
  }
  block->volume = std::string(rest.substr(0, slash));
  block->key = std::string(rest.substr(slash + 1));
  if (absl::Status s = blockstore::ValidateKey(block->key);
      !s.ok() || !absl::StartsWith(block->key, "blk/")) {
    return S3Error(400, "InvalidObjectName",
                   s.ok() ? "block keys start with blk/" : std::string(s.message()),
                   block->resource);
  }
  const bool write = req.method == "PUT" || req.method == "DELETE";
  if (!write && req.method != "GET" && req.method != "HEAD") {
    ServerResponse r =
        S3Error(405, "MethodNotAllowed", "GET, HEAD, PUT or DELETE", block->resource);
    r.headers.emplace_back("Allow", "GET, HEAD, PUT, DELETE");
    return r;
  }
  absl::StatusOr<Grant> granted = authorizer_->Authorize(BearerSecret(req), block->volume);
  if (!granted.ok()) {
    if (granted.status().code() == absl::StatusCode::kNotFound) {
      return S3Error(404, "NoSuchBucket", granted.status().message(), block->resource);
    }
    return StatusReply(granted.status(), block->resource);
  }
  if (write && !granted->may_write()) {
    return S3Error(403, "AccessDenied", "this token may only read", block->resource);
  }
  *grant = *std::move(granted);
  return std::nullopt;
}

ServerResponse ProxyServerImpl::HandleBlock(const ServerRequest& req) {
  BlockRequest block;
  Grant grant;
  if (std::optional<ServerResponse> refused = Admit(req, &block, &grant)) return *refused;
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> store = volumes_->StoreFor(grant.volume);
  if (!store.ok()) return StoreReply(store.status(), block.resource);
  if (req.method == "PUT") return Put(req, block, grant, **store);
  if (req.method == "DELETE") return Delete(block, grant, **store);
  return Get(req, block, grant, **store, req.method == "HEAD");
}

ServerResponse ProxyServerImpl::Put(const ServerRequest& req, const BlockRequest& block,
                                    const Grant& grant, blockstore::BlockStore& store) {
  if (req.body.size() > options_.max_object_size) {
    return S3Error(413, "EntityTooLarge",
                   absl::StrCat("a block is at most ", options_.max_object_size, " bytes"),
                   block.resource);
  }
  const uint32_t crc = Crc32c(req.body);
  if (std::string sent = req.Header(kChecksumHeader); !sent.empty()) {
    const absl::string_view trimmed = absl::StripAsciiWhitespace(sent);
    std::optional<std::string> raw = Base64Decode(std::string_view(trimmed.data(), trimmed.size()));
    if (!raw.has_value() || raw->size() != 4) {
      return S3Error(400, "InvalidDigest", "x-amz-checksum-crc32c is not 4 bytes of base64",
                     block.resource);
    }
    if (*raw != CrcBytes(crc)) {
      return S3Error(400, "BadDigest", "the body does not match x-amz-checksum-crc32c",
                     block.resource);
    }
  }
  const uint64_t volume_id = grant.volume.id();
  bool dirty = false;
  if (options_.writeback) {
    bool existed = false;
    if (absl::Status s = cache_->PutDirty(volume_id, block.key, req.body, crc, &existed);
        !s.ok()) {
      if (s.code() != absl::StatusCode::kAlreadyExists) {
        NIGHFS_LOG(WARNING) << "proxy: PUT " << block.resource << " refused: " << s;
      }
      return StatusReply(s, block.resource);
    }
    if (existed) {
      std::optional<BlockInfo> info = cache_->Lookup(volume_id, block.key);
      dirty = info.has_value() && info->dirty;
    } else {
      // Decided before the writeback can flush it: a holder that has flushed is harmless
      // (readers try the store first), a missing one while unflushed is not.
      dirty = true;
      writeback_->Enqueue(volume_id, block.key, absl::Now());
    }
  } else {
    if (std::optional<BlockInfo> info = cache_->Lookup(volume_id, block.key);
        info.has_value() && (info->size != req.body.size() || info->crc32c != crc)) {
      return S3Error(409, "ObjectImmutable",
                     "the block exists with different contents; blocks are never overwritten",
                     block.resource);
    }
    if (absl::Status s = store.Put(block.key, req.body); !s.ok()) {
      NIGHFS_LOG(WARNING) << "proxy: write-through PUT " << block.resource << ": " << s;
      return StoreReply(s.code() == absl::StatusCode::kNotFound
                            ? absl::UnavailableError(s.message())
                            : s,
                        block.resource);
    }
    // Cached for readers if it fits; the store has it either way.
    (void)cache_->PutClean(volume_id, block.key, req.body, crc);
  }
  metrics_.bytes_in.fetch_add(req.body.size());
  ServerResponse r;
  r.status = 200;
  r.content_type = "";
  r.headers.emplace_back("ETag", ETag(crc));
  r.headers.emplace_back(kChecksumHeader, ChecksumBase64(crc));
  if (dirty) r.headers.emplace_back(kHolderHeader, advertise_);
  return r;
}

absl::StatusOr<std::shared_ptr<const std::string>> ProxyServerImpl::ReadBlock(
    uint64_t volume_id, const std::string& key, blockstore::BlockStore& store, bool* hit) {
  *hit = false;
  absl::StatusOr<std::string> cached = cache_->Read(volume_id, key);
  if (cached.ok()) {
    *hit = true;
    return std::make_shared<const std::string>(*std::move(cached));
  }
  // DataLoss: the corrupt copy is gone already; fetch it again like a miss.
  if (cached.status().code() != absl::StatusCode::kNotFound &&
      cached.status().code() != absl::StatusCode::kDataLoss) {
    return cached.status();
  }
  const std::string flight_key = absl::StrCat(volume_id, "/", key);
  std::shared_ptr<Flight> flight;
  bool leader = false;
  {
    absl::MutexLock lock(&flights_mu_);
    std::shared_ptr<Flight>& slot = flights_[flight_key];
    if (slot == nullptr) {
      slot = std::make_shared<Flight>();
      leader = true;
    }
    flight = slot;
  }
  if (!leader) {
    flight->done.WaitForNotification();
    return flight->result;
  }
  metrics_.store_gets.fetch_add(1);
  absl::StatusOr<std::string> fetched = store.Get(key);
  if (fetched.ok()) {
    auto data = std::make_shared<const std::string>(*std::move(fetched));
    // Cached for the next reader if it fits (clean blocks are evictable; a full quota of
    // dirty ones just means this one is served uncached).
    (void)cache_->PutClean(volume_id, key, *data, Crc32c(*data));
    flight->result = data;
  } else {
    flight->result = fetched.status();
  }
  {
    absl::MutexLock lock(&flights_mu_);
    flights_.erase(flight_key);
  }
  flight->done.Notify();
  return flight->result;
}

ServerResponse ProxyServerImpl::Get(const ServerRequest& req, const BlockRequest& block,
                                    const Grant& grant, blockstore::BlockStore& store,
                                    bool head) {
  const uint64_t volume_id = grant.volume.id();
  ServerResponse r;
  r.status = 200;
  r.content_type = "application/octet-stream";
  r.headers.emplace_back("Accept-Ranges", "bytes");
  if (head) {
    // The journal knows size and checksum; HEAD reads no block from disk.
    if (std::optional<BlockInfo> info = cache_->Lookup(volume_id, block.key)) {
      metrics_.hits.fetch_add(1);
      r.headers.emplace_back("Content-Length", absl::StrCat(info->size));
      r.headers.emplace_back("ETag", ETag(info->crc32c));
      r.headers.emplace_back(kChecksumHeader, ChecksumBase64(info->crc32c));
      return r;
    }
    metrics_.misses.fetch_add(1);
    absl::StatusOr<blockstore::ObjectInfo> info = store.Head(block.key);
    if (!info.ok()) return StoreReply(info.status(), block.resource);
    r.headers.emplace_back("Content-Length", absl::StrCat(info->size));
    return r;
  }
  bool hit = false;
  absl::StatusOr<std::shared_ptr<const std::string>> data =
      ReadBlock(volume_id, block.key, store, &hit);
  (hit ? metrics_.hits : metrics_.misses).fetch_add(1);
  if (!data.ok()) return StoreReply(data.status(), block.resource);
  const std::string& bytes = **data;
  const uint32_t crc = Crc32c(bytes);
  r.headers.emplace_back("ETag", ETag(crc));
  absl::StatusOr<std::optional<ByteRange>> range = ParseRange(req.Header("Range"), bytes.size());
  if (!range.ok()) {
    ServerResponse e = S3Error(416, "InvalidRange", "the range is not satisfiable", block.resource);
    e.headers.emplace_back("Content-Range", absl::StrCat("bytes */", bytes.size()));
    return e;
  }
  if (range->has_value()) {
    const ByteRange& br = **range;
    r.status = 206;
    r.headers.emplace_back("Content-Range",
                           absl::StrCat("bytes ", br.first, "-", br.last, "/", bytes.size()));
    r.body = bytes.substr(br.first, br.last - br.first + 1);
  } else {
    r.headers.emplace_back(kChecksumHeader, ChecksumBase64(crc));
    if (data->use_count() == 1) {
      // Ours alone (a cache hit, or a fetch nobody else waited for): no second copy in memory.
      r.body = std::move(*std::const_pointer_cast<std::string>(*data));
    } else {
      r.body = bytes;
    }
  }
  metrics_.bytes_out.fetch_add(r.body.size());
  return r;
}

ServerResponse ProxyServerImpl::Delete(const BlockRequest& block, const Grant& grant,
                                       blockstore::BlockStore& store) {
  const uint64_t volume_id = grant.volume.id();
  // An upload in flight finishes first; a queued one never starts.
  if (writeback_ != nullptr) writeback_->Cancel(volume_id, block.key);
  if (absl::Status s = cache_->Remove(volume_id, block.key); !s.ok()) {
    return StatusReply(s, block.resource);
  }
  // Also when it was never flushed: an earlier upload attempt may have landed unreported.
  if (absl::Status s = store.Delete(block.key); !s.ok()) return StoreReply(s, block.resource);
  ServerResponse r;
  r.status = 204;
  r.content_type = "";
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::Start(ProxyOptions options,
                                                                 MetaApi* meta,
                                                                 StoreOpener opener) {
  auto server = std::make_unique<ProxyServerImpl>(std::move(options), meta, std::move(opener));
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return std::unique_ptr<ProxyServer>(std::move(server));
}

}  // namespace nighfs::proxy
