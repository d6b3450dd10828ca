// ConnectRouter + ConnectClient over a real HttpServer/HttpClient pair.
#include "common/connect.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "error.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/wrappers.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/fault_proxy.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs {
namespace {

using ::google::protobuf::StringValue;
using ::nighfs::testing::FaultProxy;
using ::testing::HasSubstr;

constexpr char kEcho[] = "/nighfs.test.v1.TestService/Echo";
constexpr char kRmdir[] = "/nighfs.test.v1.TestService/Rmdir";
constexpr char kDenied[] = "/nighfs.test.v1.TestService/Denied";
constexpr char kBadErrno[] = "/nighfs.test.v1.TestService/BadErrno";
constexpr char kNoSuch[] = "/nighfs.test.v1.TestService/NoSuch";

RetryPolicy FastRetry() {
  RetryPolicy p;
  p.max_attempts = 4;
  p.initial_backoff = absl::Milliseconds(1);
  p.max_backoff = absl::Milliseconds(10);
  p.deadline = absl::Seconds(20);
  return p;
}

rpc::v1::ConnectError ParseError(const HttpResponse& r) {
  rpc::v1::ConnectError err;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &err, opts).ok()) << r.body;
  return err;
}

class ConnectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_.Add<StringValue, StringValue>(
        kEcho, [this](const StringValue& req) -> absl::StatusOr<StringValue> {
          ++echo_calls_;
          StringValue resp;
          resp.set_value("echo: " + req.value());
          return resp;
        });
    router_.Add<StringValue, StringValue>(
        kRmdir, [](const StringValue& req) -> absl::StatusOr<StringValue> {
          return PosixError(ENOTEMPTY, absl::StrCat("directory ", req.value(), " is not empty"));
        });
    // BytesValue: a proto3 string field must hold UTF-8, a name need not.
    router_.Add<google::protobuf::BytesValue, StringValue>(
        kNoSuch, [](const google::protobuf::BytesValue& req) -> absl::StatusOr<StringValue> {
          return absl::NotFoundError(absl::StrCat("no volume named ", req.value()));
        });
    router_.Add<StringValue, StringValue>(
        kBadErrno, [](const StringValue& req) -> absl::StatusOr<StringValue> {
          int err = 0;
          if (!absl::SimpleAtoi(req.value(), &err)) return absl::InvalidArgumentError("errno?");
          absl::Status s = absl::NotFoundError("odd errno");
          SetErrnoPayload(s, err);
          return s;
        });
    router_.Add<StringValue, StringValue>(
        kDenied, [](const StringValue&) -> absl::StatusOr<StringValue> {
          return absl::PermissionDeniedError("volume token does not allow writes");
        });
    absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(
        HttpServerOptions{}, [this](const ServerRequest& r) { return router_.Handle(r); });
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    base_url_ = absl::StrCat("http://127.0.0.1:", server_->port());
  }

  absl::StatusOr<HttpResponse> Raw(std::string method, std::string path, std::string body,
                                   std::string content_type) {
    HttpRequest req;
    req.method = std::move(method);
    req.url = base_url_ + path;
    if (!content_type.empty()) req.headers.push_back({"Content-Type", content_type});
    req.body = body;
    return http_->Do(req);
  }

  ConnectClient Client(const std::string& base_url) {
    ConnectClientOptions opts;
    opts.base_url = base_url;
    opts.retry = FastRetry();
    opts.call_timeout = absl::Seconds(10);
    return ConnectClient(http_.get(), opts);
  }

  std::atomic<int> echo_calls_{0};
  ConnectRouter router_;
  std::unique_ptr<HttpClient> http_ = HttpClient::Create();
  std::unique_ptr<HttpServer> server_;
  std::string base_url_;
};

TEST_F(ConnectTest, CallRoundTrip) {
  ConnectClient client = Client(base_url_ + "/");  // a trailing slash is tolerated
  StringValue req, resp;
  req.set_value("hello");
  ASSERT_OK(client.Call(kEcho, req, &resp));
  EXPECT_EQ(resp.value(), "echo: hello");
  // An empty message is an empty body; still a valid call.
  req.Clear();
  ASSERT_OK(client.Call(kEcho, req, &resp));
  EXPECT_EQ(resp.value(), "echo: ");
}

TEST_F(ConnectTest, UnknownMethodIs404WithJsonError) {
  absl::StatusOr<HttpResponse> r = Raw("POST", "/nighfs.test.v1.TestService/Nope", "",
                                       "application/proto");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_THAT(r->Header("Content-Type"), HasSubstr("application/json"));
  rpc::v1::ConnectError err = ParseError(*r);
  EXPECT_FALSE(err.code().empty());
  EXPECT_THAT(err.message(), HasSubstr("Nope"));
}

TEST_F(ConnectTest, GetIs405) {
  absl::StatusOr<HttpResponse> r = Raw("GET", kEcho, "", "");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("Allow"), "POST");
  EXPECT_THAT(ParseError(*r).message(), HasSubstr("POST"));
  EXPECT_EQ(echo_calls_.load(), 0);
}

TEST_F(ConnectTest, WrongContentTypeIs415) {
  absl::StatusOr<HttpResponse> r = Raw("POST", kEcho, "", "application/json");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_THAT(ParseError(*r).message(), HasSubstr("application/proto"));
  // Parameters after ';' are allowed.
  r = Raw("POST", kEcho, "", "Application/Proto; charset=binary");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ConnectTest, GarbageBodyIs400InvalidArgument) {
  absl::StatusOr<HttpResponse> r = Raw("POST", kEcho, "\xff\xff\xff\xff", "application/proto");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 400);
  rpc::v1::ConnectError err = ParseError(*r);
  EXPECT_EQ(err.code(), "invalid_argument");
  EXPECT_THAT(err.message(), HasSubstr("StringValue"));
  EXPECT_EQ(echo_calls_.load(), 0);
}

TEST_F(ConnectTest, ErrnoSurvivesTheWire) {
  ConnectClient client = Client(base_url_);
  StringValue req, resp;
  req.set_value("/a/b");
  absl::Status s = client.Call(kRmdir, req, &resp);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(StatusToErrno(s), ENOTEMPTY) << s;
  EXPECT_EQ(s.code(), PosixError(ENOTEMPTY, "").code());
  EXPECT_THAT(std::string(s.message()), HasSubstr("/a/b is not empty"));
}

// An error message quoting bytes that are not UTF-8 (a name from the request) still reaches
// the client as the server's error: same code, the bad bytes written as \xNN. Before, the JSON
// error body was unreadable and the client fell back on the HTTP status (404: Unimplemented).
// Found by fuzz/meta_rpc.cc (fuzz/regressions/meta_rpc/invalid_utf8_in_error_message).
TEST_F(ConnectTest, ErrorMessageWithInvalidUtf8KeepsItsCode) {
  ConnectClient client = Client(base_url_);
  google::protobuf::BytesValue raw;
  raw.set_value("caf\xc3\xa9 \xff\xfe\xc1\x87 end");
  StringValue resp;
  absl::Status s = client.Call(kNoSuch, raw, &resp);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(s.message(), "no volume named caf\xc3\xa9 \\xff\\xfe\\xc1\\x87 end");
}

// A server (buggy, hostile, or newer) may send any integer as "errno". The mount hands an
// errno to the kernel, whose FUSE module takes only 1..511 and leaves the call hanging on any
// other value; so the client keeps only those, and the Connect code decides the rest.
// Found by fuzz/connect_error.cc (fuzz/regressions/connect_error/errno_out_of_fuse_range).
TEST_F(ConnectTest, ErrnoOutsideWhatFuseTakesIsDropped) {
  ConnectClient client = Client(base_url_);
  StringValue req, resp;
  for (const char* err : {"512", "600", "999", "1000", "2147483647"}) {
    req.set_value(err);
    absl::Status s = client.Call(kBadErrno, req, &resp);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound)) << err;
    EXPECT_FALSE(HasErrnoPayload(s)) << err << ": " << s;
    EXPECT_EQ(StatusToErrno(s), ENOENT) << err;
  }
  req.set_value("511");
  absl::Status s = client.Call(kBadErrno, req, &resp);
  EXPECT_TRUE(HasErrnoPayload(s)) << s;
  EXPECT_EQ(StatusToErrno(s), 511);
}

TEST_F(ConnectTest, ServerErrorsAreNotRetried) {
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(base_url_);
  ASSERT_OK(proxy);
  ConnectClient client = Client((*proxy)->url());
  StringValue req, resp;
  EXPECT_THAT(client.Call(kDenied, req, &resp), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ((*proxy)->requests_seen(), 1);
}

TEST_F(ConnectTest, UnreachableServerIsUnavailableAfterRetries) {
  const std::string dead = absl::StrCat("http://127.0.0.1:", testing::FreeLoopbackPort());
  ConnectClient client = Client(dead);
  StringValue req, resp;
  absl::Status s = client.Call(kEcho, req, &resp);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("4 attempts"));

  // With unbounded attempts, the retry deadline ends it.
  ConnectClientOptions opts;
  opts.base_url = dead;
  opts.retry.max_attempts = 0;
  opts.retry.initial_backoff = absl::Milliseconds(5);
  opts.retry.max_backoff = absl::Milliseconds(20);
  opts.retry.deadline = absl::Milliseconds(300);
  ConnectClient bounded(http_.get(), opts);
  const absl::Time start = absl::Now();
  s = bounded.Call(kEcho, req, &resp);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("attempts"));
  // Generous: proves the deadline bounds the loop, not how fast this machine is.
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

// A server that accepts connections and never answers (a black hole: a listening socket no one
// accepts on). retry.deadline is a hard bound on the call: the attempt in flight is cut short
// rather than running to its own 30 s call_timeout (issue 10: meta_timeout=60 waited 70 s).
TEST_F(ConnectTest, DeadlineBoundsTheAttemptInFlight) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ConnectClientOptions opts;
  opts.base_url = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port));
  opts.call_timeout = absl::Seconds(30);
  opts.retry.max_attempts = 0;
  opts.retry.deadline = absl::Seconds(1);
  ConnectClient client(http_.get(), opts);
  StringValue req, resp;
  const absl::Time start = absl::Now();
  absl::Status s = client.Call(kEcho, req, &resp);
  const absl::Duration took = absl::Now() - start;
  ::close(fd);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(IsRetryable(s)) << s;
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_LT(took, absl::Seconds(2)) << s;
}

TEST_F(ConnectTest, Retries503FromProxyThenSucceeds) {
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(base_url_);
  ASSERT_OK(proxy);
  ConnectClient client = Client((*proxy)->url());
  (*proxy)->InjectNext(FaultProxy::Fault::kServiceUnavailable);
  StringValue req, resp;
  req.set_value("through the proxy");
  ASSERT_OK(client.Call(kEcho, req, &resp));
  EXPECT_EQ(resp.value(), "echo: through the proxy");
  EXPECT_EQ((*proxy)->requests_seen(), 2);
  EXPECT_EQ(echo_calls_.load(), 1);  // the faulted attempt never reached the server
}

TEST_F(ConnectTest, RetriesThrottlingAndDroppedConnections) {
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(base_url_);
  ASSERT_OK(proxy);
  ConnectClient client = Client((*proxy)->url());
  (*proxy)->InjectNext(FaultProxy::Fault::kTooManyRequests);
  (*proxy)->InjectNext(FaultProxy::Fault::kDropConnection);
  StringValue req, resp;
  req.set_value("x");
  ASSERT_OK(client.Call(kEcho, req, &resp));
  EXPECT_EQ((*proxy)->requests_seen(), 3);
  EXPECT_EQ(echo_calls_.load(), 1);
}

TEST_F(ConnectTest, PersistentFailureGivesUp) {
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(base_url_);
  ASSERT_OK(proxy);
  ConnectClient client = Client((*proxy)->url());
  (*proxy)->InjectNext(FaultProxy::Fault::kServiceUnavailable, 100);
  StringValue req, resp;
  EXPECT_THAT(client.Call(kEcho, req, &resp), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ((*proxy)->requests_seen(), FastRetry().max_attempts);
  EXPECT_EQ(echo_calls_.load(), 0);
}

}  // namespace
}  // namespace nighfs
