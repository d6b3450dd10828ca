// A raw, blocking TCP client for tests that speak broken or deliberately slow HTTP to a server.
#ifndef NIGHFS_TESTS_COMMON_RAW_CONNECTION_H_
#define NIGHFS_TESTS_COMMON_RAW_CONNECTION_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <string_view>

#include "absl/strings/match.h"

namespace nighfs {

// A blocking TCP connection to 127.0.0.1 for speaking raw (possibly broken) HTTP.
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // A server that stops reading fails Send() after a second instead of blocking the test.
    timeval stv{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &stv, sizeof(stv));
    timeval tv{10, 0};  // a server that never answers fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until the peer closes (or the 10 s receive timeout). Returns what arrived; `eof` says
  // whether the connection was closed (orderly or by reset) rather than timing out.
  std::string ReadAll(bool* eof = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (eof != nullptr) *eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      return out;
    }
  }
  // Reads until `needle` has arrived (or EOF / timeout).
  std::string ReadUntil(std::string_view needle) {
    std::string out;
    char c;
    while (!absl::StrContains(out, absl::string_view(needle.data(), needle.size()))) {
      if (::recv(fd_, &c, 1, 0) != 1) break;
      out.push_back(c);
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

}  // namespace nighfs

#endif  // NIGHFS_TESTS_COMMON_RAW_CONNECTION_H_
