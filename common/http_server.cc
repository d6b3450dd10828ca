// HttpServer on Boost.Beast 1.74 + Asio.
//
// Threading (HttpServerOptions::io_context_per_thread):
// - shared: one io_context run by options.threads threads. Every connection's socket lives on
//   its own strand, so a connection's reads, writes, timer and handler call never run
//   concurrently, while different connections proceed in parallel. The handler runs on the
//   strand (an io thread) and may block; that only stalls its own connection and one io thread.
// - per thread: options.threads io_contexts for the connections, each run by one thread
//   (concurrency hint 1: no wake-ups of other threads). A connection's socket lives on one of
//   them for its whole life; one thread is a strand by itself. The acceptor has a context and
//   a thread of its own, so a handler that blocks does not stop new connections from being
//   accepted (and placed on other threads).
//
// Stop() stops the io_context, joins the threads (waiting for handlers in flight), and only then,
// with no thread left touching any socket, closes the acceptor and every tracked connection. That
// ordering is what makes closing sockets from the Stop() caller's thread safe without posting to
// each strand. Stop() must therefore not be called from inside a handler (it would join itself).
#include "common/http_server.h"

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
#include "common/logging.h"

namespace nighfs {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

bool HeaderNameEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool HasCrOrLf(std::string_view s) { return s.find_first_of("\r\n") != std::string_view::npos; }

std::string_view ToStd(beast::string_view s) { return std::string_view(s.data(), s.size()); }

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

absl::Status ToStatus(const beast::error_code& ec, std::string_view what) {
  std::string msg = absl::StrCat(std::string(what), ": ", ec.message());
  if (ec.category() == boost::system::system_category()) return absl::ErrnoToStatus(ec.value(), msg);
  return absl::UnavailableError(msg);
}

std::string FormatEndpoint(const tcp::endpoint& ep) {
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

// ---------------------------------------------------------------------------------------------
// Session

Session::~Session() {
  ReleaseBudget();
  server_->Forget(id_, context_, admission_);
}

void Session::ReleaseBudget() {
  if (reserved_ == 0) return;
  server_->Release(reserved_);
  reserved_ = 0;
}

void Session::DetectTls() {
  if (server_->stopping()) return Abort();
  // Detection and handshake together. A peer that connects and says nothing holds no thread
  // (every wait is asynchronous), only a socket and a connection slot, and only this long.
  tcp().expires_after(absl::ToChronoNanoseconds(server_->options().tls_handshake_timeout));
  beast::async_detect_ssl(tcp(), buffer_,
                          beast::bind_front_handler(&Session::OnDetectTls, shared_from_this()));
}

void Session::OnDetectTls(beast::error_code ec, bool is_tls) {
  if (ec) {
    NIGHFS_LOG(DEBUG) << "http: " << remote_ << ": before the TLS handshake: " << ec.message();
    return Abort();
  }
  if (!is_tls) {
    return SendErrorAndClose(http::status::bad_request,
                             "this server speaks HTTPS only; plain HTTP is refused (use https://)");
  }
  tls_->async_handshake(net::ssl::stream_base::server, buffer_.data(),
                        beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
}

void Session::OnHandshake(beast::error_code ec, size_t used) {
  if (ec) {
    // A client that does not trust our certificate ends here too ("unknown ca" alert).
    NIGHFS_LOG(DEBUG) << "http: " << remote_ << ": TLS handshake failed: " << ec.message();
    return Abort();
  }
  buffer_.consume(used);
  tls_ready_ = true;
  ReadHeader();
}

void Session::ReadHeader() {
  if (server_->stopping()) return Abort();
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(static_cast<std::uint64_t>(server_->options().max_body_bytes));
  tcp().expires_after(admission_.counted ? kHeaderTimeout : kRefusedHeaderTimeout);
  WithStream([&](auto& stream) {
    http::async_read_header(stream, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  });
}

void Session::OnHeader(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  request_version_ = parser_->get().version();
  if (!admission_.counted) {
    return SendErrorAndClose(http::status::service_unavailable,
                             "too many connections to this server; retry later",
                             server_->options().retry_after_seconds);
  }
  if (Screened()) return;
  if (parser_->is_done()) return Dispatch();  // no body
  budget_give_up_ = std::chrono::steady_clock::now() +
                    absl::ToChronoNanoseconds(server_->options().body_budget_wait);
  ReserveBody();
}

void Session::ReserveBody() {
  if (server_->stopping()) return Abort();
  // The parser has refused a Content-Length over max_body_bytes already. The string body
  // reserves the whole Content-Length when the body starts, so that is what is held.
  const auto length = parser_->content_length();  // boost::optional
  const size_t want = length ? static_cast<size_t>(*length)
                             : std::min(kChunkedReserveStep, server_->options().max_body_bytes);
  if (server_->TryReserve(want)) {
    reserved_ += want;
    return StartBody();
  }
  if (std::chrono::steady_clock::now() >= budget_give_up_) {
    server_->CountBusyReject();
    return SendErrorAndClose(http::status::service_unavailable,
                             "server busy: too many request bytes in flight; retry later",
                             server_->options().retry_after_seconds);
  }
  budget_timer_.expires_after(kBudgetPoll);
  budget_timer_.async_wait(beast::bind_front_handler(&Session::OnBudgetTimer, shared_from_this()));
}

void Session::OnBudgetTimer(beast::error_code ec) {
  if (ec) return Abort();
  ReserveBody();
}

void Session::StartBody() {
  const auto& header = parser_->get();
  // A client that asked to wait (Expect: 100-continue) would otherwise stall until its own
  // timeout before sending the body. Oversized bodies were already refused by the parser.
  if (auto it = header.find(http::field::expect);
      it != header.end() && beast::iequals(it->value(), "100-continue") && header.version() >= 11) {
    continue_.emplace(http::status::continue_, header.version());
    tcp().expires_after(kTransferTimeout);
    WithStream([&](auto& stream) {
      http::async_write(stream, *continue_,
                        beast::bind_front_handler(&Session::OnContinueSent, shared_from_this()));
    });
    return;
  }
  ReadBody();
}

void Session::OnContinueSent(beast::error_code ec, size_t) {
  continue_.reset();
  if (ec) return Abort();
  ReadBody();
}

void Session::ReadBody() {
  tcp().expires_after(kTransferTimeout);
  if (!parser_->content_length()) {
    WithStream([&](auto& stream) {
      http::async_read_some(stream, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnChunkedBodyPart,
                                                      shared_from_this()));
    });
    return;
  }
  // Beast reads at most the read buffer's free capacity per receive, and a fresh flat_buffer
  // is small: a 4 MiB block then arrived ~4 KiB per read (220-340 ms on loopback instead of
  // ~30 ms). Large bodies get a 256 KiB read buffer; small RPCs keep a small one, so idle
  // connections stay cheap.
  const size_t want = std::min<size_t>(*parser_->content_length(), 256u << 10);
  if (buffer_.capacity() < want) buffer_.reserve(want);
  WithStream([&](auto& stream) {
    http::async_read(stream, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  });
}

// A chunked body grows as it arrives: reserve what it holds before reading more. Waiting here
// while holding budget could deadlock against other growing bodies, so a body that cannot grow
// is refused at once.
void Session::OnChunkedBodyPart(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  if (parser_->is_done()) return Dispatch();
  const size_t held = parser_->get().body().capacity();
  if (held + kChunkedReserveStep > reserved_) {
    const size_t more = held + kChunkedReserveStep - reserved_;
    if (!server_->TryReserve(more)) {
      server_->CountBusyReject();
      return SendErrorAndClose(http::status::service_unavailable,
                               "server busy: too many request bytes in flight; retry later",
                               server_->options().retry_after_seconds);
    }
    reserved_ += more;
  }
  WithStream([&](auto& stream) {
    http::async_read_some(stream, buffer_, *parser_,
                          beast::bind_front_handler(&Session::OnChunkedBodyPart,
                                                    shared_from_this()));
  });
}

void Session::OnBody(beast::error_code ec, size_t) {
  if (ec) return OnReadError(ec);
  Dispatch();
}

void Session::OnReadError(const beast::error_code& ec) {
  if (ec == http::error::end_of_stream) return CloseGracefully();  // client done with us
  if (ec == http::error::body_limit) {
    return SendErrorAndClose(
        http::status::payload_too_large,
        absl::StrCat("request body exceeds the server's limit of ",
                     server_->options().max_body_bytes, " bytes"));
  }
  if (ec == http::error::header_limit) {
    return SendErrorAndClose(http::status::request_header_fields_too_large,
                             absl::StrCat("request header exceeds ", kHeaderLimit, " bytes"));
  }
  static const beast::error_category& http_category =
      http::make_error_code(http::error::bad_method).category();
  if (ec.category() == http_category && ec != http::error::partial_message &&
      ec != http::error::bad_alloc) {
    return SendErrorAndClose(http::status::bad_request,
                             absl::StrCat("malformed HTTP request: ", ec.message()));
  }
  // Timeouts, resets, a client gone mid-request, Stop(): nobody to answer.
  NIGHFS_LOG(DEBUG) << "http: " << remote_ << ": " << ec.message();
  Abort();
}

// The request line and headers as the handlers see them (no body).
ServerRequest Session::HeaderOnly(const http::request<http::string_body>& req) const {
  ServerRequest request;
  request.method = std::string(ToStd(req.method_string()));
  request.target = std::string(ToStd(req.target()));
  request.headers.reserve(std::distance(req.begin(), req.end()));
  for (const auto& field : req) {
    request.headers.emplace_back(std::string(ToStd(field.name_string())),
                                 std::string(ToStd(field.value())));
  }
  request.remote = remote_;
  return request;
}

namespace {

ServerResponse InternalError(const std::string& why) {
  ServerResponse reply;
  reply.status = 500;
  reply.content_type = "text/plain; charset=utf-8";
  reply.body = absl::StrCat("internal server error: ", why, "\n");
  return reply;
}

// Calls handler(request); an exception it throws becomes a logged 500.
template <class R, class F>
R CallLogged(const F& handler, const ServerRequest& request, const char* what) {
  try {
    return handler(request);
  } catch (const std::exception& e) {
    NIGHFS_LOG(ERROR) << "http: " << what << " threw on " << request.method << " "
                      << request.target << ": " << e.what();
    return InternalError(e.what());
  } catch (...) {
    NIGHFS_LOG(ERROR) << "http: " << what << " threw a non-exception on " << request.method
                      << " " << request.target;
    return InternalError("unknown exception");
  }
}

}  // namespace

// Runs the screen on a request whose header has arrived. True when it answered (the reply is
// on its way and the session must do nothing more with this request).
bool Session::Screened() {
  const HttpRequestScreen& screen = server_->options().screen;
  if (!screen) return false;
  const ServerRequest request = HeaderOnly(parser_->get());
  std::optional<ServerResponse> reply =
      CallLogged<std::optional<ServerResponse>>(screen, request, "request screen");
  if (!reply) return false;
  const unsigned version = parser_->get().version();
  const bool head = parser_->get().method() == http::verb::head;
  // A body left unread cannot be told from the next request: close after the reply, with the
  // lingering drain of the error path so the reply is not lost to an RST.
  const bool body_unread = !parser_->is_done();
  const bool keep_alive = parser_->get().keep_alive() && !body_unread;
  parser_.reset();
  SendReply(std::move(*reply), version, head, keep_alive, /*linger=*/body_unread);
  return true;
}

void Session::Dispatch() {
  http::request<http::string_body> req = parser_->release();
  parser_.reset();
  const bool head = req.method() == http::verb::head;
  const bool keep_alive = req.keep_alive();

  ServerRequest request = HeaderOnly(req);
  request.body = std::move(req.body());
  ServerResponse reply = CallLogged<ServerResponse>(server_->handler(), request, "handler");
  std::string().swap(request.body);
  ReleaseBudget();
  SendReply(std::move(reply), req.version(), head, keep_alive, /*linger=*/false);
}

void Session::SendReply(ServerResponse reply, unsigned version, bool head, bool keep_alive,
                        bool linger) {
  if (reply.close_without_reply) return Abort();

  if (reply.status < 200 || reply.status > 999) {
    // 1xx is interim, not a final answer; anything else is not a status at all.
    NIGHFS_LOG(ERROR) << "http: handler returned invalid status " << reply.status;
    reply = InternalError("handler returned an invalid status");
  }

  response_ = {};
  response_.version(version);
  response_.result(static_cast<unsigned>(reply.status));
  // The server owns message framing; a handler (e.g. a proxy relaying an upstream's headers)
  // may pass Content-Length only to say how long a HEAD response's entity is.
  std::optional<uint64_t> head_length;
  bool has_content_type = false;
  for (const auto& [name, value] : reply.headers) {
    if (name.empty() || HasCrOrLf(name) || HasCrOrLf(value) ||
        name.find(':') != std::string::npos) {
      NIGHFS_LOG(WARNING) << "http: dropping invalid response header '" << name << "'";
      continue;
    }
    if (HeaderNameEquals(name, "Content-Length")) {
      uint64_t n = 0;
      if (head && absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n)) {
        head_length = n;
      }
      continue;
    }
    if (HeaderNameEquals(name, "Transfer-Encoding") || HeaderNameEquals(name, "Connection") ||
        HeaderNameEquals(name, "Keep-Alive")) {
      continue;
    }
    has_content_type |= HeaderNameEquals(name, "Content-Type");
    response_.insert(beast::string_view(name.data(), name.size()),
                     beast::string_view(value.data(), value.size()));
  }
  if (!has_content_type && !reply.content_type.empty() && !HasCrOrLf(reply.content_type)) {
    response_.set(http::field::content_type, reply.content_type);
  }
  const bool bodyless_status = reply.status == 204 || reply.status == 304;
  if (bodyless_status) {
    // RFC 9110: neither a body nor Content-Length.
  } else if (head) {
    response_.content_length(head_length.value_or(reply.body.size()));
  } else {
    response_.content_length(reply.body.size());
    response_.body() = std::move(reply.body);
  }
  keep_alive = keep_alive && !linger && !server_->stopping();
  response_.keep_alive(keep_alive);

  tcp().expires_after(kTransferTimeout);
  WithStream([&](auto& stream) {
    if (linger) {
      http::async_write(stream, response_,
                        beast::bind_front_handler(&Session::OnErrorSent, shared_from_this()));
      return;
    }
    http::async_write(stream, response_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this(),
                                                keep_alive));
  });
}

void Session::OnWrite(bool keep_alive, beast::error_code ec, size_t) {
  response_ = {};  // release a possibly large body now rather than at the next response
  if (ec) {
    NIGHFS_LOG(DEBUG) << "http: write to " << remote_ << ": " << ec.message();
    return Abort();
  }
  if (!keep_alive) return CloseGracefully();
  ReadHeader();
}

void Session::SendErrorAndClose(http::status status, std::string reason, int retry_after) {
  NIGHFS_LOG(DEBUG) << "http: " << remote_ << ": " << static_cast<unsigned>(status) << " "
                    << reason;
  parser_.reset();
  ReleaseBudget();
  response_ = {};
  response_.version(request_version_ == 10 ? 10 : 11);
  response_.result(status);
  response_.set(http::field::content_type, "text/plain; charset=utf-8");
  if (retry_after > 0) response_.set(http::field::retry_after, std::to_string(retry_after));
  response_.body() = std::move(reason);
  response_.body() += "\n";
  response_.content_length(response_.body().size());
  response_.keep_alive(false);
  tcp().expires_after(kTransferTimeout);
  WithStream([&](auto& stream) {
    http::async_write(stream, response_,
                      beast::bind_front_handler(&Session::OnErrorSent, shared_from_this()));
  });
}

void Session::OnErrorSent(beast::error_code ec, size_t) {
  response_ = {};
  if (ec) return Abort();
  // Lingering close: half-close, then swallow whatever the client is still sending until it
  // closes too (or the limits run out), so the error reply is not lost to an RST. On TLS the
  // drained bytes are records nobody decrypts: only the socket's orderly end matters.
  beast::error_code ignored;
  tcp().socket().shutdown(tcp::socket::shutdown_send, ignored);
  drain_buffer_ = std::make_unique<char[]>(64 << 10);
  drained_ = 0;
  tcp().expires_after(kLingerTimeout);
  tcp().async_read_some(net::buffer(drain_buffer_.get(), 64 << 10),
                          beast::bind_front_handler(&Session::OnDrain, shared_from_this()));
}

void Session::OnDrain(beast::error_code ec, size_t bytes) {
  drained_ += bytes;
  if (ec || drained_ > kLingerMaxBytes || server_->stopping()) return Abort();
  tcp().async_read_some(net::buffer(drain_buffer_.get(), 64 << 10),
                          beast::bind_front_handler(&Session::OnDrain, shared_from_this()));
}

// On TLS without a close_notify alert: every response is framed by Content-Length, so the peer
// cannot mistake a truncation for the end, and waiting for the peer's alert could pin the
// connection.
void Session::CloseGracefully() {
  beast::error_code ec;
  tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
  tcp().close();
}

void Session::Abort() { tcp().close(); }

// ---------------------------------------------------------------------------------------------
// Server

absl::Status BeastHttpServer::Listen() {
  beast::error_code ec;
  tcp::resolver resolver(*contexts_[0]);
  auto results = resolver.resolve(options_.bind_address, std::to_string(options_.port),
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve bind address '",
                                                   options_.bind_address, "': ",
                                                   ec ? ec.message() : "no results"));
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  const std::string where = FormatEndpoint(endpoint);
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return ToStatus(ec, absl::StrCat("socket for ", where));
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return ToStatus(ec, absl::StrCat("SO_REUSEADDR on ", where));
  acceptor_.bind(endpoint, ec);
  if (ec) return ToStatus(ec, absl::StrCat("bind ", where));
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return ToStatus(ec, absl::StrCat("listen on ", where));
  tcp::endpoint local = acceptor_.local_endpoint(ec);
  if (ec) return ToStatus(ec, "getsockname");
  port_ = local.port();
  return absl::OkStatus();
}

void BeastHttpServer::Run() {
  Accept();
  const int n = contexts_.size() > 1 ? static_cast<int>(contexts_.size())
                                     : std::max(options_.threads, 1);
  threads_.reserve(n);
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back([&ioc = *contexts_[i % contexts_.size()]] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          // A completion handler threw (bad_alloc...): log and keep serving the others.
          NIGHFS_LOG(ERROR) << "http server: unexpected exception: " << e.what();
        }
      }
    });
  }
}

void BeastHttpServer::Accept() {
  if (contexts_.size() == 1) {
    acceptor_.async_accept(net::make_strand(*contexts_[0]),
                           beast::bind_front_handler(&BeastHttpServer::OnAccept, this, 0));
    return;
  }
  int context = 1;  // contexts_[0] is the acceptor's own
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 2; i < context_sessions_.size(); ++i) {
      if (context_sessions_[i] < context_sessions_[context]) context = static_cast<int>(i);
    }
  }
  acceptor_.async_accept(*contexts_[context],
                         beast::bind_front_handler(&BeastHttpServer::OnAccept, this, context));
}

void BeastHttpServer::OnAccept(int context, beast::error_code ec, tcp::socket socket) {
  if (stopping() || ec == net::error::operation_aborted) return;
  if (ec) {
    // EMFILE, ENOBUFS, ECONNABORTED...: keep the listener alive, but do not spin.
    NIGHFS_LOG(WARNING) << "http server: accept: " << ec.message();
    accept_retry_.expires_after(kAcceptRetryDelay);
    accept_retry_.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && !stopping()) Accept();
    });
    return;
  }
  beast::error_code opt_ec;
  socket.set_option(tcp::no_delay(true), opt_ec);  // small replies must not wait for Nagle
  tcp::endpoint peer = socket.remote_endpoint(opt_ec);
  if (!opt_ec) {
    std::shared_ptr<Session> session;
    {
      absl::MutexLock lock(&mu_);
      Admission admission;
      admission.peer_ip = peer.address().to_string();
      const int max_total = options_.max_connections;
      const int max_peer = options_.max_connections_per_peer;
      auto peer_it = per_peer_.find(admission.peer_ip);
      const int from_peer = peer_it == per_peer_.end() ? 0 : peer_it->second;
      admission.counted = (max_total <= 0 || connections_ < max_total) &&
                          (max_peer <= 0 || from_peer < max_peer);
      if (admission.counted) {
        ++connections_;
        ++per_peer_[admission.peer_ip];
      } else {
        ++rejected_connections_;
      }
      const uint64_t id = next_session_id_++;
      session = std::make_shared<Session>(this, id, context, std::move(socket),
                                          FormatEndpoint(peer), std::move(admission),
                                          tls_.get());
      sessions_.emplace(id, session);
      ++context_sessions_[context];
    }
    session->Start();
  }  // else the peer is already gone; dropping `socket` closes it
  Accept();
}

HttpServerLoad BeastHttpServer::load() const {
  absl::MutexLock lock(&mu_);
  HttpServerLoad l;
  l.buffered_body_bytes = buffered_;
  l.peak_buffered_body_bytes = peak_buffered_;
  l.connections = connections_;
  l.rejected_busy = rejected_busy_;
  l.rejected_connections = rejected_connections_;
  return l;
}

void BeastHttpServer::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true, std::memory_order_release);
  work_.clear();
  for (const auto& ioc : contexts_) ioc->stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
  // No io thread runs any more: touching the acceptor and the sockets from here is safe.
  beast::error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  std::vector<std::shared_ptr<Session>> live;
  {
    absl::MutexLock lock(&mu_);
    live.reserve(sessions_.size());
    for (const auto& [id, weak] : sessions_) {
      if (std::shared_ptr<Session> s = weak.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& s : live) s->CloseForStop();
  // The sessions themselves are freed with the io_context's queued handlers, in ~BeastHttpServer.
}

}  // namespace

std::string ServerRequest::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (HeaderNameEquals(key, name)) return value;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  if (!handler) return absl::InvalidArgumentError("HttpServer::Start: no handler");
  if (options.max_buffered_body_bytes > 0 &&
      options.max_buffered_body_bytes < options.max_body_bytes) {
    // A body the budget can never hold would wait and then be refused every time.
    return absl::InvalidArgumentError(absl::StrCat(
        "HttpServer::Start: max_buffered_body_bytes (", options.max_buffered_body_bytes,
        ") is below max_body_bytes (", options.max_body_bytes, ")"));
  }
  auto server = std::make_unique<BeastHttpServer>(options, std::move(handler));
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    absl::StatusOr<std::unique_ptr<net::ssl::context>> tls =
        MakeServerTlsContext(options.tls_cert_file, options.tls_key_file);
    if (!tls.ok()) return tls.status();
    server->SetTls(std::move(*tls));
  }
  if (absl::Status s = server->Listen(); !s.ok()) return s;
  server->Run();
  NIGHFS_LOG(DEBUG) << "http server listening on " << options.bind_address << ":"
                    << server->port() << (options.tls_cert_file.empty() ? "" : " (TLS)");
  return server;
}

}  // namespace nighfs
