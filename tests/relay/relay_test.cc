// The latency relay (tests/relay/relay.h and the nighfs-relay binary): bytes relayed
// unchanged, delay and jitter measured, the bandwidth cap measured (one stream, shared by
// several, and downstream), delay as a pipe (a stream is not delay-limited), each mode's
// outcome at accept and on open connections, runtime changes through the binary's control file.
#include "tests/relay/relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/sanitizer.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

// A blocking TCP connection to 127.0.0.1:port; -1 on failure.
int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// What a read within `timeout` saw.
struct ReadResult {
  enum Kind { kData, kEof, kError, kTimeout } kind;
  std::string data;
  int error = 0;
};

// Reads exactly `n` bytes (kData), or stops at EOF, an error or the deadline.
ReadResult ReadN(int fd, size_t n, absl::Duration timeout) {
  ReadResult r{ReadResult::kData, {}, 0};
  const absl::Time deadline = absl::Now() + timeout;
  std::string buf(64 << 10, '\0');
  while (r.data.size() < n) {
    const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    pollfd p = {fd, POLLIN, 0};
    if (ms <= 0 || ::poll(&p, 1, static_cast<int>(ms)) == 0) {
      r.kind = ReadResult::kTimeout;
      return r;
    }
    const ssize_t got = ::recv(fd, buf.data(), std::min(buf.size(), n - r.data.size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      r.kind = ReadResult::kError;
      r.error = errno;
      return r;
    }
    if (got == 0) {
      r.kind = ReadResult::kEof;
      return r;
    }
    r.data.append(buf.data(), static_cast<size_t>(got));
  }
  return r;
}

// A TCP server on 127.0.0.1 running `handler(fd)` in a thread per connection (the fd is closed
// after the handler returns).
class TestServer {
 public:
  explicit TestServer(std::function<void(int)> handler) : handler_(std::move(handler)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    ::listen(fd_, 128);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (stop_.load()) {
          if (c >= 0) ::close(c);
          return;
        }
        if (c < 0) continue;
        ++accepted_;
        int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        absl::MutexLock lock(&mu_);
        workers_.emplace_back([this, c] {
          handler_(c);
          ::close(c);
        });
      }
    });
  }
  ~TestServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    absl::MutexLock lock(&mu_);
    for (auto& t : workers_) t.join();
  }
  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  std::function<void(int)> handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

// Echoes until EOF (then closes) or a 20 s idle timeout.
void Echo(int fd) {
  std::string buf(64 << 10, '\0');
  for (;;) {
    pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 20000) <= 0) return;
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return;
    if (!SendAll(fd, std::string_view(buf.data(), static_cast<size_t>(n)))) return;
  }
}

// Receives until EOF, timing the bytes: the rate between the first and the last byte is what
// the relay's pacing allows, without the delay that precedes the first byte.
class Sink {
 public:
  void Receive(int fd) {
    std::string buf(64 << 10, '\0');
    for (;;) {
      pollfd p = {fd, POLLIN, 0};
      if (::poll(&p, 1, 20000) <= 0) return;
      const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      if (bytes_ == 0) {
        first_ = now;
        first_bytes_ = static_cast<uint64_t>(n);
      }
      bytes_ += static_cast<uint64_t>(n);
      last_ = now;
    }
  }
  uint64_t bytes() const {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }
  // Bytes per second after the first read.
  double Rate() const {
    absl::MutexLock lock(&mu_);
    return static_cast<double>(bytes_ - first_bytes_) / absl::ToDoubleSeconds(last_ - first_);
  }

 private:
  mutable absl::Mutex mu_;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t first_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time first_ ABSL_GUARDED_BY(mu_);
  absl::Time last_ ABSL_GUARDED_BY(mu_);
};

std::string RandomBytes(size_t n) {
  absl::BitGen gen;
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(absl::Uniform<uint8_t>(gen));
  return s;
}

std::unique_ptr<Relay> StartRelay(int upstream_port, RelayParams params = {}) {
  RelayOptions o;
  o.upstream_port = upstream_port;
  o.params = params;
  auto r = Relay::Start(o);
  EXPECT_OK(r);
  return r.ok() ? std::move(*r) : nullptr;
}

// One round trip of `size` bytes through an echo connection.
absl::Duration Ping(int fd, size_t size = 100) {
  const std::string msg(size, 'p');
  const absl::Time start = absl::Now();
  EXPECT_TRUE(SendAll(fd, msg));
  ReadResult r = ReadN(fd, size, absl::Seconds(10));
  EXPECT_EQ(r.kind, ReadResult::kData);
  return absl::Now() - start;
}

absl::Duration MedianPing(int fd, int n) {
  std::vector<absl::Duration> v;
  for (int i = 0; i < n; ++i) v.push_back(Ping(fd));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

constexpr double kMiB = 1 << 20;

TEST(RelayTest, ModeNamesRoundTrip) {
  for (RelayMode m : {RelayMode::kForward, RelayMode::kRefuse, RelayMode::kReset,
                      RelayMode::kBlackHole}) {
    auto parsed = ParseRelayMode(RelayModeName(m));
    ASSERT_OK(parsed);
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_FALSE(ParseRelayMode("drop").ok());
}

TEST(RelayTest, RejectsMissingUpstream) {
  RelayOptions o;
  EXPECT_THAT(Relay::Start(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RelayTest, RelaysBytesUnchangedBothWaysAndHalfClose) {
  TestServer echo(Echo);
  auto relay = StartRelay(echo.port());
  ASSERT_NE(relay, nullptr);
  EXPECT_EQ(relay->address(), absl::StrCat("127.0.0.1:", relay->port()));
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  const std::string data = RandomBytes(3 << 20);
  std::thread writer([&] {
    EXPECT_TRUE(SendAll(fd, data));
    ::shutdown(fd, SHUT_WR);  // the echo server sees EOF through the relay and closes
  });
  ReadResult r = ReadN(fd, data.size(), absl::Seconds(20));
  writer.join();
  ASSERT_EQ(r.kind, ReadResult::kData);
  EXPECT_TRUE(r.data == data) << "relayed bytes differ";
  EXPECT_EQ(ReadN(fd, 1, absl::Seconds(5)).kind, ReadResult::kEof);
  ::close(fd);
  EXPECT_EQ(relay->bytes_upstream(), data.size());
  EXPECT_EQ(relay->bytes_downstream(), data.size());
  EXPECT_EQ(relay->connections_accepted(), 1u);
  EXPECT_TRUE(WaitFor([&] { return relay->connections_open() == 0; }, absl::Seconds(5)));
}

TEST(RelayTest, DelayIsAddedEachWay) {
  TestServer echo(Echo);
  auto relay = StartRelay(echo.port());
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  const absl::Duration base = MedianPing(fd, 5);
  EXPECT_LT(base, absl::Milliseconds(20));
  relay->SetDelay(absl::Milliseconds(40));  // applies to the next chunk read
  const absl::Duration delayed = MedianPing(fd, 5);
  EXPECT_GE(delayed, absl::Milliseconds(80));
  EXPECT_LT(delayed, absl::Milliseconds(80) + base + absl::Milliseconds(30));
  relay->SetDelay(absl::ZeroDuration());
  EXPECT_LT(MedianPing(fd, 5), absl::Milliseconds(20));
  ::close(fd);
}

TEST(RelayTest, JitterVariesTheDelayWithinItsBounds) {
  TestServer echo(Echo);
  RelayParams p;
  p.delay = absl::Milliseconds(30);
  p.jitter_percent = 50;
  auto relay = StartRelay(echo.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
  for (int i = 0; i < 15; ++i) {
    const absl::Duration d = Ping(fd);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  // Each way 15-45 ms: a round trip 30-90 ms.
  EXPECT_GE(lo, absl::Milliseconds(30));
  EXPECT_LT(hi, absl::Milliseconds(90 + 30));
  EXPECT_GT(hi - lo, absl::Milliseconds(5)) << "no jitter seen";
  ::close(fd);
}

// A stream through a 100 ms pipe runs at the link's speed: a per-chunk sleep would take
// 512 chunks x 100 ms = 51 s for these 32 MiB.
TEST(RelayTest, DelayIsAPipeNotASleep) {
  Sink sink;
  TestServer server([&](int fd) { sink.Receive(fd); });
  RelayParams p;
  p.delay = absl::Milliseconds(100);
  auto relay = StartRelay(server.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  const std::string data(32 << 20, 'x');
  const absl::Time start = absl::Now();
  ASSERT_TRUE(SendAll(fd, data));
  ::close(fd);
  ASSERT_TRUE(WaitFor([&] { return sink.bytes() == data.size(); }, absl::Seconds(20)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// Sends `bytes` on each of `streams` connections at once through `relay` to `sink`.
void SendStreams(Relay* relay, Sink* sink, int streams, size_t bytes) {
  std::vector<std::thread> threads;
  const std::string data(bytes, 'b');
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&] {
      const int fd = Connect(relay->port());
      ASSERT_GE(fd, 0);
      EXPECT_TRUE(SendAll(fd, data));
      ::close(fd);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(WaitFor([&] { return sink->bytes() == bytes * streams; }, absl::Seconds(30)))
      << sink->bytes() << " of " << bytes * streams;
}

TEST(RelayTest, BandwidthCapOneStreamWithDelay) {
  // A slow link, and one as fast as the benchmark's WAN: the relay's own per-chunk work must
  // not show as lost link time.
  for (int mib : {8, 100}) {
    Sink sink;
    TestServer server([&](int fd) { sink.Receive(fd); });
    RelayParams p;
    p.delay = absl::Milliseconds(20);
    p.bandwidth = static_cast<uint64_t>(mib) << 20;
    auto relay = StartRelay(server.port(), p);
    ASSERT_NE(relay, nullptr);
    SendStreams(relay.get(), &sink, 1, static_cast<size_t>(mib) << 19);  // ~0.5 s
    // A sanitized relay cannot move 100 MiB/s on this machine: only the cap is checked there.
    if (kUnderSanitizer) {
      EXPECT_LE(sink.Rate() / kMiB, mib * 1.2) << mib << " MiB/s cap";
    } else {
      EXPECT_NEAR(sink.Rate() / kMiB, mib, mib * 0.2) << mib << " MiB/s cap";
    }
  }
}

TEST(RelayTest, BandwidthCapIsSharedByConnections) {
  Sink sink;
  TestServer server([&](int fd) { sink.Receive(fd); });
  RelayParams p;
  p.bandwidth = 8 << 20;
  auto relay = StartRelay(server.port(), p);
  ASSERT_NE(relay, nullptr);
  SendStreams(relay.get(), &sink, 4, 2 << 20);  // 8 MiB in all: ~1 s at the cap
  EXPECT_NEAR(sink.Rate() / kMiB, 8.0, 8.0 * 0.2);
}

TEST(RelayTest, BandwidthCapDownstream) {
  constexpr size_t kBytes = 6 << 20;
  TestServer source([&](int fd) {
    const std::string data(kBytes, 'd');
    SendAll(fd, data);
  });
  RelayParams p;
  p.bandwidth = 6 << 20;
  p.delay = absl::Milliseconds(10);
  auto relay = StartRelay(source.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  ReadResult first = ReadN(fd, 1, absl::Seconds(5));
  ASSERT_EQ(first.kind, ReadResult::kData);
  const absl::Time start = absl::Now();
  ReadResult rest = ReadN(fd, kBytes - 1, absl::Seconds(20));
  ASSERT_EQ(rest.kind, ReadResult::kData);
  const double rate = (kBytes - 1) / absl::ToDoubleSeconds(absl::Now() - start);
  // The first read may have taken one chunk (64 KiB) already: within 20% all the same.
  EXPECT_NEAR(rate / kMiB, 6.0, 6.0 * 0.2);
  ::close(fd);
}

TEST(RelayTest, RefuseClosesAtAccept) {
  TestServer echo(Echo);
  RelayParams p;
  p.mode = RelayMode::kRefuse;
  auto relay = StartRelay(echo.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadN(fd, 1, absl::Seconds(5)).kind, ReadResult::kEof);
  ::close(fd);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_EQ(relay->connections_accepted(), 1u);
}

TEST(RelayTest, ResetSendsRstAtAccept) {
  TestServer echo(Echo);
  RelayParams p;
  p.mode = RelayMode::kReset;
  auto relay = StartRelay(echo.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  ReadResult r = ReadN(fd, 1, absl::Seconds(5));
  EXPECT_EQ(r.kind, ReadResult::kError);
  EXPECT_EQ(r.error, ECONNRESET);
  ::close(fd);
  EXPECT_EQ(echo.accepted(), 0);
}

TEST(RelayTest, BlackHoleNeverAnswersNorClosesThenHeals) {
  TestServer echo(Echo);
  RelayParams p;
  p.mode = RelayMode::kBlackHole;
  auto relay = StartRelay(echo.port(), p);
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "hello"));
  EXPECT_EQ(ReadN(fd, 1, absl::Milliseconds(700)).kind, ReadResult::kTimeout);
  EXPECT_EQ(echo.accepted(), 0);
  EXPECT_EQ(relay->connections_open(), 1u);
  // The partition heals: the held connection is relayed, with what the client sent meanwhile.
  relay->SetMode(RelayMode::kForward);
  ReadResult r = ReadN(fd, 5, absl::Seconds(5));
  ASSERT_EQ(r.kind, ReadResult::kData);
  EXPECT_EQ(r.data, "hello");
  ::close(fd);
}

TEST(RelayTest, ModeChangesApplyToOpenConnections) {
  TestServer echo(Echo);
  auto relay = StartRelay(echo.port());
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  Ping(fd);

  // Black hole: an open connection stops answering (bytes held, not dropped), never closes.
  relay->SetMode(RelayMode::kBlackHole);
  ASSERT_TRUE(SendAll(fd, "abc"));
  EXPECT_EQ(ReadN(fd, 1, absl::Milliseconds(500)).kind, ReadResult::kTimeout);
  relay->SetMode(RelayMode::kForward);
  ReadResult r = ReadN(fd, 3, absl::Seconds(5));
  ASSERT_EQ(r.kind, ReadResult::kData);
  EXPECT_EQ(r.data, "abc");

  // Reset: the open connection gets RST.
  relay->SetMode(RelayMode::kReset);
  r = ReadN(fd, 1, absl::Seconds(5));
  EXPECT_EQ(r.kind, ReadResult::kError);
  EXPECT_EQ(r.error, ECONNRESET);
  ::close(fd);

  // Refuse: an open connection is closed.
  relay->SetMode(RelayMode::kForward);
  const int fd2 = Connect(relay->port());
  ASSERT_GE(fd2, 0);
  Ping(fd2);
  relay->SetMode(RelayMode::kRefuse);
  EXPECT_EQ(ReadN(fd2, 1, absl::Seconds(5)).kind, ReadResult::kEof);
  ::close(fd2);
  EXPECT_TRUE(WaitFor([&] { return relay->connections_open() == 0; }, absl::Seconds(5)));
}

TEST(RelayTest, UnreachableUpstreamResetsTheClient) {
  auto relay = StartRelay(FreeLoopbackPort());
  ASSERT_NE(relay, nullptr);
  const int fd = Connect(relay->port());
  ASSERT_GE(fd, 0);
  ReadResult r = ReadN(fd, 1, absl::Seconds(5));
  EXPECT_EQ(r.kind, ReadResult::kError);
  EXPECT_EQ(r.error, ECONNRESET);
  ::close(fd);
}

// The binary: flags, the port file, and runtime changes through the control file + SIGUSR1.
TEST(RelayBinaryTest, ControlFileChangesModeAndDelay) {
  TestServer echo(Echo);
  TempDir tmp;
  const std::string port_file = tmp.path() + "/port";
  const std::string control = tmp.path() + "/ctl";
  auto proc = ChildProcess::Start(
      {BuildRoot() + "/tests/relay/nighfs-relay", "--upstream",
       absl::StrCat("127.0.0.1:", echo.port()), "--port-file", port_file, "--control", control,
       "--bandwidth", "100M"},
      tmp.path() + "/relay.log");
  ASSERT_OK(proc);
  ASSERT_TRUE(WaitFor([&] { return !ReadFileOrEmpty(port_file).empty(); }, absl::Seconds(10)))
      << ReadFileOrEmpty(tmp.path() + "/relay.log");
  const int port = std::stoi(ReadFileOrEmpty(port_file));

  auto apply = [&](const std::string& text, absl::Duration wait = absl::Seconds(5)) {
    std::filesystem::remove(control + ".applied");
    std::ofstream(control) << text;
    ::kill((*proc)->pid(), SIGUSR1);
    return WaitFor([&] { return std::filesystem::exists(control + ".applied"); }, wait);
  };

  int fd = Connect(port);
  ASSERT_GE(fd, 0);
  EXPECT_LT(MedianPing(fd, 3), absl::Milliseconds(20));
  ::close(fd);

  ASSERT_TRUE(apply("# partition\nmode=refuse\n"));
  EXPECT_NE(ReadFileOrEmpty(control + ".applied").find("mode=refuse"), std::string::npos);
  fd = Connect(port);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadN(fd, 1, absl::Seconds(5)).kind, ReadResult::kEof);
  ::close(fd);

  // A malformed file changes nothing.
  EXPECT_FALSE(apply("mode=forward\ndelay-ms=abc\n", absl::Seconds(1)));
  fd = Connect(port);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(ReadN(fd, 1, absl::Seconds(5)).kind, ReadResult::kEof);
  ::close(fd);

  ASSERT_TRUE(apply("mode=forward\ndelay-ms=40\n"));
  fd = Connect(port);
  ASSERT_GE(fd, 0);
  EXPECT_GE(MedianPing(fd, 3), absl::Milliseconds(80));
  ::close(fd);
  EXPECT_NE(ReadFileOrEmpty(control + ".applied").find("bandwidth=104857600"), std::string::npos);

  auto st = (*proc)->Stop(SIGTERM, absl::Seconds(10));
  ASSERT_OK(st);
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << *st;
}

}  // namespace
}  // namespace nighfs::testing
