// HttpServer's listener: binding, the accept loop that places connections on io_contexts and
// counts them against the caps, load(), Stop(), and HttpServer::Start. The connection itself is
// in http_server.cc; threading and the Stop() ordering are described there.
#include "common/http_server_internal.h"

#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/http_server_tls.h"
#include "common/logging.h"

namespace nighfs::http_internal {

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

}  // namespace nighfs::http_internal

namespace nighfs {

using http_internal::BeastHttpServer;
using http_internal::HeaderNameEquals;

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
    absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> tls =
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
