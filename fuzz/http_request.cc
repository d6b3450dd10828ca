// Fuzz target: the daemons' HTTP/1.1 request parser and connection handling (common/http_server
// on Boost.Beast), fed raw bytes over a real TCP connection. A real HttpServer is started once
// per process on 127.0.0.1 with small limits (64 KiB bodies, 128 KiB of bodies buffered at
// once) so the 413 and budget paths are reachable; its handler echoes the request it was given.
// Each input is written to a new connection, which is then half-closed (shutdown SHUT_WR);
// the reply is read until the server closes.
//
// Targets the handler treats specially, so the response paths run too:
//   /status/NNN  replies with status NNN
//   /drop        closes the connection without a reply
//   /refuse...   answered 401 by the request screen (HttpServerOptions::screen), before any
//                body is read: the connection is then closed if a body was left unread
//   /screen-drop the screen closes the connection without a reply
//
// Checks beyond the sanitizers: the server closes the connection within 10 s of the client's
// end of input (never waits for bytes that cannot come), and what it sends is empty or starts
// with an HTTP/1.x status line.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/http_server.h"
#include "common/logging.h"

namespace nighfs::fuzz {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "http_request: %s\n", what.c_str());
  std::abort();
}

ServerResponse Echo(const ServerRequest& req) {
  ServerResponse r;
  absl::string_view target = req.target;
  if (target == "/drop") {
    r.close_without_reply = true;
    return r;
  }
  if (absl::ConsumePrefix(&target, "/status/")) {
    int status = 0;
    if (absl::SimpleAtoi(target, &status) && status >= 100 && status <= 599) r.status = status;
  }
  r.content_type = "text/plain";
  r.body = absl::StrCat(req.method, " ", req.target, "\n");
  for (const auto& [name, value] : req.headers) absl::StrAppend(&r.body, name, ": ", value, "\n");
  absl::StrAppend(&r.body, "\n", req.body);
  r.headers.push_back({"X-Echo-Length", absl::StrCat(req.body.size())});
  return r;
}

std::optional<ServerResponse> Screen(const ServerRequest& req) {
  if (!req.body.empty()) Fail("the screen saw a body");
  absl::string_view target = req.target;
  if (target == "/screen-drop") {
    ServerResponse r;
    r.close_without_reply = true;
    return r;
  }
  if (!absl::StartsWith(target, "/refuse")) return std::nullopt;
  ServerResponse r;
  r.status = 401;
  r.content_type = "text/plain";
  r.body = "refused\n";
  return r;
}

uint16_t ServerPort() {
  static const uint16_t port = [] {
    SetLogLevel(LogLevel::ERROR);
    HttpServerOptions o;
    o.bind_address = "127.0.0.1";
    o.threads = 2;
    o.max_body_bytes = 64u << 10;
    o.max_buffered_body_bytes = 128u << 10;
    o.body_budget_wait = absl::Milliseconds(50);
    o.screen = Screen;
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(o, Echo);
    if (!server.ok()) Fail("cannot start the server: " + server.status().ToString());
    // Lives until exit: the fuzzer ends the process without running destructors anyway.
    return server->release()->port();
  }();
  return port;
}

int Connect(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Ephemeral ports run short when connections close faster than TIME_WAIT ends: wait a bit.
  for (int attempt = 0;; ++attempt) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
    if (errno != EADDRNOTAVAIL || attempt == 200) {
      Fail(absl::StrCat("connect: ", std::strerror(errno)));
    }
    ::usleep(10'000);
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Sends `input`, half-closes, and returns what the server sent until it closed.
std::string Exchange(std::string_view input) {
  const int fd = Connect(ServerPort());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string reply;
  size_t sent = 0;
  bool write_open = true;
  if (input.empty()) {
    ::shutdown(fd, SHUT_WR);
    write_open = false;
  }
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      Fail(absl::StrCat("the server did not close the connection within 10 s of the end of ",
                        "the request (", sent, " of ", input.size(), " bytes sent, ",
                        reply.size(), " received)"));
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      Fail(absl::StrCat("poll: ", std::strerror(errno)));
    }
    if (write_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      // The server may close before reading everything (an error reply): then stop writing.
      if (n < 0 && errno != EAGAIN && errno != EINTR) write_open = false;
      if (sent == input.size()) {
        ::shutdown(fd, SHUT_WR);
        write_open = false;
      }
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      char buf[16384];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n > 0) {
        reply.append(buf, static_cast<size_t>(n));
      } else if (errno != EAGAIN && errno != EINTR) {
        break;  // reset: the server closed with input unread
      }
    }
  }
  ::close(fd);
  return reply;
}

}  // namespace
}  // namespace nighfs::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string reply = nighfs::fuzz::Exchange(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!reply.empty() && reply.rfind("HTTP/1.", 0) != 0) {
    nighfs::fuzz::Fail("the reply does not start with a status line: " + reply.substr(0, 200));
  }
  return 0;
}
