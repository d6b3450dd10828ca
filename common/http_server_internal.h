// Internals of common/http_server (not for other modules): the connection (Session, in
// http_server.cc: TLS detection, header, body budget, handler, reply, lingering close) and the
// server that accepts and tracks connections (BeastHttpServer, in http_server_listener.cc).
// Threading and the Stop() ordering are described at the top of http_server.cc.
#ifndef NIGHFS_COMMON_HTTP_SERVER_INTERNAL_H_
#define NIGHFS_COMMON_HTTP_SERVER_INTERNAL_H_

#include <strings.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_server_tls.h"
#include "common/http_server.h"
#include "common/logging.h"

namespace nighfs::http_internal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

inline bool HeaderNameEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

inline bool HasCrOrLf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

inline std::string_view ToStd(beast::string_view s) {
  return std::string_view(s.data(), s.size());
}

// How long a kept-alive connection may sit idle, or a client may take to send a request's
// header. Bounds what a silent or slowloris client can pin.
constexpr auto kHeaderTimeout = std::chrono::seconds(120);
// How long a request body (up to max_body_bytes) may take to arrive, and a response to leave.
constexpr auto kTransferTimeout = std::chrono::minutes(5);
// After an error reply on a connection whose request was not fully read, keep reading (and
// discarding) for a while before closing: closing a socket with unread input makes the kernel
// send RST, and an RST can destroy the error reply before the client has read it.
constexpr auto kLingerTimeout = std::chrono::seconds(5);
constexpr size_t kLingerMaxBytes = 16u << 20;
constexpr uint32_t kHeaderLimit = 64u << 10;
// Before re-arming accept after a failure such as EMFILE, so the loop does not spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
// A connection over a cap only gets its first request's header read (to answer 503 in order);
// it may not pin a socket for the full kHeaderTimeout.
constexpr auto kRefusedHeaderTimeout = std::chrono::seconds(5);
// How often a request waiting for body budget looks again.
constexpr auto kBudgetPoll = std::chrono::milliseconds(10);
// A chunked body (no Content-Length) reserves budget in steps of this as it grows.
constexpr size_t kChunkedReserveStep = 1u << 20;

inline absl::Status ToStatus(const beast::error_code& ec, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", ec.message());
  if (ec.category() == boost::system::system_category()) {
    return absl::ErrnoToStatus(ec.value(), msg);
  }
  return absl::UnavailableError(msg);
}

inline std::string FormatEndpoint(const tcp::endpoint& ep) {
  const net::ip::address addr = ep.address();
  if (addr.is_v6()) return absl::StrCat("[", addr.to_string(), "]:", ep.port());
  return absl::StrCat(addr.to_string(), ":", ep.port());
}

class BeastHttpServer;

// What a connection counts against the caps of HttpServerOptions.
struct Admission {
  std::string peer_ip;
  bool counted = false;  // false: over a connection cap; the first request gets a 503
};

// One accepted connection. Owned by the shared_ptrs its pending operations hold; the server only
// keeps a weak_ptr to close it on Stop().
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `tls` (owned by the server, which outlives every session) null: plain HTTP.
  Session(BeastHttpServer* server, uint64_t id, int context, tcp::socket socket,
          std::string remote, Admission admission, net::ssl::context* tls)
      : server_(server),
        id_(id),
        context_(context),
        remote_(std::move(remote)),
        admission_(std::move(admission)),
        budget_timer_(socket.get_executor()) {
    if (tls != nullptr) {
      tls_.emplace(beast::tcp_stream(std::move(socket)), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void Start() {
    net::dispatch(tcp().get_executor(),
                  beast::bind_front_handler(tls_ ? &Session::DetectTls : &Session::ReadHeader,
                                            shared_from_this()));
  }

  // REQUIRES: no thread is running the io_context (see Stop()).
  void CloseForStop() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().close();
  }

 private:
  // The TCP layer: timeouts, shutdown, close, and raw reads that discard input.
  beast::tcp_stream& tcp() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }
  // Calls f(stream) with the stream HTTP messages travel on: TLS once its handshake is done,
  // else the TCP stream (plain servers, and the 400 for plain HTTP sent to a TLS port).
  template <class F>
  void WithStream(F&& f) {
    if (tls_ready_) {
      f(*tls_);
    } else {
      f(tcp());
    }
  }
  // TLS servers: look at the first bytes; a TLS ClientHello goes on to the handshake, anything
  // else (plain HTTP) gets a 400 and a closed connection, never the handler.
  void DetectTls();
  void OnDetectTls(beast::error_code ec, bool is_tls);
  void OnHandshake(beast::error_code ec, size_t used);
  void ReadHeader();
  void OnHeader(beast::error_code ec, size_t bytes);
  // Reserves the body's budget (waiting for it up to body_budget_wait), then reads the body.
  void ReserveBody();
  void OnBudgetTimer(beast::error_code ec);
  void StartBody();
  void OnContinueSent(beast::error_code ec, size_t bytes);
  void ReadBody();
  void OnBody(beast::error_code ec, size_t bytes);
  void OnChunkedBodyPart(beast::error_code ec, size_t bytes);
  void ReleaseBudget();
  ServerRequest HeaderOnly(const http::request<http::string_body>& req) const;
  bool Screened();
  void Dispatch();
  // linger: close after the reply and drain what the peer still sends (see OnErrorSent).
  void SendReply(ServerResponse reply, unsigned version, bool head, bool keep_alive, bool linger);
  void OnWrite(bool keep_alive, beast::error_code ec, size_t bytes);
  // Maps a read failure to a reply (413, 431, 400) or a silent close.
  void OnReadError(const beast::error_code& ec);
  // retry_after > 0 adds "Retry-After: <seconds>" (overload replies).
  void SendErrorAndClose(http::status status, std::string reason, int retry_after = 0);
  void OnErrorSent(beast::error_code ec, size_t bytes);
  void OnDrain(beast::error_code ec, size_t bytes);
  void CloseGracefully();
  void Abort();

  BeastHttpServer* const server_;
  const uint64_t id_;
  const int context_;  // index of the io_context the socket lives on
  // Exactly one of the two is set, for the connection's life.
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  bool tls_ready_ = false;  // the handshake is done: messages go through tls_
  const std::string remote_;
  const Admission admission_;
  // Body budget this connection holds now (see HttpServerOptions::max_buffered_body_bytes).
  size_t reserved_ = 0;
  net::steady_timer budget_timer_;
  std::chrono::steady_clock::time_point budget_give_up_;
  beast::flat_buffer buffer_;
  // A parser serves exactly one message; a fresh one is emplaced for each request.
  std::optional<http::request_parser<http::string_body>> parser_;
  unsigned request_version_ = 11;
  // Outgoing messages must stay alive until their async_write completes.
  http::response<http::string_body> response_;
  std::optional<http::response<http::empty_body>> continue_;
  std::unique_ptr<char[]> drain_buffer_;
  size_t drained_ = 0;
};

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(const HttpServerOptions& options, HttpHandler handler)
      : options_(options),
        handler_(std::move(handler)),
        context_sessions_(ContextCount(options), 0),
        contexts_(MakeContexts(ContextCount(options))),
        acceptor_(*contexts_[0]),
        accept_retry_(*contexts_[0]) {
    for (const auto& ioc : contexts_) work_.push_back(net::make_work_guard(*ioc));
  }

  ~BeastHttpServer() override { Stop(); }

  absl::Status Listen();
  void Run();
  void SetTls(std::unique_ptr<net::ssl::context> tls) { tls_ = std::move(tls); }

  uint16_t port() const override { return port_; }
  HttpServerLoad load() const override;
  void Stop() override;

  const HttpServerOptions& options() const { return options_; }
  const HttpHandler& handler() const { return handler_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  void Forget(uint64_t id, int context, const Admission& admission) {
    absl::MutexLock lock(&mu_);
    sessions_.erase(id);
    --context_sessions_[context];
    if (!admission.counted) return;
    --connections_;
    auto it = per_peer_.find(admission.peer_ip);
    if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
  }
  // Adds `n` bytes to the body budget if they fit. Always true without a budget.
  bool TryReserve(size_t n) {
    absl::MutexLock lock(&mu_);
    const size_t cap = options_.max_buffered_body_bytes;
    if (cap > 0 && (n > cap || buffered_ > cap - n)) return false;
    buffered_ += n;
    peak_buffered_ = std::max(peak_buffered_, buffered_);
    return true;
  }
  void Release(size_t n) {
    absl::MutexLock lock(&mu_);
    buffered_ -= std::min(n, buffered_);
  }
  void CountBusyReject() {
    absl::MutexLock lock(&mu_);
    ++rejected_busy_;
  }

 private:
  // One shared context; or the acceptor's, then one per connection thread.
  static size_t ContextCount(const HttpServerOptions& options) {
    return options.io_context_per_thread ? static_cast<size_t>(std::max(options.threads, 1)) + 1
                                         : 1;
  }
  static std::vector<std::unique_ptr<net::io_context>> MakeContexts(size_t n) {
    std::vector<std::unique_ptr<net::io_context>> contexts;
    // A context run by one thread never wakes another; a shared one must.
    const int hint = n > 1 ? 1 : BOOST_ASIO_CONCURRENCY_HINT_DEFAULT;
    for (size_t i = 0; i < n; ++i) contexts.push_back(std::make_unique<net::io_context>(hint));
    return contexts;
  }
  void Accept();
  void OnAccept(int context, beast::error_code ec, tcp::socket socket);

  const HttpServerOptions options_;
  const HttpHandler handler_;
  std::unique_ptr<net::ssl::context> tls_;  // null: plain HTTP; outlives every Session
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};

  absl::Mutex stop_mu_;  // serialises Stop()
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;

  // Declared before contexts_ on purpose: sessions still queued in an io_context are destroyed
  // with it, and their destructors call Forget(), so mu_ and sessions_ must outlive contexts_.
  mutable absl::Mutex mu_;
  uint64_t next_session_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<uint64_t, std::weak_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  int connections_ ABSL_GUARDED_BY(mu_) = 0;  // counted ones only
  absl::flat_hash_map<std::string, int> per_peer_ ABSL_GUARDED_BY(mu_);
  size_t buffered_ ABSL_GUARDED_BY(mu_) = 0;
  size_t peak_buffered_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_busy_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t rejected_connections_ ABSL_GUARDED_BY(mu_) = 0;
  // Open sessions on each io_context (new connections go to the least busy one).
  std::vector<int> context_sessions_ ABSL_GUARDED_BY(mu_);

  // One shared io_context; or, with HttpServerOptions::io_context_per_thread, the acceptor's
  // and one for each connection thread after it. Each is run by its own thread(s).
  std::vector<std::unique_ptr<net::io_context>> contexts_;
  tcp::acceptor acceptor_;  // on contexts_[0], as everything the server itself waits on
  net::steady_timer accept_retry_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

}  // namespace nighfs::http_internal

#endif  // NIGHFS_COMMON_HTTP_SERVER_INTERNAL_H_
