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
#include "common/http_server_internal.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace nighfs::http_internal {

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

}  // namespace nighfs::http_internal
