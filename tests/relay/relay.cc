#include "tests/relay/relay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace nighfs::testing {

std::string_view RelayModeName(RelayMode mode) {
  switch (mode) {
    case RelayMode::kForward:
      return "forward";
    case RelayMode::kRefuse:
      return "refuse";
    case RelayMode::kReset:
      return "reset";
    case RelayMode::kBlackHole:
      return "blackhole";
  }
  return "?";
}

absl::StatusOr<RelayMode> ParseRelayMode(std::string_view name) {
  const std::string n = absl::AsciiStrToLower(std::string(name));
  if (n == "forward") return RelayMode::kForward;
  if (n == "refuse") return RelayMode::kRefuse;
  if (n == "reset") return RelayMode::kReset;
  if (n == "blackhole" || n == "black-hole") return RelayMode::kBlackHole;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown relay mode '", std::string(name), "' (forward|refuse|reset|blackhole)"));
}

namespace {

constexpr size_t kChunk = 64 << 10;

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// The next close() of `fd` sends RST instead of FIN.
void SetResetOnClose(int fd) {
  struct linger l = {1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

void CloseWithReset(int fd) {
  SetResetOnClose(fd);
  ::close(fd);
}

absl::StatusOr<sockaddr_storage> Resolve(const std::string& host, int port, socklen_t* len) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("relay: cannot resolve ", host, ": ", ::gai_strerror(rc)));
  }
  sockaddr_storage out = {};
  std::memcpy(&out, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return out;
}

// One direction of the "link": its bandwidth is shared by every connection. A chunk occupies
// the link for size / rate; chunks queue for it in reservation order. Idle time up to kBurst
// is credited (a token bucket of kBurst x rate): the relay's own work between two chunks of a
// stream must not count as idle link time, or a saturated stream would run below the cap.
class Link {
 public:
  static constexpr absl::Duration kBurst = absl::Milliseconds(5);
  // When a chunk of `bytes` reserved now has been transmitted.
  absl::Time Reserve(size_t bytes, uint64_t rate) {
    absl::MutexLock lock(&mu_);
    const absl::Time start = std::max(absl::Now() - kBurst, next_free_);
    next_free_ = start + absl::Seconds(static_cast<double>(bytes) / static_cast<double>(rate));
    return next_free_;
  }

 private:
  absl::Mutex mu_;
  absl::Time next_free_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class RelayImpl;

// One relayed TCP connection: a client socket and, once connected, an upstream socket, with a
// reader and a writer thread per direction. Aborting wakes every thread through an eventfd;
// the last thread out closes both sockets (with RST if the abort asked for it).
class Connection {
 public:
  Connection(RelayImpl* relay, int client_fd) : relay_(relay), client_(client_fd) {
    abort_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~Connection() {
    Join();
    if (abort_fd_ >= 0) ::close(abort_fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start() { main_ = std::thread([this] { Run(); }); }
  // Ends the connection: every thread returns; the sockets are closed with RST (`reset`) or
  // with FIN (the kernel still resets a socket with unread bytes).
  void Abort(bool reset);
  // Re-evaluates what the writers wait for (the relay's mode changed).
  void Wake() {
    absl::MutexLock lock(&mu_);
    ++wake_serial_;
  }
  bool finished() const { return finished_.load(); }
  void Join() {
    if (main_.joinable()) main_.join();
  }

 private:
  struct Chunk {
    std::string data;
    bool eof = false;
    absl::Time release;
  };
  struct Pipe {
    int src = -1;
    int dst = -1;
    bool upstream = false;  // client -> server
    std::deque<Chunk> queue;
    size_t queued = 0;
    absl::Time last_release = absl::InfinitePast();
  };

  void Run();
  absl::Status ConnectUpstream();
  void Reader(Pipe* p);
  void Writer(Pipe* p);
  // Writes all of `data`; false if aborted or the write failed (then the connection aborts).
  bool WriteAll(int fd, std::string_view data);
  // Polls `fd` for `events` or the abort eventfd; false when aborted.
  bool PollOrAbort(int fd, short events);
  void ThreadDone();

  RelayImpl* const relay_;
  const int client_;
  int upstream_ = -1;
  int abort_fd_ = -1;
  std::thread main_;
  std::atomic<bool> finished_{false};

  absl::Mutex mu_;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  bool reset_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wake_serial_ ABSL_GUARDED_BY(mu_) = 0;
  int threads_running_ ABSL_GUARDED_BY(mu_) = 0;
  Pipe up_ ABSL_GUARDED_BY(mu_);
  Pipe down_ ABSL_GUARDED_BY(mu_);
};

class RelayImpl final : public Relay {
 public:
  explicit RelayImpl(const RelayOptions& o) : options_(o) { StoreParams(o.params); }
  ~RelayImpl() override;

  absl::Status Listen();

  int port() const override { return port_; }
  std::string address() const override {
    const bool v6 = options_.listen_host.find(':') != std::string::npos;
    return v6 ? absl::StrCat("[", options_.listen_host, "]:", port_)
              : absl::StrCat(options_.listen_host, ":", port_);
  }
  void SetDelay(absl::Duration d) override { delay_ns_ = absl::ToInt64Nanoseconds(d); }
  void SetJitterPercent(double p) override { jitter_percent_ = std::clamp(p, 0.0, 100.0); }
  void SetBandwidth(uint64_t b) override { bandwidth_ = b; }
  void SetMode(RelayMode mode) override;
  void Set(const RelayParams& p) override {
    SetDelay(p.delay);
    SetJitterPercent(p.jitter_percent);
    SetBandwidth(p.bandwidth);
    SetMode(p.mode);
  }
  RelayParams params() const override {
    RelayParams p;
    p.delay = absl::Nanoseconds(delay_ns_.load());
    p.jitter_percent = jitter_percent_.load();
    p.bandwidth = bandwidth_.load();
    p.mode = mode_.load();
    return p;
  }
  uint64_t connections_accepted() const override { return accepted_.load(); }
  uint64_t connections_open() const override {
    absl::MutexLock lock(&mu_);
    uint64_t n = parked_.size();
    for (const auto& c : connections_) n += c->finished() ? 0 : 1;
    return n;
  }
  uint64_t bytes_upstream() const override { return bytes_up_.load(); }
  uint64_t bytes_downstream() const override { return bytes_down_.load(); }

  // For connections.
  const RelayOptions& options() const { return options_; }
  RelayMode mode() const { return mode_.load(); }
  uint64_t bandwidth() const { return bandwidth_.load(); }
  absl::Duration NextDelay(absl::BitGen* gen) const {
    const int64_t d = delay_ns_.load();
    const double j = jitter_percent_.load() / 100.0;
    if (d == 0 || j == 0) return absl::Nanoseconds(d);
    return absl::Nanoseconds(static_cast<int64_t>(d * absl::Uniform(*gen, 1.0 - j, 1.0 + j)));
  }
  Link* link(bool upstream) { return upstream ? &up_link_ : &down_link_; }
  void CountBytes(bool upstream, size_t n) { (upstream ? bytes_up_ : bytes_down_) += n; }

 private:
  void StoreParams(const RelayParams& p) {
    delay_ns_ = absl::ToInt64Nanoseconds(p.delay);
    jitter_percent_ = std::clamp(p.jitter_percent, 0.0, 100.0);
    bandwidth_ = p.bandwidth;
    mode_ = p.mode;
  }
  void AcceptLoop();
  // What a connection accepted (or parked) gets in `mode`.
  void Admit(int fd, RelayMode mode);
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RelayOptions options_;
  std::atomic<int64_t> delay_ns_{0};
  std::atomic<double> jitter_percent_{0};
  std::atomic<uint64_t> bandwidth_{0};
  std::atomic<RelayMode> mode_{RelayMode::kForward};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> bytes_up_{0};
  std::atomic<uint64_t> bytes_down_{0};
  Link up_link_;
  Link down_link_;

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<int> parked_ ABSL_GUARDED_BY(mu_);  // black-holed at accept
};

void Connection::Abort(bool reset) {
  {
    absl::MutexLock lock(&mu_);
    if (aborted_) return;
    aborted_ = true;
    reset_ = reset;
  }
  const uint64_t one = 1;
  (void)!::write(abort_fd_, &one, sizeof(one));
}

bool Connection::PollOrAbort(int fd, short events) {
  for (;;) {
    pollfd p[2] = {{fd, events, 0}, {abort_fd_, POLLIN, 0}};
    const int rc = ::poll(p, 2, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return false;
    if (p[1].revents != 0) return false;
    return true;  // ready, or an error the next read/write reports
  }
}

absl::Status Connection::ConnectUpstream() {
  const RelayOptions& o = relay_->options();
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> addr = Resolve(o.upstream_host, o.upstream_port, &len);
  if (!addr.ok()) return addr.status();
  const int fd = ::socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::UnavailableError("relay: socket() failed");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*addr), len) != 0 && errno != EINPROGRESS) {
    const int e = errno;
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("relay: connect upstream: ", std::strerror(e)));
  }
  pollfd p[2] = {{fd, POLLOUT, 0}, {abort_fd_, POLLIN, 0}};
  int rc;
  do {
    rc = ::poll(p, 2, static_cast<int>(absl::ToInt64Milliseconds(o.connect_timeout)));
  } while (rc < 0 && errno == EINTR);
  int err = 0;
  socklen_t el = sizeof(err);
  if (rc <= 0 || p[1].revents != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("relay: connect upstream: ",
                                               err != 0 ? std::strerror(err) : "timeout/abort"));
  }
  SetNoDelay(fd);
  upstream_ = fd;
  return absl::OkStatus();
}

void Connection::Run() {
  SetNonBlocking(client_);
  SetNoDelay(client_);
  if (!ConnectUpstream().ok()) {
    CloseWithReset(client_);
    finished_ = true;
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    up_.src = client_;
    up_.dst = upstream_;
    up_.upstream = true;
    down_.src = upstream_;
    down_.dst = client_;
    threads_running_ = 4;
  }
  Pipe* up;
  Pipe* down;
  {
    absl::MutexLock lock(&mu_);
    up = &up_;
    down = &down_;
  }
  std::thread t1([this, up] { Writer(up); });
  std::thread t2([this, down] { Reader(down); });
  std::thread t3([this, down] { Writer(down); });
  Reader(up);
  t1.join();
  t2.join();
  t3.join();
  finished_ = true;
}

void Connection::ThreadDone() {
  bool last, reset;
  {
    absl::MutexLock lock(&mu_);
    last = --threads_running_ == 0;
    reset = reset_;
  }
  if (!last) return;
  if (reset) {
    SetResetOnClose(client_);
    SetResetOnClose(upstream_);
  }
  ::close(client_);
  ::close(upstream_);
}

void Connection::Reader(Pipe* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // `p`'s fds are fixed before the threads start; its queue is guarded by mu_.
  const int src = p->src;
  const size_t max_queued = relay_->options().max_queued_bytes;
  absl::BitGen gen;
  std::string buf(kChunk, '\0');
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto room = [&] { return aborted_ || p->queued < max_queued; };
      mu_.Await(absl::Condition(&room));
      if (aborted_) break;
    }
    if (!PollOrAbort(src, POLLIN)) break;
    const ssize_t n = ::read(src, buf.data(), buf.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) {
      Abort(/*reset=*/true);  // ECONNRESET and the like: pass the reset on
      break;
    }
    Chunk c;
    c.eof = n == 0;
    c.data.assign(buf.data(), static_cast<size_t>(n));
    const absl::Time arrival = absl::Now();
    const absl::Duration delay = relay_->NextDelay(&gen);
    absl::MutexLock lock(&mu_);
    c.release = std::max(arrival + delay, p->last_release);
    p->last_release = c.release;
    p->queued += c.data.size();
    p->queue.push_back(std::move(c));
    if (n == 0) break;
  }
  ThreadDone();
}

void Connection::Writer(Pipe* p) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  const int dst = p->dst;
  Link* link = relay_->link(p->upstream);
  for (;;) {
    Chunk c;
    {
      absl::MutexLock lock(&mu_);
      auto frozen = [&] { return relay_->mode() == RelayMode::kBlackHole; };
      auto sendable = [&] { return aborted_ || (!p->queue.empty() && !frozen()); };
      auto stop_waiting = [&] { return aborted_ || frozen(); };
      for (;;) {
        if (aborted_) break;
        if (p->queue.empty() || frozen()) {
          mu_.Await(absl::Condition(&sendable));
          continue;
        }
        if (p->queue.front().release > absl::Now()) {
          mu_.AwaitWithDeadline(absl::Condition(&stop_waiting), p->queue.front().release);
          continue;
        }
        break;
      }
      if (aborted_) break;
      c = std::move(p->queue.front());
      p->queue.pop_front();
      p->queued -= c.data.size();
    }
    if (c.eof) {
      ::shutdown(dst, SHUT_WR);
      break;
    }
    if (const uint64_t rate = relay_->bandwidth(); rate > 0) {
      const absl::Time sent = link->Reserve(c.data.size(), rate);
      if (mu_.LockWhenWithDeadline(absl::Condition(&aborted_), sent)) {
        mu_.Unlock();
        break;
      }
      mu_.Unlock();
    }
    if (!WriteAll(dst, c.data)) break;
    relay_->CountBytes(p->upstream, c.data.size());
  }
  ThreadDone();
}

bool Connection::WriteAll(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (!PollOrAbort(fd, POLLOUT)) return false;
      continue;
    }
    Abort(/*reset=*/true);
    return false;
  }
  return true;
}

absl::Status RelayImpl::Listen() {
  if (options_.upstream_port <= 0 || options_.upstream_port > 65535) {
    return absl::InvalidArgumentError("relay: upstream_port must be 1-65535");
  }
  socklen_t len = 0;
  absl::StatusOr<sockaddr_storage> addr = Resolve(options_.listen_host, options_.listen_port, &len);
  if (!addr.ok()) return addr.status();
  listen_fd_ = ::socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return absl::UnavailableError("relay: socket() failed");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&*addr), len) != 0 ||
      ::listen(listen_fd_, 512) != 0) {
    return absl::UnavailableError(absl::StrCat("relay: cannot listen on ", options_.listen_host,
                                               ":", options_.listen_port, ": ",
                                               std::strerror(errno)));
  }
  sockaddr_storage bound = {};
  socklen_t bl = sizeof(bound);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bl);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return absl::OkStatus();
}

void RelayImpl::AcceptLoop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (stopping_.load()) {
      if (fd >= 0) CloseWithReset(fd);
      return;
    }
    if (fd < 0) {
      if (errno != EINTR && errno != ECONNABORTED) absl::SleepFor(absl::Milliseconds(10));
      continue;
    }
    ++accepted_;
    Admit(fd, mode_.load());
  }
}

void RelayImpl::Admit(int fd, RelayMode mode) {
  switch (mode) {
    case RelayMode::kRefuse:
      ::close(fd);
      return;
    case RelayMode::kReset:
      CloseWithReset(fd);
      return;
    case RelayMode::kBlackHole: {
      absl::MutexLock lock(&mu_);
      parked_.push_back(fd);
      return;
    }
    case RelayMode::kForward: {
      auto c = std::make_unique<Connection>(this, fd);
      absl::MutexLock lock(&mu_);
      ReapFinished();
      c->Start();
      connections_.push_back(std::move(c));
      return;
    }
  }
}

void RelayImpl::ReapFinished() {
  auto done = std::partition(connections_.begin(), connections_.end(),
                             [](const std::unique_ptr<Connection>& c) { return !c->finished(); });
  connections_.erase(done, connections_.end());  // ~Connection joins (already finished)
}

void RelayImpl::SetMode(RelayMode mode) {
  mode_ = mode;
  std::vector<int> parked;
  {
    absl::MutexLock lock(&mu_);
    if (mode != RelayMode::kBlackHole) parked.swap(parked_);
    for (auto& c : connections_) {
      switch (mode) {
        case RelayMode::kReset:
          c->Abort(/*reset=*/true);
          break;
        case RelayMode::kRefuse:
          c->Abort(/*reset=*/false);
          break;
        case RelayMode::kForward:
        case RelayMode::kBlackHole:
          c->Wake();
          break;
      }
    }
  }
  for (int fd : parked) Admit(fd, mode);
}

RelayImpl::~RelayImpl() {
  stopping_ = true;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  std::vector<std::unique_ptr<Connection>> connections;
  std::vector<int> parked;
  {
    absl::MutexLock lock(&mu_);
    connections.swap(connections_);
    parked.swap(parked_);
  }
  for (auto& c : connections) c->Abort(/*reset=*/true);
  connections.clear();  // joins
  for (int fd : parked) CloseWithReset(fd);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Relay>> Relay::Start(const RelayOptions& options) {
  auto relay = std::make_unique<RelayImpl>(options);
  absl::Status s = relay->Listen();
  if (!s.ok()) return s;
  return std::unique_ptr<Relay>(std::move(relay));
}

}  // namespace nighfs::testing
