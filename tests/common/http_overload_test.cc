// HttpServer's overload protection: a global budget of buffered request-body bytes and caps on
// connections, against slow senders on real loopback sockets; and nighfs-meta's memory with
// eight slow 64 MiB uploads (issue 10, item 5).
#include <signal.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/connect.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "tests/common/raw_connection.h"
#include "tests/testing/process.h"
#include "tests/testing/sanitizer.h"
#include "tests/testing/test_status.h"

namespace nighfs {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

ServerResponse Ok(const ServerRequest& r) {
  ServerResponse resp;
  resp.body = absl::StrCat(r.body.size());
  return resp;
}

std::unique_ptr<HttpServer> StartOrDie(const HttpServerOptions& options,
                                       HttpHandler handler = Ok) {
  absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(options, std::move(handler));
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::string PutHeader(size_t length) {
  return absl::StrCat("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ", length, "\r\n\r\n");
}

TEST(HttpOverloadTest, BudgetBelowMaxBodyIsRefusedAtStart) {
  HttpServerOptions options;
  options.max_body_bytes = 2u << 20;
  options.max_buffered_body_bytes = 1u << 20;
  absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(options, Ok);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

// Eight senders announce 1 MiB bodies, send half and stall: only the four that fit the 4 MiB
// budget are being read, the others wait and then get 503 with Retry-After; the admitted ones
// finish normally once their senders resume.
TEST(HttpOverloadTest, StalledSendersCannotMakeTheServerHoldMoreThanTheBudget) {
  constexpr size_t kBody = 1u << 20;
  HttpServerOptions options;
  options.max_body_bytes = kBody;
  options.max_buffered_body_bytes = 4 * kBody;
  options.body_budget_wait = absl::Milliseconds(500);
  std::unique_ptr<HttpServer> server = StartOrDie(options);
  ASSERT_NE(server, nullptr);

  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < 8; ++i) {
    conns.push_back(std::make_unique<RawConnection>(server->port()));
    ASSERT_TRUE(conns.back()->connected());
    ASSERT_TRUE(conns.back()->Send(PutHeader(kBody)));
    // An eighth of the body: small enough to sit in socket buffers while the server does not
    // read.
    ASSERT_TRUE(conns.back()->Send(std::string(kBody / 8, 'a')));
  }
  ASSERT_TRUE(testing::WaitFor([&] { return server->load().rejected_busy == 4; },
                               absl::Seconds(10)))
      << "rejected " << server->load().rejected_busy;
  HttpServerLoad load = server->load();
  EXPECT_EQ(load.buffered_body_bytes, 4 * kBody);
  EXPECT_LE(load.peak_buffered_body_bytes, 4 * kBody);

  // Which four were refused is up to the scheduler: finish every body and sort the answers.
  int ok = 0, busy = 0;
  for (auto& c : conns) {
    (void)c->Send(std::string(kBody - kBody / 8, 'b'));  // a refused one may be closed already
    const std::string head = c->ReadUntil("\r\n\r\n");
    if (absl::StartsWith(head, "HTTP/1.1 200")) {
      ++ok;
    } else {
      EXPECT_THAT(head, StartsWith("HTTP/1.1 503"));
      EXPECT_THAT(head, HasSubstr("Retry-After: 1"));
      ++busy;
    }
  }
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(busy, 4);
  EXPECT_TRUE(testing::WaitFor([&] { return server->load().buffered_body_bytes == 0; },
                               absl::Seconds(5)));
  EXPECT_LE(server->load().peak_buffered_body_bytes, 4 * kBody);
}

// Over the budget a request waits rather than failing when room frees up in time.
TEST(HttpOverloadTest, RequestWaitsForBudgetAndProceeds) {
  constexpr size_t kBody = 256u << 10;
  HttpServerOptions options;
  options.max_body_bytes = kBody;
  options.max_buffered_body_bytes = kBody;
  options.body_budget_wait = absl::Seconds(10);
  std::unique_ptr<HttpServer> server = StartOrDie(options);
  ASSERT_NE(server, nullptr);

  RawConnection holder(server->port());
  ASSERT_TRUE(holder.Send(PutHeader(kBody) + std::string(kBody / 2, 'h')));
  ASSERT_TRUE(testing::WaitFor(
      [&] { return server->load().buffered_body_bytes == kBody; }, absl::Seconds(5)));

  auto client = HttpClient::Create();
  const std::string body(kBody, 'w');
  std::atomic<bool> done{false};
  absl::StatusOr<HttpResponse> waited;
  std::thread waiter([&] {
    HttpRequest req;
    req.method = "PUT";
    req.url = absl::StrCat("http://127.0.0.1:", server->port(), "/waiter");
    req.body = body;
    waited = client->Do(req);
    done = true;
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_FALSE(done.load()) << "the second request did not wait for the budget";
  ASSERT_TRUE(holder.Send(std::string(kBody - kBody / 2, 'h')));
  EXPECT_THAT(holder.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  waiter.join();
  ASSERT_OK(waited);
  EXPECT_EQ(waited->status, 200);
  EXPECT_EQ(waited->body, absl::StrCat(kBody));
  EXPECT_EQ(server->load().rejected_busy, 0u);
}

// HttpServerOptions::screen sees each request's header before its body: what it refuses is
// answered without reading or charging the body (and without "100 Continue"), then closed;
// what it lets through reaches the handler whole.
TEST(HttpOverloadTest, ScreenAnswersBeforeTheBodyIsReadOrCharged) {
  HttpServerOptions options;
  options.max_body_bytes = 8u << 20;
  options.max_buffered_body_bytes = 8u << 20;
  std::atomic<int> screened{0};
  std::atomic<int> handled{0};
  std::atomic<size_t> screened_body_bytes{0};
  options.screen = [&](const ServerRequest& r) -> std::optional<ServerResponse> {
    ++screened;
    screened_body_bytes += r.body.size();
    if (r.target == "/throw") throw std::runtime_error("screen bug");
    if (!r.Header("Authorization").empty()) return std::nullopt;
    ServerResponse refused;
    refused.status = 401;
    refused.body = "who are you?";
    return refused;
  };
  std::unique_ptr<HttpServer> server = StartOrDie(options, [&](const ServerRequest& r) {
    ++handled;
    return Ok(r);
  });
  ASSERT_NE(server, nullptr);

  for (const std::string& extra : {std::string(), std::string("Expect: 100-continue\r\n")}) {
    RawConnection c(server->port());
    ASSERT_TRUE(c.Send(absl::StrCat("PUT /up HTTP/1.1\r\nHost: x\r\n", extra,
                                    "Content-Length: 4000000\r\n\r\n")));
    bool closed = false;
    const std::string reply = c.ReadAll(&closed);
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 401"));  // not "100 Continue" first
    EXPECT_THAT(reply, HasSubstr("who are you?"));
    EXPECT_TRUE(closed);
  }
  EXPECT_EQ(server->load().peak_buffered_body_bytes, 0u);

  // Refused without a body: the connection stays usable; let through: the handler has it all.
  RawConnection k(server->port());
  ASSERT_TRUE(k.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(k.ReadUntil("who are you?"), StartsWith("HTTP/1.1 401"));
  ASSERT_TRUE(k.Send("PUT /b HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\n"
                     "Content-Length: 5\r\nConnection: close\r\n\r\nhello"));
  const std::string ok = k.ReadAll();
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(ok, HasSubstr("\r\n\r\n5"));  // Ok() answers the body's size

  // A screen that throws is a 500, as a handler that throws.
  RawConnection t(server->port());
  ASSERT_TRUE(t.Send("GET /throw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_THAT(t.ReadAll(), StartsWith("HTTP/1.1 500"));

  EXPECT_EQ(screened.load(), 5);
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(screened_body_bytes.load(), 0u);
}

TEST(HttpOverloadTest, ChunkedBodyIsChargedAsItGrows) {
  HttpServerOptions options;
  options.max_body_bytes = 4u << 20;
  options.max_buffered_body_bytes = 4u << 20;
  options.body_budget_wait = absl::Milliseconds(100);
  std::unique_ptr<HttpServer> server = StartOrDie(options);
  ASSERT_NE(server, nullptr);
  // Another request holds 2 MiB: a chunked body may grow into the rest, not past it.
  RawConnection holder(server->port());
  ASSERT_TRUE(holder.Send(PutHeader(2u << 20) + "x"));
  ASSERT_TRUE(testing::WaitFor(
      [&] { return server->load().buffered_body_bytes == (2u << 20); }, absl::Seconds(5)));
  RawConnection chunked(server->port());
  ASSERT_TRUE(chunked.Send("PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk(256u << 10, 'c');
  // 4 MiB in 256 KiB chunks: refused part way, once the body's growth no longer fits.
  for (int i = 0; i < 16; ++i) {
    if (!chunked.Send(absl::StrCat(absl::Hex(chunk.size()), "\r\n", chunk, "\r\n"))) break;
  }
  EXPECT_THAT(chunked.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 503"));
  EXPECT_GT(server->load().peak_buffered_body_bytes, (3u << 20))  // it did grow first
      << server->load().peak_buffered_body_bytes;
  EXPECT_LE(server->load().peak_buffered_body_bytes, 4u << 20);
}

TEST(HttpOverloadTest, ConnectionsPerPeerAndInAllAreCapped) {
  HttpServerOptions options;
  options.max_connections_per_peer = 2;
  options.retry_after_seconds = 3;
  std::unique_ptr<HttpServer> server = StartOrDie(options);
  ASSERT_NE(server, nullptr);
  auto a = std::make_unique<RawConnection>(server->port());
  RawConnection b(server->port());
  ASSERT_TRUE(testing::WaitFor([&] { return server->load().connections == 2; },
                               absl::Seconds(5)));
  RawConnection c(server->port());
  ASSERT_TRUE(c.Send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string head = c.ReadUntil("\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 503"));
  EXPECT_THAT(head, HasSubstr("Retry-After: 3"));
  EXPECT_EQ(server->load().rejected_connections, 1u);
  // The counted ones still work, and closing one makes room.
  ASSERT_TRUE(b.Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(b.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  a.reset();
  ASSERT_TRUE(testing::WaitFor([&] { return server->load().connections == 1; },
                               absl::Seconds(5)));
  RawConnection d(server->port());
  ASSERT_TRUE(d.Send("GET /d HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(d.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200"));

  HttpServerOptions total;
  total.max_connections = 1;
  std::unique_ptr<HttpServer> small = StartOrDie(total);
  ASSERT_NE(small, nullptr);
  RawConnection first(small->port());
  ASSERT_TRUE(testing::WaitFor([&] { return small->load().connections == 1; },
                               absl::Seconds(5)));
  RawConnection second(small->port());
  ASSERT_TRUE(second.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(second.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 503"));
}

// The client side: ConnectClient treats the overload 503 as "try again later", so a busy server
// only delays a call.
TEST(HttpOverloadTest, ConnectClientRetriesOverload503) {
  HttpServerOptions options;
  options.max_body_bytes = 64u << 10;
  options.max_buffered_body_bytes = 64u << 10;
  options.body_budget_wait = absl::ZeroDuration();
  ConnectRouter router;
  router.Add<google::protobuf::StringValue, google::protobuf::StringValue>(
      "/t.S/Echo", [](const google::protobuf::StringValue& r) { return r; });
  std::unique_ptr<HttpServer> server =
      StartOrDie(options, [&](const ServerRequest& r) { return router.Handle(r); });
  ASSERT_NE(server, nullptr);
  auto holder = std::make_unique<RawConnection>(server->port());
  ASSERT_TRUE(holder->Send(PutHeader(64u << 10) + "x"));
  ASSERT_TRUE(testing::WaitFor([&] { return server->load().buffered_body_bytes > 0; },
                               absl::Seconds(5)));

  auto http = HttpClient::Create();
  ConnectClientOptions copts;
  copts.base_url = absl::StrCat("http://127.0.0.1:", server->port());
  copts.retry.max_attempts = 0;
  copts.retry.deadline = absl::Seconds(20);
  copts.retry.initial_backoff = absl::Milliseconds(20);
  copts.retry.max_backoff = absl::Milliseconds(100);
  ConnectClient rpc(http.get(), copts);
  google::protobuf::StringValue req, resp;
  req.set_value("hello");
  absl::Status result = absl::UnknownError("not called");
  std::thread caller([&] { result = rpc.Call("/t.S/Echo", req, &resp); });
  ASSERT_TRUE(testing::WaitFor([&] { return server->load().rejected_busy >= 2; },
                               absl::Seconds(10)));
  holder.reset();  // the budget frees: the next retry gets through
  caller.join();
  EXPECT_OK(result);
  EXPECT_EQ(resp.value(), "hello");
}

int64_t RssKiB(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmRSS:")) {
      int64_t kib = 0;
      std::string n = line.substr(6);
      n.erase(0, n.find_first_not_of(" \t"));
      n = n.substr(0, n.find(' '));
      if (absl::SimpleAtoi(n, &kib)) return kib;
    }
  }
  return -1;
}

// The figure of issue 10: eight slow 64 MiB uploads to a real nighfs-meta. Unbounded, RSS grew
// by everything received (~8 x 60 MiB); with the default 128 MiB budget at most two bodies are
// read, so RSS may grow by 128 MiB plus 48 MiB of slack (allocator, socket bookkeeping).
TEST(HttpOverloadTest, MetaServerRssStaysBoundedWithEightSlow64MiBUploads) {
  const std::string meta = testing::BuildRoot() + "/meta/nighfs-meta";
  if (::access(meta.c_str(), X_OK) != 0) GTEST_SKIP() << "no " << meta;
  testing::TempDir dir;
  const std::string port_file = dir.path() + "/port";
  absl::StatusOr<std::unique_ptr<testing::ChildProcess>> proc = testing::ChildProcess::Start(
      {meta, "--listen", "127.0.0.1:0", "--state-dir", dir.path(), "--port-file", port_file,
       "--budget-wait", "60", "--log-level", "warning", "--insecure-plaintext"},
      dir.path() + "/meta.log");
  ASSERT_OK(proc);
  int port = 0;
  ASSERT_TRUE(testing::WaitFor(
      [&] { return absl::SimpleAtoi(testing::ReadFileOrEmpty(port_file), &port) && port > 0; },
      absl::Seconds(10)));
  const int64_t before = RssKiB((*proc)->pid());
  ASSERT_GT(before, 0);

  constexpr size_t kBody = 64u << 20;
  constexpr size_t kSent = 60u << 20;
  const std::string chunk(1u << 20, 'm');
  std::vector<std::unique_ptr<RawConnection>> conns;
  std::vector<std::thread> senders;
  std::atomic<size_t> total_sent{0};
  for (int i = 0; i < 8; ++i) {
    conns.push_back(std::make_unique<RawConnection>(static_cast<uint16_t>(port)));
    ASSERT_TRUE(conns.back()->connected());
  }
  for (auto& c : conns) {
    senders.emplace_back([&, conn = c.get()] {
      if (!conn->Send(absl::StrCat("POST /nighfs.meta.v1.MetaService/Lookup HTTP/1.1\r\n"
                                   "Host: x\r\nContent-Type: application/proto\r\n"
                                   "Content-Length: ", kBody, "\r\n\r\n"))) {
        return;
      }
      // Stops when the server stops reading (1 s send timeout), or after 60 MiB: then stalls.
      for (size_t sent = 0; sent < kSent; sent += chunk.size()) {
        if (!conn->Send(chunk)) return;
        total_sent += chunk.size();
      }
    });
  }
  for (auto& t : senders) t.join();
  const int64_t after = RssKiB((*proc)->pid());
  const int64_t grown_mib = (after - before) / 1024;
  std::printf("nighfs-meta RSS: %lld MiB before, %lld MiB with 8 stalled 64 MiB uploads "
              "(%zu MiB sent)\n",
              static_cast<long long>(before / 1024), static_cast<long long>(after / 1024),
              total_sent.load() >> 20);
  EXPECT_GE(total_sent.load(), 2 * kSent) << "the admitted uploads were not read";
  // Sanitizers multiply memory (shadow maps), so the bound means nothing there.
  if (!testing::kUnderSanitizer) {
    EXPECT_LE(grown_mib, 128 + 48);
  }
  conns.clear();
  EXPECT_OK((*proc)->Stop(SIGTERM).status());
}

}  // namespace
}  // namespace nighfs
