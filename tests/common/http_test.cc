// End-to-end tests of HttpServer and HttpClient against each other, plus raw-socket tests of
// the server's handling of bad input.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/crc32c.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/raw_connection.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The handler used by most tests: echoes what it got so the client side can check it.
ServerResponse Echo(const ServerRequest& r) {
  ServerResponse resp;
  resp.status = 200;
  resp.content_type = "text/plain";
  resp.headers.push_back({"X-Method", r.method});
  resp.headers.push_back({"X-Target", r.target});
  resp.headers.push_back({"X-Content-Type-Seen", r.Header("content-type")});
  resp.headers.push_back({"X-Content-Length-Seen", r.Header("Content-Length")});
  resp.headers.push_back({"X-Expect-Seen", r.Header("expect")});
  resp.headers.push_back({"X-Echo", r.Header("x-echo")});
  resp.body = r.body;
  return resp;
}

// Every test runs with both threading models (HttpServerOptions::io_context_per_thread).
class HttpTest : public ::testing::TestWithParam<bool> {
 protected:
  void StartServer(HttpHandler handler, HttpServerOptions options = {}) {
    options.io_context_per_thread = GetParam();
    absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(options, std::move(handler));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    ASSERT_NE(server_->port(), 0);
  }
  std::string Url(std::string_view path) const {
    return absl::StrCat("http://127.0.0.1:", server_->port(), std::string(path));
  }
  absl::StatusOr<HttpResponse> Do(std::string method, std::string_view path,
                                  std::string_view body = {}, HttpHeaders headers = {}) {
    HttpRequest req;
    req.method = std::move(method);
    req.url = Url(path);
    req.body = body;
    req.headers = std::move(headers);
    return client_->Do(req);
  }

  std::unique_ptr<HttpClient> client_ = HttpClient::Create();
  std::unique_ptr<HttpServer> server_;
};

TEST_P(HttpTest, ServerRequestHeaderIsCaseInsensitive) {
  ServerRequest r;
  r.headers = {{"Content-Type", "a/b"}, {"x-thing", "1"}};
  EXPECT_EQ(r.Header("content-type"), "a/b");
  EXPECT_EQ(r.Header("X-THING"), "1");
  EXPECT_EQ(r.Header("missing"), "");
  EXPECT_EQ(r.Header("x-thin"), "");
  HttpResponse resp;
  resp.headers = {{"ETag", "\"abc\""}};
  EXPECT_EQ(resp.Header("etag"), "\"abc\"");
  EXPECT_EQ(resp.Header("etags"), "");
}

TEST_P(HttpTest, AllMethodsRoundTrip) {
  StartServer(Echo);
  for (const char* method : {"GET", "PUT", "POST", "DELETE"}) {
    SCOPED_TRACE(method);
    const std::string body = absl::StrCat("body of ", method);
    absl::StatusOr<HttpResponse> r = Do(method, "/a/b?x=1&y=2", body, {{"X-Echo", "hello"}});
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->Header("x-method"), method);
    EXPECT_EQ(r->Header("X-Target"), "/a/b?x=1&y=2");
    EXPECT_EQ(r->Header("x-echo"), "hello");
    EXPECT_EQ(r->Header("Content-Type"), "text/plain");
    EXPECT_EQ(r->body, body);
    // No curl defaults: no form Content-Type, no Expect; an exact Content-Length.
    EXPECT_EQ(r->Header("X-Content-Type-Seen"), "");
    EXPECT_EQ(r->Header("X-Expect-Seen"), "");
    EXPECT_EQ(r->Header("X-Content-Length-Seen"), std::to_string(body.size()));
  }
}

TEST_P(HttpTest, ContentTypeIsSentWhenGiven) {
  StartServer(Echo);
  absl::StatusOr<HttpResponse> r = Do("POST", "/", "{}", {{"Content-Type", "application/json"}});
  ASSERT_OK(r);
  EXPECT_EQ(r->Header("X-Content-Type-Seen"), "application/json");
}

TEST_P(HttpTest, HeadGetsHeadersAndLengthButNoBody) {
  StartServer([](const ServerRequest& r) {
    ServerResponse resp = Echo(r);
    resp.body = "twelve bytes";
    return resp;
  });
  absl::StatusOr<HttpResponse> r = Do("HEAD", "/obj");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("X-Method"), "HEAD");
  EXPECT_EQ(r->Header("Content-Length"), "12");
  EXPECT_EQ(r->body, "");
  // The connection is still in a sane state for the next request.
  absl::StatusOr<HttpResponse> g = Do("GET", "/obj");
  ASSERT_OK(g);
  EXPECT_EQ(g->body, "twelve bytes");
}

TEST_P(HttpTest, HeadHandlerMayStateTheEntityLength) {
  // What a proxy relaying an upstream HEAD does.
  StartServer([](const ServerRequest&) {
    ServerResponse resp;
    resp.headers.push_back({"Content-Length", "123456"});
    return resp;
  });
  absl::StatusOr<HttpResponse> r = Do("HEAD", "/obj");
  ASSERT_OK(r);
  EXPECT_EQ(r->Header("Content-Length"), "123456");
  EXPECT_EQ(r->body, "");
}

TEST_P(HttpTest, EmptyPutSendsContentLengthZero) {
  StartServer(Echo);
  absl::StatusOr<HttpResponse> r = Do("PUT", "/empty", "");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("X-Method"), "PUT");
  EXPECT_EQ(r->Header("X-Content-Length-Seen"), "0");
  EXPECT_EQ(r->body, "");
}

TEST_P(HttpTest, StatusesAndHeadersArePassedThrough) {
  StartServer([](const ServerRequest& r) {
    ServerResponse resp;
    resp.status = r.target == "/missing" ? 404 : (r.target == "/nocontent" ? 204 : 503);
    resp.content_type = "application/xml";
    resp.headers.push_back({"ETag", "\"v1\""});
    resp.headers.push_back({"x-amz-request-id", "R1"});
    if (resp.status != 204) resp.body = "<Error/>";
    return resp;
  });
  absl::StatusOr<HttpResponse> r = Do("GET", "/missing");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->Header("etag"), "\"v1\"");
  EXPECT_EQ(r->Header("X-Amz-Request-Id"), "R1");
  EXPECT_EQ(r->Header("content-type"), "application/xml");
  EXPECT_EQ(r->body, "<Error/>");
  r = Do("DELETE", "/nocontent");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->body, "");
  r = Do("GET", "/other");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 503);
}

TEST_P(HttpTest, LargeBodyBothWays) {
  HttpServerOptions options;
  options.max_body_bytes = 65u << 20;
  StartServer(
      [](const ServerRequest& r) {
        ServerResponse resp;
        resp.headers.push_back({"X-Crc", std::to_string(Crc32c(r.body))});
        resp.headers.push_back({"X-Expect-Seen", r.Header("Expect")});
        resp.body = r.body;
        return resp;
      },
      options);
  std::string body(64u << 20, '\0');
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < body.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&body[i], &x, 8);
  }
  absl::StatusOr<HttpResponse> r = Do("PUT", "/big", body);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("X-Crc"), std::to_string(Crc32c(body)));
  EXPECT_EQ(r->Header("X-Expect-Seen"), "");  // curl adds Expect for large bodies by default
  ASSERT_EQ(r->body.size(), body.size());
  EXPECT_TRUE(r->body == body);
}

TEST_P(HttpTest, SequentialRequestsReuseConnections) {
  absl::Mutex mu;
  std::set<std::string> peers;
  StartServer([&](const ServerRequest& r) {
    {
      absl::MutexLock lock(&mu);
      peers.insert(r.remote);
    }
    return Echo(r);
  });
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<HttpResponse> r = Do(i % 2 ? "GET" : "PUT", "/k", std::to_string(i));
    ASSERT_OK(r);
    ASSERT_EQ(r->status, 200);
  }
  absl::MutexLock lock(&mu);
  // One kept-alive connection serves them all; allow one spare in case the server or the
  // kernel closed one. Without reuse there would be 1000.
  EXPECT_LE(peers.size(), 2u);
  EXPECT_THAT(*peers.begin(), StartsWith("127.0.0.1:"));
}

TEST_P(HttpTest, ConcurrentClients) {
  absl::Mutex mu;
  std::set<std::string> peers;
  StartServer([&](const ServerRequest& r) {
    {
      absl::MutexLock lock(&mu);
      peers.insert(r.remote);
    }
    return Echo(r);
  });
  constexpr int kThreads = 32;
  constexpr int kRequests = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequests; ++i) {
        const std::string body = absl::StrCat("thread ", t, " request ", i);
        HttpRequest req;
        req.method = "POST";
        req.url = Url(absl::StrCat("/t", t));
        req.body = body;
        absl::StatusOr<HttpResponse> r = client_->Do(req);
        if (r.ok() && r->status == 200 && r->body == body &&
            r->Header("X-Target") == absl::StrCat("/t", t)) {
          ++ok;
        } else {
          ADD_FAILURE() << (r.ok() ? absl::StrCat("status ", r->status, " body ", r->body)
                                   : r.status().ToString());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kRequests);
  absl::MutexLock lock(&mu);
  // Pooled handles keep their connections: far fewer connections than requests.
  EXPECT_LE(peers.size(), static_cast<size_t>(2 * kThreads));
}

TEST_P(HttpTest, MalformedRequestGets400AndClose) {
  std::atomic<int> calls{0};
  StartServer([&](const ServerRequest& r) {
    ++calls;
    return Echo(r);
  });
  for (std::string_view garbage :
       {std::string_view("THIS IS NOT HTTP\r\n\r\n"),
        std::string_view("GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n"),
        std::string_view("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n")}) {
    SCOPED_TRACE(garbage);
    RawConnection c(server_->port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.Send(garbage));
    bool eof = false;
    std::string reply = c.ReadAll(&eof);
    EXPECT_THAT(reply, StartsWith("HTTP/1.1 400"));
    EXPECT_THAT(reply, HasSubstr("malformed HTTP request"));
    EXPECT_THAT(reply, HasSubstr("Connection: close"));
    EXPECT_TRUE(eof);
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST_P(HttpTest, OversizeBodyGets413) {
  std::atomic<int> calls{0};
  HttpServerOptions options;
  options.max_body_bytes = 1u << 20;
  StartServer(
      [&](const ServerRequest& r) {
        ++calls;
        return Echo(r);
      },
      options);
  // At the limit: fine.
  std::string body(1u << 20, 'x');
  absl::StatusOr<HttpResponse> r = Do("PUT", "/at-limit", body);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(calls.load(), 1);
  // Over it: refused with a reason, the handler not called.
  body.resize(4u << 20, 'y');
  r = Do("PUT", "/too-big", body);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_THAT(r->body, HasSubstr("exceeds"));
  EXPECT_EQ(calls.load(), 1);
  // The client recovers: the next request works.
  r = Do("GET", "/after");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(HttpTest, OversizeChunkedBodyGets413) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  StartServer(Echo, options);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n"));
  EXPECT_THAT(c.ReadAll(), StartsWith("HTTP/1.1 413"));
}

TEST_P(HttpTest, HandlerExceptionGets500) {
  StartServer([](const ServerRequest& r) -> ServerResponse {
    if (r.target == "/throw") throw std::runtime_error("database on fire");
    return Echo(r);
  });
  absl::StatusOr<HttpResponse> r = Do("GET", "/throw");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_THAT(r->body, HasSubstr("database on fire"));
  // The server (and the connection) survive.
  r = Do("GET", "/fine");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(HttpTest, CloseWithoutReplyIsATransportError) {
  StartServer([](const ServerRequest& r) {
    ServerResponse resp = Echo(r);
    resp.close_without_reply = r.target == "/drop";
    return resp;
  });
  absl::StatusOr<HttpResponse> r = Do("GET", "/drop");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  r = Do("GET", "/fine");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(HttpTest, ExpectContinueIsHonoured) {
  StartServer(Echo);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     "Expect: 100-continue\r\n\r\n"));
  // The server must invite the body before the client sends it.
  EXPECT_THAT(c.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 100"));
  ASSERT_TRUE(c.Send("hello"));
  std::string reply = c.ReadUntil("hello");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\nhello"));
}

TEST_P(HttpTest, PipelinedRequestsAndConnectionClose) {
  StartServer(Echo);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                     "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n"
                     "\r\ntwo"));
  bool eof = false;
  std::string reply = c.ReadAll(&eof);
  EXPECT_TRUE(eof);  // closed as asked
  size_t first = reply.find("X-Target: /1");
  size_t second = reply.find("X-Target: /2");
  ASSERT_NE(first, std::string::npos) << reply;
  ASSERT_NE(second, std::string::npos) << reply;
  EXPECT_LT(first, second);
  EXPECT_THAT(reply, HasSubstr("\r\n\r\none"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\ntwo"));
}

TEST_P(HttpTest, Http10GetsAReplyAndAClose) {
  StartServer(Echo);
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /old HTTP/1.0\r\n\r\n"));
  bool eof = false;
  std::string reply = c.ReadAll(&eof);
  EXPECT_THAT(reply, StartsWith("HTTP/1.0 200"));
  EXPECT_TRUE(eof);
}

TEST_P(HttpTest, StopClosesKeptAliveConnectionsPromptly) {
  StartServer(Echo);
  // A kept-alive connection in the client's pool, and an idle raw one.
  ASSERT_OK(Do("GET", "/warm"));
  RawConnection idle(server_->port());
  ASSERT_TRUE(idle.connected());
  ASSERT_TRUE(idle.Send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_THAT(idle.ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200"));

  std::future<void> stopped = std::async(std::launch::async, [&] { server_->Stop(); });
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "Stop() hangs with open keep-alive connections";
  server_->Stop();  // idempotent

  // The idle connection was closed by the server (not left to time out).
  bool eof = false;
  idle.ReadAll(&eof);
  EXPECT_TRUE(eof);
  // And nothing listens any more.
  EXPECT_THAT(Do("GET", "/after-stop"), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_P(HttpTest, StopWaitsForHandlerInFlight) {
  absl::Notification entered, release;
  std::atomic<bool> finished{false};
  StartServer([&](const ServerRequest& r) {
    entered.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(20));
    finished = true;
    return Echo(r);
  });
  std::thread client([&] { (void)Do("GET", "/slow"); });
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(absl::Seconds(20)));
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(100));
    release.Notify();
  });
  server_->Stop();
  EXPECT_TRUE(finished.load());  // Stop() returned only after the handler did
  releaser.join();
  client.join();
}

TEST_P(HttpTest, BindFailureIsReported) {
  StartServer(Echo);
  HttpServerOptions options;
  options.port = server_->port();
  // SO_REUSEADDR does not allow two listeners on one port.
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(options, Echo);
  EXPECT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr("bind"));
  options.bind_address = "not an address";
  EXPECT_THAT(HttpServer::Start(options, Echo), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(HttpServer::Start(HttpServerOptions{}, HttpHandler()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ---- Client-side errors

TEST_P(HttpTest, ConnectionRefusedIsUnavailableAndRedactsSecrets) {
  const int port = testing::FreeLoopbackPort();
  HttpRequest req;
  req.url = absl::StrCat("http://user:hunter2@127.0.0.1:", port,
                         "/bucket/key?X-Amz-Signature=SECRETSIG");
  req.headers = {{"Authorization", "Bearer SECRETTOKEN"}};
  absl::StatusOr<HttpResponse> r = client_->Do(req);
  ASSERT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  const std::string msg(r.status().message());
  EXPECT_THAT(msg, HasSubstr("/bucket/key"));
  EXPECT_THAT(msg, ::testing::Not(HasSubstr("SECRETSIG")));
  EXPECT_THAT(msg, ::testing::Not(HasSubstr("hunter2")));
  EXPECT_THAT(msg, ::testing::Not(HasSubstr("SECRETTOKEN")));
}

TEST_P(HttpTest, SlowServerIsDeadlineExceeded) {
  // Shared with the handler: the first (timed-out) handler may still be waking up inside the
  // notification's mutex when this test body ends, before TearDown stops the server (a stack
  // notification aborted once with "Mutex corrupt").
  auto release = std::make_shared<absl::Notification>();
  StartServer([release](const ServerRequest& r) {
    release->WaitForNotificationWithTimeout(absl::Seconds(20));
    return Echo(r);
  });
  HttpRequest req;
  req.url = Url("/slow");
  req.timeout = absl::Milliseconds(200);
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kDeadlineExceeded));
  release->Notify();
  // The timed-out handle was discarded; a fresh one works.
  req.timeout = absl::ZeroDuration();
  absl::StatusOr<HttpResponse> r = client_->Do(req);
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_P(HttpTest, InvalidRequestsAreRejectedBeforeSending) {
  HttpRequest req;
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));  // no URL
  req.url = "http://127.0.0.1:1/";
  req.headers = {{"X-Evil", "a\r\nInjected: yes"}};
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req.headers = {{"Bad Name", "v"}};
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req.headers.clear();
  req.method = "GET /x";
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
  req.method = "GET";
  req.url = "ftp://127.0.0.1/";
  EXPECT_THAT(client_->Do(req), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_P(HttpTest, EmptyHeaderValueIsSent) {
  StartServer([](const ServerRequest& r) {
    ServerResponse resp;
    bool present = false;
    for (const auto& [k, v] : r.headers) present |= k == "X-Empty" && v.empty();
    resp.body = present ? "present" : "absent";
    return resp;
  });
  absl::StatusOr<HttpResponse> r = Do("GET", "/", {}, {{"X-Empty", ""}});
  ASSERT_OK(r);
  EXPECT_EQ(r->body, "present");
}

TEST_P(HttpTest, ConnectionsAreSpreadOverTheThreads) {
  // Four connections whose requests all wait inside the handler for each other: they can only
  // all get there if no two of them share a thread (with one io_context per thread, a
  // connection is placed on the thread with the fewest).
  constexpr int kConnections = 4;
  absl::Mutex mu;
  int inside = 0;
  std::set<std::thread::id> threads;
  HttpServerOptions options;
  options.threads = kConnections;
  StartServer(
      [&](const ServerRequest& r) {
        absl::MutexLock lock(&mu);
        ++inside;
        threads.insert(std::this_thread::get_id());
        const bool all = mu.AwaitWithTimeout(
            absl::Condition(+[](int* n) { return *n >= kConnections; }, &inside),
            absl::Seconds(20));
        ServerResponse resp = Echo(r);
        if (!all) resp.status = 504;
        return resp;
      },
      options);
  std::vector<std::unique_ptr<RawConnection>> conns;
  for (int i = 0; i < kConnections; ++i) {
    conns.push_back(std::make_unique<RawConnection>(server_->port()));
    ASSERT_TRUE(conns.back()->connected());
  }
  for (auto& c : conns) ASSERT_TRUE(c->Send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (auto& c : conns) EXPECT_THAT(c->ReadUntil("\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(threads.size(), static_cast<size_t>(kConnections));
}

INSTANTIATE_TEST_SUITE_P(Threading, HttpTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "ContextPerThread" : "SharedContext";
                         });

}  // namespace
}  // namespace nighfs
