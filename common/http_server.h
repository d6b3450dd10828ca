// An HTTP/1.1 server for the daemons (nighfs-meta, later nighfs-proxy), on Boost.Beast/Asio.
// Keep-alive connections, a fixed pool of threads, bounded request bodies. Handlers run on the
// pool's threads and may block (SQLite, disk; see HttpServerOptions::io_context_per_thread);
// they must be safe to call concurrently.
#ifndef NIGHFS_COMMON_HTTP_SERVER_H_
#define NIGHFS_COMMON_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
// Looks at a request before its body is read: std::nullopt lets it through, a response answers
// it instead (see HttpServerOptions::screen).
using HttpRequestScreen = std::function<std::optional<ServerResponse>(const ServerRequest&)>;

struct HttpServerOptions {
  std::string bind_address = "127.0.0.1";
  uint16_t port = 0;  // 0 = any free port; see HttpServer::port()
  int threads = 8;
  // How connections share the threads.
  // false: one io_context run by every thread; a connection's steps may run on any of them, so
  //   a handler that blocks for long (relaying a store request) stalls only its own connection.
  //   The price is a thread hand-off per step: the thread that waits in epoll wakes another
  //   one to take its place before it runs a completion.
  // true: each thread runs its own io_context, and a connection stays on one thread (the one
  //   with the fewest connections when it was accepted): its request is read, handled and
  //   answered there, with no hand-off. For quick handlers only: one that blocks stalls the
  //   other connections of its thread. One more thread accepts connections.
  bool io_context_per_thread = false;
  size_t max_body_bytes = 256u << 20;  // larger bodies get 413
  // Optional. Called with each request's method, target, headers and peer (body empty) once
  // its header has arrived, before any of its body is read or counted against
  // max_buffered_body_bytes (and before "100 Continue"): where a daemon refuses an anonymous
  // request, so strangers cannot fill the body budget. A response it returns is sent instead
  // of calling the handler; if a body was left unread, the connection is then closed. Runs on
  // the connection's thread, like the handler; must be safe to call concurrently.
  HttpRequestScreen screen;

  // Overload protection; 0 = no limit. A request is refused with 503 and "Retry-After" (which
  // HTTP clients, ConnectClient included, retry with backoff) rather than risk running out of
  // memory.
  //
  // Total request-body bytes held at once across all connections. A request reserves its
  // Content-Length before its body is read (a chunked body reserves as its chunks arrive) and
  // releases it when its response is sent. A request that does not fit waits up to
  // body_budget_wait for others to finish, then gets 503. Must be >= max_body_bytes.
  size_t max_buffered_body_bytes = 0;
  absl::Duration body_budget_wait = absl::Seconds(10);
  // Open connections in all, and from one peer IP address. A connection over either cap gets a
  // 503 for its first request and is closed.
  int max_connections = 0;
  int max_connections_per_peer = 0;
  int retry_after_seconds = 1;  // sent in "Retry-After" with every overload 503

  // TLS (1.2 and 1.3 only): the server's certificate chain and private key, PEM files read once
  // at Start(). Both empty: plain HTTP. On a TLS server a peer has tls_handshake_timeout from
  // connecting to the end of its handshake, and plain HTTP gets a 400 and a closed connection (never the handler).
  std::string tls_cert_file;
  std::string tls_key_file;
  absl::Duration tls_handshake_timeout = absl::Seconds(10);
};

// Counters of the overload protection (for tests and status pages).
struct HttpServerLoad {
  size_t buffered_body_bytes = 0;       // reserved now
  size_t peak_buffered_body_bytes = 0;  // highest reservation since Start()
  int connections = 0;                  // open, counted against the caps
  uint64_t rejected_busy = 0;           // 503s for want of body budget
  uint64_t rejected_connections = 0;    // 503s for the connection caps
};

class HttpServer {
 public:
  // Binds and starts serving at once (InvalidArgument for unreadable or mismatched TLS files).
  // Malformed HTTP gets a 400 and a closed connection,
  // bodies over max_body_bytes a 413, overload (see HttpServerOptions) a 503; the handler is
  // not called for any of them.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  virtual ~HttpServer() = default;  // stops (as Stop())

  virtual uint16_t port() const = 0;
  virtual HttpServerLoad load() const = 0;
  // Stops accepting, closes connections, joins the threads. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace nighfs

#endif  // NIGHFS_COMMON_HTTP_SERVER_H_
