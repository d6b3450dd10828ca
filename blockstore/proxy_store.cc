#include "blockstore/proxy_store.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/call_deadline.h"
#include "blockstore/http_store_util.h"
#include "blockstore/s3_responses.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// What the proxy listens on unless told otherwise (proxy-design.md).
constexpr std::string_view kDefaultPort = "7430";

// Block ids are allocated upward from 1: this one is never written, so a HEAD of it proves the
// token is accepted for the volume with a 404 and reads nothing.
std::string CheckKey() { return BlockKey(~uint64_t{0}); }

class HttpProxyStore final : public ProxyStore {
 public:
  HttpProxyStore(ProxyStoreOptions options, std::string url, std::unique_ptr<HttpClient> http,
                 std::unique_ptr<HttpClient> ping_http)
      : options_(std::move(options)),
        url_(std::move(url)),
        described_(absl::StrCat("proxy ", url_)),
        volume_path_(absl::StrCat("/", PercentEncode(options_.volume, Slash::kEncode), "/")),
        http_(std::move(http)),
        ping_http_(std::move(ping_http)) {}

  const std::string& url() const override { return url_; }
  std::string Describe() const override { return described_; }

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (length == 0) return ZeroLengthRead(*this, key);
    HttpHeaders headers;
    std::string range = ByteRangeHeader(offset, length);
    const bool ranged = !range.empty();
    if (ranged) headers.emplace_back("Range", std::move(range));
    ASSIGN_OR_RETURN(HttpResponse r, Execute("GET", key, std::move(headers), ""));
    if (r.status == 206) {
      // A 206 for another range than ours would hand back the wrong bytes of a block.
      const std::string content_range = r.Header("Content-Range");
      uint64_t start = 0;
      const size_t dash = content_range.find('-');
      if (!absl::StartsWith(content_range, "bytes ") || dash == std::string::npos ||
          !absl::SimpleAtoi(absl::string_view(content_range).substr(6, dash - 6), &start) ||
          start != offset) {
        return absl::DataLossError(absl::StrCat(described_, " GET ", What(key),
                                                ": asked for bytes from ", offset,
                                                ", got Content-Range '", content_range, "'"));
      }
      if (r.body.size() > length) r.body.resize(length);
      return std::move(r.body);
    }
    if (r.status == 200) {
      // The whole object: no range was asked for, or the server ignored it (HTTP allows that).
      if (!ranged) return std::move(r.body);
      if (offset >= r.body.size()) return std::string();
      return r.body.substr(offset, length);
    }
    if (r.status == 416) return std::string();  // the offset is at or past the end
    return ErrorFor("GET", key, r);
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    return PutAndLocate(key, data).status();
  }

  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override {
    RETURN_IF_ERROR(ValidateKey(key));
    const std::string checksum = Crc32cHeaderValue(Crc32c(data));
    HttpHeaders headers = {{"Content-Type", "application/octet-stream"},
                           {kChecksumCrc32cHeader, checksum}};
    ASSIGN_OR_RETURN(HttpResponse r, Execute("PUT", key, std::move(headers), data));
    if (r.status != 200 && r.status != 201 && r.status != 204) return ErrorFor("PUT", key, r);
    // The proxy echoes the checksum of what it stored: another value means it holds other
    // bytes than ours under the key, which must not be taken for an acknowledgement.
    if (const std::string echoed = r.Header(kChecksumCrc32cHeader);
        !echoed.empty() && echoed != checksum) {
      return absl::DataLossError(absl::StrCat(described_, " PUT ", What(key),
                                              ": the proxy acknowledged checksum ", echoed,
                                              ", we sent ", checksum));
    }
    return r.Header(kHolderHeader);
  }

  absl::Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    ASSIGN_OR_RETURN(HttpResponse r, Execute("DELETE", key, {}, ""));
    if (r.status == 200 || r.status == 202 || r.status == 204) return absl::OkStatus();
    if (r.status == 404) return absl::OkStatus();  // already gone
    return ErrorFor("DELETE", key, r);
  }

  absl::StatusOr<ObjectInfo> Head(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    ASSIGN_OR_RETURN(HttpResponse r, Execute("HEAD", key, {}, ""));
    if (r.status != 200) return ErrorFor("HEAD", key, r);
    ObjectInfo info;
    info.key = std::string(key);
    if (!absl::SimpleAtoi(r.Header("Content-Length"), &info.size)) {
      return absl::InternalError(absl::StrCat(described_, " HEAD ", What(key),
                                              ": response has no valid Content-Length"));
    }
    return info;
  }

  absl::StatusOr<ListPage> List(std::string_view, std::string_view, int) override {
    return absl::UnimplementedError(absl::StrCat(
        described_, ": a proxy serves blocks by key and cannot list them; list the volume's "
                    "object store instead"));
  }

  absl::Status Check() override {
    if (absl::StatusOr<absl::Duration> rtt = Ping(); !rtt.ok()) {
      return absl::Status(rtt.status().code(),
                          absl::StrCat("check of ", described_, " failed: cannot reach it: ",
                                       rtt.status().message()));
    }
    // One attempt: the ping just proved the proxy reachable, and what is asked is whether it
    // takes the token. It answers 401/403 before it looks for the block anywhere.
    RetryPolicy once = options_.retry;
    once.max_attempts = 1;
    const std::string key = CheckKey();
    absl::StatusOr<HttpResponse> r = Execute("HEAD", key, {}, "", once);
    if (!r.ok()) {
      // Retryable failures only (transport, 5xx): answered, so the token passed; what failed
      // is behind it, most likely the object store, which the proxy's writeback rides out.
      NIGHFS_LOG(WARNING) << described_ << " accepted the token, but could not answer for a "
                          << "block: " << r.status() << "; mounting anyway";
      return absl::OkStatus();
    }
    if (r->status == 200 || r->status == 404) return absl::OkStatus();
    const absl::Status s = ErrorFor("HEAD", key, *r);
    return absl::Status(s.code(), absl::StrCat("check of ", described_, " failed: ", s.message()));
  }

  absl::StatusOr<absl::Duration> Ping() override {
    if (ping_in_flight_.exchange(true)) {
      return absl::UnavailableError(
          absl::StrCat(described_, ": the previous ping is still unanswered"));
    }
    HttpRequest req;
    req.method = "GET";
    req.url = absl::StrCat(url_, "/ping");
    req.timeout = options_.ping_timeout;
    const absl::Time start = absl::Now();
    absl::StatusOr<HttpResponse> r = ping_http_->Do(req);
    const absl::Duration rtt = absl::Now() - start;
    ping_in_flight_.store(false);
    // curl's message names the method and URL already.
    if (!r.ok()) return r.status();
    if (r->status != 200) {
      return absl::UnavailableError(absl::StrCat("GET ", req.url, ": ", r->status,
                                                 " (not a nighfs-proxy, or not ready)"));
    }
    // A ping that had to open the connection (the first one, or after the proxy closed it)
    // would count the TCP and TLS handshakes, several round trips, as latency: at start that
    // made the group probed first look farther than it is, and a switch followed.
    return std::max(rtt - r->connect_time, absl::ZeroDuration());
  }

 private:
  // "VOLUME/KEY": what messages name.
  std::string What(std::string_view key) const {
    return absl::StrCat(options_.volume, "/", AV(key));
  }

  // Attempts one request until a response that is not a transient failure; returns it (any
  // status) or the last transient failure.
  absl::StatusOr<HttpResponse> Execute(std::string_view method, std::string_view key,
                                       HttpHeaders headers, std::string_view body) {
    return Execute(method, key, std::move(headers), body, options_.retry);
  }
  absl::StatusOr<HttpResponse> Execute(std::string_view method, std::string_view key,
                                       HttpHeaders headers, std::string_view body,
                                       const RetryPolicy& policy) {
    headers.emplace_back("Authorization", absl::StrCat("Bearer ", options_.token));
    HttpRequest req;
    req.method = std::string(method);
    req.url = absl::StrCat(url_, volume_path_, PercentEncode(key, Slash::kKeep));
    req.headers = std::move(headers);
    req.body = body;
    req.timeout = options_.request_timeout;
    const std::string what = What(key);
    HttpResponse result;
    RETURN_IF_ERROR(SendWithRetries(
        *http_, policy, {described_, method, what}, [&]() { return req; },
        [&](HttpResponse& r) -> absl::Status {
          if (r.status >= 300) {
            absl::Status error = ErrorFor(method, key, r);
            if (IsRetryable(error)) {
              WaitRetryAfter(r);
              return error;
            }
          }
          result = std::move(r);
          return absl::OkStatus();
        },
        options_.token));
    return result;
  }

  // Sleeps for the response's `Retry-After` seconds (capped at the policy's max_backoff; the
  // HTTP-date form is not used by the proxy and is ignored). The backoff of the retry loop
  // comes on top: it is small next to this, and keeps retries of many writers jittered.
  void WaitRetryAfter(const HttpResponse& r) const {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(r.Header("Retry-After"), &seconds) || seconds <= 0) return;
    // Never past the caller's deadline (call_deadline.h): the retry would not be sent anyway.
    absl::SleepFor(std::min({absl::Seconds(seconds), options_.retry.max_backoff,
                             CallDeadline() - absl::Now()}));
  }

  absl::Status ErrorFor(std::string_view method, std::string_view key,
                        const HttpResponse& r) const {
    ServiceError e = ParseS3Error(r);
    absl::StatusCode code = CodeForHttpStatus(r.status);
    std::string hint;
    if (r.status == 400 && e.code == "BadDigest") {
      // The bytes arrived damaged (or were sent damaged): the proxy stored nothing.
      code = absl::StatusCode::kDataLoss;
    } else if (r.status == 401) {
      hint = "the proxy did not accept the token (check token_file)";
    } else if (r.status == 403) {
      hint = absl::StrCat("the token may not ", method == "GET" || method == "HEAD" ? "read" : "write",
                          " blocks of volume '", options_.volume,
                          "' (a read-only token cannot write; a token of another volume "
                          "cannot reach this one)");
    } else if (r.status == 413) {
      code = absl::StatusCode::kInvalidArgument;  // EntityTooLarge: larger than any block
    } else if (r.status == 416) {
      code = absl::StatusCode::kOutOfRange;
    } else if (r.status == 501) {
      code = absl::StatusCode::kUnimplemented;  // the same answer every time: not retried
    } else if (code == absl::StatusCode::kUnknown) {
      code = r.status >= 400 ? absl::StatusCode::kFailedPrecondition
                             : absl::StatusCode::kInternal;
    }
    if (e.code.empty() && e.message.empty() && method != "HEAD" && !r.body.empty()) {
      e.message = std::string(absl::StripAsciiWhitespace(r.body.substr(0, 160)));
    }
    if (const std::string retry_after = r.Header("Retry-After"); !retry_after.empty()) {
      absl::StrAppend(&hint, hint.empty() ? "" : "; ", "Retry-After ", retry_after);
    }
    return absl::Status(code, FormatHttpError({described_, method, What(key)}, r.status, e, hint));
  }

  const ProxyStoreOptions options_;
  const std::string url_;          // "https://host:port"
  const std::string described_;    // "proxy https://host:port"
  const std::string volume_path_;  // "/<volume>/"
  const std::unique_ptr<HttpClient> http_;       // block requests: pooled kept-alive connections
  const std::unique_ptr<HttpClient> ping_http_;  // one kept-alive connection for pings
  std::atomic<bool> ping_in_flight_{false};
};

}  // namespace

// Only an authority: a path would move every block URL, and userinfo would put a secret in
// logs.
absl::StatusOr<std::string> NormalizeProxyAddress(std::string_view address) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("proxy address '", AV(address), "': ",
                                                   AV(why), " (expected HOST:PORT, or "
                                                   "http://HOST:PORT for plain text)"));
  };
  std::string scheme = "https";
  std::string_view rest = address;
  if (const size_t sep = rest.find("://"); sep != std::string_view::npos) {
    scheme = absl::AsciiStrToLower(AV(rest.substr(0, sep)));
    if (scheme != "http" && scheme != "https") return bad("the scheme must be http or https");
    rest.remove_prefix(sep + 3);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty()) return bad("no host");
  if (rest.find('@') != std::string_view::npos) return bad("no user:password@ allowed");
  for (char c : rest) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
          c == ':' || c == '[' || c == ']' || c == '_')) {
      return bad("bad character in host name (no path allowed)");
    }
  }
  std::string authority(rest);
  const size_t bracket = rest.rfind(']');
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos ||
      (bracket != std::string_view::npos && colon < bracket)) {
    absl::StrAppend(&authority, ":", AV(kDefaultPort));
  } else {
    int port = 0;
    if (colon == 0 || !absl::SimpleAtoi(AV(rest.substr(colon + 1)), &port) || port <= 0 ||
        port > 65535) {
      return bad("bad port");
    }
  }
  return absl::StrCat(scheme, "://", authority);
}

std::string Crc32cHeaderValue(uint32_t crc32c) {
  const char be[4] = {static_cast<char>(crc32c >> 24), static_cast<char>(crc32c >> 16),
                      static_cast<char>(crc32c >> 8), static_cast<char>(crc32c)};
  return Base64Encode(std::string_view(be, 4));
}

std::optional<uint32_t> ParseCrc32cHeader(std::string_view value) {
  std::optional<std::string> bytes = Base64Decode(value);
  if (!bytes.has_value() || bytes->size() != 4) return std::nullopt;
  uint32_t crc = 0;
  for (unsigned char c : *bytes) crc = (crc << 8) | c;
  return crc;
}

absl::StatusOr<std::unique_ptr<ProxyStore>> ProxyStore::Create(const ProxyStoreOptions& options) {
  ASSIGN_OR_RETURN(std::string url, NormalizeProxyAddress(options.address));
  if (options.volume.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("proxy ", url, ": no volume name"));
  }
  HttpClientOptions ho;
  ho.connect_timeout = options.connect_timeout;
  ho.default_timeout = options.request_timeout;
  ho.ca_file = options.ca_file;
  std::unique_ptr<HttpClient> http = HttpClient::Create(ho);
  HttpClientOptions po = ho;
  po.connect_timeout = std::min(options.connect_timeout, options.ping_timeout);
  po.default_timeout = options.ping_timeout;
  po.max_idle_connections = 1;
  std::unique_ptr<HttpClient> ping_http = HttpClient::Create(po);
  if (http == nullptr || ping_http == nullptr) {
    return absl::InternalError("cannot create an HTTP client");
  }
  return std::make_unique<HttpProxyStore>(options, std::move(url), std::move(http),
                                          std::move(ping_http));
}

absl::StatusOr<ProxyStore*> ProxyStores::For(std::string_view address) {
  absl::MutexLock l(&mu_);
  auto it = stores_.find(AV(address));
  if (it != stores_.end()) return it->second.get();
  ProxyStoreOptions o = base_;
  o.address = std::string(address);
  ASSIGN_OR_RETURN(std::unique_ptr<ProxyStore> store, ProxyStore::Create(o));
  ProxyStore* p = store.get();
  stores_.emplace(std::string(address), std::move(store));
  return p;
}

}  // namespace nighfs::blockstore
