// An HTTP/1.1 server for the daemons (nighfs-meta, later nighfs-proxy), on Boost.Beast/Asio.
// Keep-alive connections, a fixed pool of threads, bounded request bodies. Handlers run on the
// pool's threads and may block (SQLite, disk); they must be safe to call concurrently.
#ifndef NIGHFS_COMMON_HTTP_SERVER_H_
#define NIGHFS_COMMON_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/http_client.h"  // HttpHeaders

namespace nighfs {

struct ServerRequest {
  std::string method;  // "POST", "GET", ...
  std::string target;  // path and query as sent, e.g. "/nighfs.meta.v1.MetaService/Lookup"
  HttpHeaders headers;
  std::string body;
  std::string remote;  // peer "ip:port", for logs
  std::string Header(std::string_view name) const;  // case-insensitive; empty if absent
};

struct ServerResponse {
  int status = 200;
  std::string content_type = "application/octet-stream";
  HttpHeaders headers;  // extra headers
  std::string body;
  // Close the connection without sending anything (fault injection in tests).
  bool close_without_reply = false;
};

using HttpHandler = std::function<ServerResponse(const ServerRequest&)>;

struct HttpServerOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port; see HttpServer::port()
  int threads = 8;
  size_t max_body_bytes = 256u << 20;  // larger bodies get 413
};

class HttpServer {
 public:
  // Binds and starts serving at once. Malformed HTTP gets a 400 and a closed connection,
  // bodies over max_body_bytes a 413; the handler is not called for either.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  virtual ~HttpServer() = default;  // stops (as Stop())

  virtual uint16_t port() const = 0;
  // Stops accepting, closes connections, joins the threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace nighfs

#endif  // NIGHFS_COMMON_HTTP_SERVER_H_
