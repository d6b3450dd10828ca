// An HTTP/1.1 client over libcurl with a pool of kept-alive connections, safe for concurrent use
// from many threads. One HttpClient is meant to live for the whole process (or per endpoint
// group): reusing it is what avoids a TCP and TLS handshake per request.
#ifndef NIGHFS_COMMON_HTTP_CLIENT_H_
#define NIGHFS_COMMON_HTTP_CLIENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nighfs {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, POST, HEAD, DELETE
  std::string url;             // http:// or https://
  HttpHeaders headers;         // sent as given (no curl defaults such as "Expect: 100-continue")
  std::string_view body;       // must stay live until Do() returns
  // 0 = the client's default. Overall time for this request.
  absl::Duration timeout = absl::ZeroDuration();
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // names as received
  std::string body;
  // Time this request spent opening a new connection (TCP, and TLS for https) before it was
  // sent; zero when it reused a kept-alive one. A latency probe subtracts it: a handshake is
  // several round trips and says nothing about the next request on the connection.
  absl::Duration connect_time = absl::ZeroDuration();
  // Case-insensitive header lookup; empty if absent.
  std::string Header(std::string_view name) const;
};

struct HttpClientOptions {
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration default_timeout = absl::Seconds(60);
  // Abort a transfer slower than low_speed_bytes/s for low_speed_time (0 disables).
  long low_speed_bytes = 1024;
  absl::Duration low_speed_time = absl::Seconds(30);
  int max_idle_connections = 64;
  // TLS: verify the peer's chain and host name (default) against ca_file (PEM) if set, else
  // the system store.
  bool tls_verify = true;
  std::string ca_file;
};

class HttpClient {
 public:
  static std::unique_ptr<HttpClient> Create(const HttpClientOptions& options = {});
  virtual ~HttpClient() = default;

  // Performs one request. Transport failures (refused, reset, DNS, timeout) are returned as
  // Unavailable or DeadlineExceeded with curl's message; a TLS certificate that fails
  // verification (unknown CA, wrong host name, unreadable ca_file) as FailedPrecondition, which
  // retry loops do not retry (common/retry.h); any HTTP status, 4xx and 5xx included,
  // is a successful HttpResponse for the caller to interpret.
  virtual absl::StatusOr<HttpResponse> Do(const HttpRequest& request) = 0;
};

}  // namespace nighfs

#endif  // NIGHFS_COMMON_HTTP_CLIENT_H_
