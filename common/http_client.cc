// HttpClient over libcurl's easy interface.
//
// Why a pool of easy handles: each easy handle owns a cache of live connections, so handing the
// same few handles out again and again is what keeps TCP (and TLS) connections alive across
// requests. The free list is LIFO so the handle used last, whose connection is the least likely
// to have been closed by the server's idle timeout, is used first. DNS answers and TLS sessions
// are shared between all handles through a CURLSH, so a new handle still skips the lookup and
// resumes the TLS session instead of a full handshake.
#include "common/http_client.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace nighfs {
namespace {
bool HeaderNameEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}
}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (HeaderNameEquals(key, name)) return value;
  }
  return "";
}

namespace {

// Bodies announced larger than this are not reserved up front (a lying server must not make us
// allocate gigabytes before it sends a byte).
constexpr curl_off_t kMaxBodyReserve = curl_off_t{256} << 20;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // CURL_GLOBAL_ALL initialises OpenSSL too; curl_global_init itself is not thread-safe,
    // hence call_once. Never paired with curl_global_cleanup: other handles may outlive us.
    CURLcode rc = curl_global_init(CURL_GLOBAL_ALL);
    if (rc != CURLE_OK) {
      NIGHFS_LOG(ERROR) << "curl_global_init failed: " << curl_easy_strerror(rc);
    }
  });
}

// "https://user:pw@host:9000/bucket/key?X-Amz-Signature=..." -> "https://host:9000/bucket/key":
// query strings carry presigned credentials and userinfo carries passwords, neither may reach
// a log or a status message.
std::string RedactUrl(std::string_view url) {
  if (size_t q = url.find_first_of("?#"); q != std::string_view::npos) url = url.substr(0, q);
  std::string out(url);
  size_t scheme = out.find("://");
  size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t path_start = out.find('/', host_start);
  size_t at = out.rfind('@', path_start == std::string::npos ? std::string::npos : path_start);
  if (at != std::string::npos && at >= host_start &&
      (path_start == std::string::npos || at < path_start)) {
    out.erase(host_start, at + 1 - host_start);
  }
  return out;
}

bool HasCrOrLf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c <= 32 || c >= 127 || std::strchr("()<>@,;:\\\"/[]?={}", c) != nullptr) return false;
  }
  return true;
}

// RAII for the curl_slist of request headers.
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

absl::Status SlistAppend(Slist& list, const std::string& line) {
  curl_slist* next = curl_slist_append(list.get(), line.c_str());
  if (next == nullptr) return absl::ResourceExhaustedError("curl_slist_append failed");
  (void)list.release();  // `next` now owns the old list as its head
  list.reset(next);
  return absl::OkStatus();
}

// Per-request state the callbacks write into.
struct Transfer {
  HttpResponse* response;
  bool expect_body;  // false for HEAD: its Content-Length describes a body that never comes
};

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  t->response->body.append(data, size * nmemb);
  return size * nmemb;
}

size_t OnHeader(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  std::string_view line(data, n);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  HttpHeaders& headers = t->response->headers;
  if (line.substr(0, 5) == "HTTP/") {
    // A new status line: what came before belonged to an interim response (100 Continue) or
    // to a response curl will not return; keep only the final response's headers.
    headers.clear();
    t->response->body.clear();
    return n;
  }
  if (line.empty()) return n;
  if (line.front() == ' ' || line.front() == '\t') {
    // Obsolete line folding (RFC 7230 3.2.4): a continuation of the previous value.
    if (!headers.empty()) {
      size_t start = line.find_first_not_of(" \t");
      absl::StrAppend(&headers.back().second, " ",
                      std::string(line.substr(start == std::string_view::npos ? line.size() : start)));
    }
    return n;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return n;  // not a header; ignore rather than fail
  std::string_view name = line.substr(0, colon);
  std::string_view value = line.substr(colon + 1);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (t->expect_body && HeaderNameEquals(name, "Content-Length")) {
    // One allocation for the whole body instead of log2(size) doublings.
    curl_off_t length = 0;
    if (absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &length) && length > 0) {
      t->response->body.reserve(static_cast<size_t>(std::min(length, kMaxBodyReserve)));
    }
  }
  headers.emplace_back(std::string(name), std::string(value));
  return n;
}

absl::Status CurlError(CURLcode rc, const char* errbuf, std::string_view method,
                       std::string_view url) {
  std::string detail = (errbuf != nullptr && errbuf[0] != '\0') ? errbuf : curl_easy_strerror(rc);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == '\r')) detail.pop_back();
  std::string message =
      absl::StrCat(std::string(method), " ", RedactUrl(url), ": ", detail, " (curl ", rc, ")");
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::DeadlineExceededError(message);
    case CURLE_PEER_FAILED_VERIFICATION:  // also CURLE_SSL_CACERT: chain or host name
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      // The server is not who it must be, or our trust settings are wrong: asking again
      // gets the same certificate. Final, so a mount fails at once instead of retrying for
      // its whole timeout.
      return absl::FailedPreconditionError(absl::StrCat(
          message, "; TLS certificate verification failed: check ca_file (--ca-file), and that "
                   "the server's certificate names the host in the address"));
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      // The caller's mistake, not the network's: retrying cannot help.
      return absl::InvalidArgumentError(message);
    case CURLE_SSL_CONNECT_ERROR:
      if (absl::StrContains(detail, "wrong version number")) {
        // Typically https:// to a plain HTTP server; still retried (a restarting server can
        // cut a handshake short too), but the message says what to look at.
        return absl::UnavailableError(
            absl::StrCat(message, "; is the server plain HTTP? then use an http:// address"));
      }
      return absl::UnavailableError(message);
    default:
      // Refused, reset, DNS failures, send/recv errors, empty replies, truncated bodies, TLS
      // failures: all are the transport's.
      return absl::UnavailableError(message);
  }
}

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(const HttpClientOptions& options) : options_(options) {
    share_ = curl_share_init();
    if (share_ != nullptr) {
      curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &CurlHttpClient::Lock);
      curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &CurlHttpClient::Unlock);
      curl_share_setopt(share_, CURLSHOPT_USERDATA, this);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
  }

  ~CurlHttpClient() override {
    // The handles reference the share, so they go first.
    absl::MutexLock lock(&mu_);
    for (CURL* h : idle_) curl_easy_cleanup(h);
    idle_.clear();
    if (share_ != nullptr) curl_share_cleanup(share_);
  }

  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  absl::StatusOr<HttpResponse> Do(const HttpRequest& request) override;

 private:
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<CurlHttpClient*>(user)->share_locks_[LockIndex(data)].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<CurlHttpClient*>(user)->share_locks_[LockIndex(data)].unlock();
  }
  static size_t LockIndex(curl_lock_data data) {
    size_t i = static_cast<size_t>(data);
    return i < kNumShareLocks ? i : 0;
  }

  CURL* TakeHandle() {
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    return curl_easy_init();
  }

  // Puts a handle whose last transfer ended cleanly back on the free list (its connection
  // stays open for the next request), or frees it when the pool is full.
  void ReturnHandle(CURL* h) {
    curl_easy_reset(h);  // drops options and callbacks; keeps live connections and caches
    {
      absl::MutexLock lock(&mu_);
      if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
        idle_.push_back(h);
        return;
      }
    }
    curl_easy_cleanup(h);
  }

  absl::Status Configure(CURL* h, const HttpRequest& request, Transfer* transfer,
                         curl_slist* headers, char* errbuf) const;

  const HttpClientOptions options_;
  CURLSH* share_ = nullptr;
  static constexpr size_t kNumShareLocks = CURL_LOCK_DATA_LAST;
  std::array<std::mutex, kNumShareLocks> share_locks_;

  absl::Mutex mu_;
  std::vector<CURL*> idle_ ABSL_GUARDED_BY(mu_);
};

absl::Status CurlHttpClient::Configure(CURL* h, const HttpRequest& request, Transfer* transfer,
                                       curl_slist* headers, char* errbuf) const {
  // Each setopt below can only fail on out-of-memory or an option this libcurl lacks; collect
  // the first failure instead of checking forty return codes one by one.
  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, value);
  };
  const absl::Duration timeout =
      request.timeout > absl::ZeroDuration() ? request.timeout : options_.default_timeout;

  set(CURLOPT_ERRORBUFFER, errbuf);
  set(CURLOPT_URL, request.url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  set(CURLOPT_NOSIGNAL, 1L);  // no SIGALRM for DNS timeouts: we are multi-threaded
  set(CURLOPT_CONNECTTIMEOUT_MS,
      static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.connect_timeout))));
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout))));
  if (options_.low_speed_bytes > 0 && options_.low_speed_time > absl::ZeroDuration()) {
    set(CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
    set(CURLOPT_LOW_SPEED_TIME,
        static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(options_.low_speed_time))));
  }
  set(CURLOPT_TCP_NODELAY, 1L);
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_TCP_KEEPIDLE, 30L);
  set(CURLOPT_TCP_KEEPINTVL, 10L);
  set(CURLOPT_FOLLOWLOCATION, 0L);
  // libcurl allocates this buffer for every transfer and frees it at the end. Kept below 256
  // KiB, the mount's mmap threshold (mount/memory.cc), it comes from the heap and is reused;
  // at 256 KiB every metadata call paid an mmap, page faults and an munmap (a TLB shootdown
  // across the mount's threads): about a tenth of the mount's CPU per call.
  set(CURLOPT_BUFFERSIZE, (256L << 10) - (4L << 10));
  set(CURLOPT_SSL_VERIFYPEER, options_.tls_verify ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, options_.tls_verify ? 2L : 0L);
  if (!options_.ca_file.empty()) set(CURLOPT_CAINFO, options_.ca_file.c_str());
  if (share_ != nullptr) set(CURLOPT_SHARE, share_);

  set(CURLOPT_HTTPHEADER, headers);
  set(CURLOPT_WRITEFUNCTION, &OnBody);
  set(CURLOPT_WRITEDATA, transfer);
  set(CURLOPT_HEADERFUNCTION, &OnHeader);
  set(CURLOPT_HEADERDATA, transfer);

  // Bodies go through POSTFIELDS for every method that has one: curl then sends an exact
  // Content-Length (0 included) and can replay the body by itself when a kept-alive connection
  // turns out to be dead. POSTFIELDS does not copy, which is why `body` must outlive Do().
  // A null pointer would make curl read from stdin, hence "" for an empty body.
  const char* body = request.body.data() != nullptr ? request.body.data() : "";
  const auto body_size = static_cast<curl_off_t>(request.body.size());
  const std::string& m = request.method;
  if (m == "GET") {
    set(CURLOPT_HTTPGET, 1L);
    if (!request.body.empty()) {
      set(CURLOPT_POSTFIELDS, body);
      set(CURLOPT_POSTFIELDSIZE_LARGE, body_size);
      set(CURLOPT_CUSTOMREQUEST, "GET");
    }
  } else if (m == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else if (m == "POST") {
    set(CURLOPT_POSTFIELDS, body);
    set(CURLOPT_POSTFIELDSIZE_LARGE, body_size);
  } else if (m == "PUT") {
    set(CURLOPT_POSTFIELDS, body);
    set(CURLOPT_POSTFIELDSIZE_LARGE, body_size);
    set(CURLOPT_CUSTOMREQUEST, "PUT");
  } else {
    // DELETE and anything else: a body only if one was given (DELETE with Content-Length: 0
    // is legal but some servers dislike it).
    if (!request.body.empty()) {
      set(CURLOPT_POSTFIELDS, body);
      set(CURLOPT_POSTFIELDSIZE_LARGE, body_size);
    }
    set(CURLOPT_CUSTOMREQUEST, m.c_str());
  }
  if (rc != CURLE_OK) {
    return absl::InternalError(absl::StrCat("curl_easy_setopt: ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> CurlHttpClient::Do(const HttpRequest& request) {
  if (request.url.empty()) return absl::InvalidArgumentError("HttpClient: empty URL");
  if (!IsToken(request.method)) {
    return absl::InvalidArgumentError(absl::StrCat("HttpClient: bad method '", request.method, "'"));
  }
  if (HasCrOrLf(request.url)) return absl::InvalidArgumentError("HttpClient: CR/LF in URL");

  // Request headers exactly as given. curl would otherwise add "Expect: 100-continue" for
  // large bodies (a round trip of latency, and a 1 s stall against servers that ignore it),
  // "Content-Type: application/x-www-form-urlencoded" for POSTFIELDS bodies (wrong, and part
  // of S3/Azure signatures) and "Accept: */*"; an empty "Name:" line suppresses each.
  Slist headers;
  bool has_expect = false, has_content_type = false, has_accept = false;
  for (const auto& [name, value] : request.headers) {
    if (!IsToken(name) || HasCrOrLf(value)) {
      // Never echo the value: it may be a credential.
      return absl::InvalidArgumentError(absl::StrCat("HttpClient: invalid header '", name, "'"));
    }
    has_expect |= HeaderNameEquals(name, "Expect");
    has_content_type |= HeaderNameEquals(name, "Content-Type");
    has_accept |= HeaderNameEquals(name, "Accept");
    // "Name;" is curl's syntax for a header with an empty value ("Name:" would remove it).
    absl::Status s = SlistAppend(headers, value.empty() ? absl::StrCat(name, ";")
                                                        : absl::StrCat(name, ": ", value));
    if (!s.ok()) return s;
  }
  for (auto [present, line] : {std::pair{has_expect, "Expect:"},
                               std::pair{has_content_type, "Content-Type:"},
                               std::pair{has_accept, "Accept:"}}) {
    if (present) continue;
    if (absl::Status s = SlistAppend(headers, line); !s.ok()) return s;
  }

  GlobalInitOnce();
  CURL* h = TakeHandle();
  if (h == nullptr) return absl::ResourceExhaustedError("curl_easy_init failed");

  HttpResponse response;
  Transfer transfer{&response, request.method != "HEAD"};
  char errbuf[CURL_ERROR_SIZE] = {0};
  if (absl::Status s = Configure(h, request, &transfer, headers.get(), errbuf); !s.ok()) {
    curl_easy_cleanup(h);
    return s;
  }

  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    // The connection may be half-broken; a fresh handle is cheap compared to reusing it.
    curl_easy_cleanup(h);
    absl::Status s = CurlError(rc, errbuf, request.method, request.url);
    NIGHFS_LOG(DEBUG) << "http: " << s;
    return s;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  // Both are 0 when a kept-alive connection was reused; APPCONNECT covers TLS, CONNECT TCP.
  curl_off_t connect_us = 0, appconnect_us = 0;
  curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
  curl_easy_getinfo(h, CURLINFO_APPCONNECT_TIME_T, &appconnect_us);
  response.connect_time = absl::Microseconds(std::max(connect_us, appconnect_us));
  ReturnHandle(h);
  response.status = static_cast<int>(status);
  return response;
}

}  // namespace

std::unique_ptr<HttpClient> HttpClient::Create(const HttpClientOptions& options) {
  GlobalInitOnce();
  return std::make_unique<CurlHttpClient>(options);
}

}  // namespace nighfs
