// The pieces the S3 and Azure stores share (blockstore/http_store_util.h), without a server:
// request encoding, error classification and messages, and the retry loop against a scripted
// HttpClient. The stores' own tests (s3_test, azure_test) cover the same code end to end
// through emulators and a fault-injecting proxy.
#include "blockstore/http_store_util.h"

#include <algorithm>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "blockstore/block_store.h"
#include "blockstore/call_deadline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::blockstore {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PercentEncodeTest, KeepsOnlyUnreservedAndOptionallySlash) {
  EXPECT_EQ(PercentEncode("AZaz09-._~", Slash::kEncode), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b/c", Slash::kKeep), "a%20b/c");
  EXPECT_EQ(PercentEncode("a b/c", Slash::kEncode), "a%20b%2Fc");
  EXPECT_EQ(PercentEncode("+=&*%?#:@!$", Slash::kEncode), "%2B%3D%26%2A%25%3F%23%3A%40%21%24");
  EXPECT_EQ(PercentEncode("\xc3\xa9", Slash::kKeep), "%C3%A9");  // bytes, uppercase hex
  EXPECT_EQ(PercentEncode(std::string("\0\x7f\xff", 3), Slash::kKeep), "%00%7F%FF");
  EXPECT_EQ(PercentEncode("", Slash::kEncode), "");
}

TEST(CollapseWhitespaceTest, TrimsAndFoldsOnlyTheGivenCharacters) {
  EXPECT_EQ(CollapseWhitespace("  a \t  b   c \t", " \t"), "a b c");
  EXPECT_EQ(CollapseWhitespace("a\r\nb", " \t"), "a\r\nb");  // SigV4 leaves line breaks
  EXPECT_EQ(CollapseWhitespace("a\r\n b\n", " \t\r\n"), "a b");  // Shared Key folds them
  EXPECT_EQ(CollapseWhitespace(" \t ", " \t"), "");
  EXPECT_EQ(CollapseWhitespace("abc", " \t"), "abc");
}

TEST(ByteRangeHeaderTest, ClosedOpenAndWhole) {
  constexpr uint64_t kMax = kToEnd;
  EXPECT_EQ(ByteRangeHeader(0, kToEnd), "");
  EXPECT_EQ(ByteRangeHeader(0, 10), "bytes=0-9");
  EXPECT_EQ(ByteRangeHeader(10, 1), "bytes=10-10");
  EXPECT_EQ(ByteRangeHeader(5, kToEnd), "bytes=5-");
  // Closed as long as the last byte wanted is representable.
  EXPECT_EQ(ByteRangeHeader(kMax - 9, 10), absl::StrCat("bytes=", kMax - 9, "-", kMax));
  EXPECT_EQ(ByteRangeHeader(kMax - 9, 11), absl::StrCat("bytes=", kMax - 9, "-"));
  EXPECT_EQ(ByteRangeHeader(1, kMax - 1), absl::StrCat("bytes=1-", kMax - 1));
}

TEST(CodeForHttpStatusTest, TheStatusesEveryStoreAgreesOn) {
  EXPECT_EQ(CodeForHttpStatus(500), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(501), absl::StatusCode::kUnavailable);  // S3 overrides this one
  EXPECT_EQ(CodeForHttpStatus(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(599), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(429), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeForHttpStatus(400), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CodeForHttpStatus(401), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForHttpStatus(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeForHttpStatus(404), absl::StatusCode::kNotFound);
  EXPECT_EQ(CodeForHttpStatus(409), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeForHttpStatus(412), absl::StatusCode::kFailedPrecondition);
  // Left to each store's table.
  for (int status : {200, 301, 307, 405, 408, 413, 414, 416}) {
    EXPECT_EQ(CodeForHttpStatus(status), absl::StatusCode::kUnknown) << status;
  }
}

TEST(FormatHttpErrorTest, LeavesOutWhatTheServiceDidNotSay) {
  const HttpStoreOp op{"S3", "GET", "p/blk/01"};
  EXPECT_EQ(FormatHttpError(op, 403, {"AccessDenied", "Access Denied", "X1"}),
            "S3 GET p/blk/01: 403 AccessDenied: Access Denied (request id X1)");
  EXPECT_EQ(FormatHttpError(op, 404, {}), "S3 GET p/blk/01: 404");
  EXPECT_EQ(FormatHttpError(op, 404, {"", "", "r"}), "S3 GET p/blk/01: 404 (request id r)");
  EXPECT_EQ(FormatHttpError({"Azure", "HEAD", "k"}, 403, {"AuthenticationFailed", "", ""}),
            "Azure HEAD k: 403 AuthenticationFailed");
  EXPECT_EQ(FormatHttpError(op, 301, {"PermanentRedirect", "moved", "r"}, "use region=x"),
            "S3 GET p/blk/01: 301 PermanentRedirect: moved (use region=x) (request id r)");
}

TEST(TransportErrorTest, KeepsTheCodeAndNamesTheRequest) {
  const absl::Status s =
      TransportError({"GCS", "PUT", "blk/1"}, absl::UnavailableError("Connection refused"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(s.message(), "GCS PUT blk/1: Connection refused");
}

// Answers from a script and records what it was sent. Single-threaded use only.
class ScriptedClient : public HttpClient {
 public:
  explicit ScriptedClient(std::deque<absl::StatusOr<HttpResponse>> script)
      : script_(std::move(script)) {}

  absl::StatusOr<HttpResponse> Do(const HttpRequest& request) override {
    sent_.push_back(request);
    if (script_.empty()) return absl::InternalError("script exhausted");
    absl::StatusOr<HttpResponse> next = std::move(script_.front());
    script_.pop_front();
    return next;
  }

  const std::vector<HttpRequest>& sent() const { return sent_; }

 private:
  std::deque<absl::StatusOr<HttpResponse>> script_;
  std::vector<HttpRequest> sent_;
};

HttpResponse Response(int status, std::string body = "") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

RetryPolicy FastPolicy(int attempts) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff = absl::Microseconds(100);
  p.max_backoff = absl::Milliseconds(1);
  p.deadline = absl::Seconds(30);
  return p;
}

// The response handler of a store: 200 is success, anything else an error classified by
// status alone.
absl::Status ByStatus(HttpResponse& r) {
  if (r.status == 200) return absl::OkStatus();
  return absl::Status(CodeForHttpStatus(r.status), absl::StrCat("status ", r.status));
}

TEST(SendWithRetriesTest, RebuildsTheRequestForEveryAttempt) {
  ScriptedClient client({Response(503), absl::UnavailableError("reset"), Response(200, "ok")});
  int built = 0;
  std::string body_seen;
  const absl::Status s = SendWithRetries(
      client, FastPolicy(5), {"S3", "GET", "k"},
      [&]() {
        HttpRequest r;
        r.url = "http://127.0.0.1:1/k";
        r.headers.emplace_back("x-attempt", absl::StrCat(++built));
        return r;
      },
      [&](HttpResponse& r) {
        body_seen = r.body;
        return ByStatus(r);
      });
  ASSERT_OK(s);
  EXPECT_EQ(body_seen, "ok");
  ASSERT_EQ(client.sent().size(), 3u);
  std::vector<std::string> attempts;
  for (const HttpRequest& r : client.sent()) attempts.push_back(r.headers.at(0).second);
  // Each attempt carried its own freshly built (signed) headers.
  EXPECT_THAT(attempts, ElementsAre("1", "2", "3"));
}

TEST(SendWithRetriesTest, StopsAtTheFirstNonRetryableAnswer) {
  ScriptedClient client({Response(500), Response(403), Response(200)});
  const absl::Status s = SendWithRetries(
      client, FastPolicy(5), {"Azure", "PUT", "k"}, [] { return HttpRequest(); }, ByStatus);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(std::string(s.message()), HasSubstr("status 403"));
  EXPECT_EQ(client.sent().size(), 2u);
}

TEST(SendWithRetriesTest, GivesUpAfterThePolicysAttemptsWithTheLastFailure) {
  ScriptedClient client({Response(503), absl::UnavailableError("Connection refused"),
                         absl::DeadlineExceededError("Timeout was reached"), Response(200)});
  const absl::Status s = SendWithRetries(
      client, FastPolicy(3), {"OCI", "DELETE", "blk/2"}, [] { return HttpRequest(); }, ByStatus);
  // A transport failure is named after the request, and the attempts are counted.
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(s.message(), "OCI DELETE blk/2: Timeout was reached (after 3 attempts)");
  EXPECT_EQ(client.sent().size(), 3u);
}

TEST(SendWithRetriesTest, HandlerStatusesOtherThanHttpOnesAreRetriedToo) {
  // Azure retries a body whose MD5 does not match with an Unavailable from its handler.
  ScriptedClient client({Response(200, "bad"), Response(200, "good")});
  const absl::Status s = SendWithRetries(
      client, FastPolicy(3), {"Azure", "GET", "k"}, [] { return HttpRequest(); },
      [](HttpResponse& r) {
        return r.body == "good" ? absl::OkStatus() : absl::UnavailableError("MD5 mismatch");
      });
  ASSERT_OK(s);
  EXPECT_EQ(client.sent().size(), 2u);
}

TEST(SendWithRetriesTest, RedactsTheSecretFromReturnedMessages) {
  const std::string sas = "sv=2021&sig=SECRETSIG";
  ScriptedClient client(
      {absl::UnavailableError(absl::StrCat("cannot reach http://h/c?", sas)),
       absl::UnavailableError(absl::StrCat("cannot reach http://h/c?", sas))});
  const absl::Status s = SendWithRetries(
      client, FastPolicy(2), {"Azure", "GET", "k"}, [] { return HttpRequest(); }, ByStatus, sas);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(std::string(s.message()), HasSubstr("<redacted>"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("SECRETSIG")));
}


// A client that takes `per_request` to fail each request (a store that answers slowly with
// 503s), and records the timeout each request was given.
class SlowFailingClient : public HttpClient {
 public:
  explicit SlowFailingClient(absl::Duration per_request) : per_request_(per_request) {}
  absl::StatusOr<HttpResponse> Do(const HttpRequest& request) override {
    timeouts_.push_back(request.timeout);
    absl::SleepFor(std::min(per_request_, request.timeout > absl::ZeroDuration()
                                              ? request.timeout
                                              : absl::InfiniteDuration()));
    return Response(503);
  }
  const std::vector<absl::Duration>& timeouts() const { return timeouts_; }

 private:
  const absl::Duration per_request_;
  std::vector<absl::Duration> timeouts_;
};

TEST(CallDeadlineTest, ScopesNestAndNeverExtendTheOuterDeadline) {
  EXPECT_EQ(CallDeadline(), absl::InfiniteFuture());
  const absl::Time t = absl::Now() + absl::Seconds(10);
  {
    ScopedCallDeadline outer(t);
    EXPECT_EQ(CallDeadline(), t);
    {
      ScopedCallDeadline later(t + absl::Seconds(5));
      EXPECT_EQ(CallDeadline(), t);  // an inner scope cannot give more time
      ScopedCallDeadline sooner(t - absl::Seconds(5));
      EXPECT_EQ(CallDeadline(), t - absl::Seconds(5));
    }
    EXPECT_EQ(CallDeadline(), t);
  }
  EXPECT_EQ(CallDeadline(), absl::InfiniteFuture());
}

TEST(CallDeadlineTest, BoundsTheRetriesAndEachAttemptsTimeout) {
  // Without a call deadline this policy would retry for 30 s.
  RetryPolicy p = FastPolicy(0);
  p.max_backoff = absl::Milliseconds(20);
  SlowFailingClient client(absl::Milliseconds(40));
  const absl::Time start = absl::Now();
  absl::Status s;
  {
    ScopedCallDeadline bound(start + absl::Milliseconds(300));
    s = SendWithRetries(client, p, {"S3", "GET", "k"}, [] { return HttpRequest(); }, ByStatus);
  }
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(took, absl::Seconds(2)) << "the call deadline was not honoured";
  ASSERT_GE(client.timeouts().size(), 2u);
  for (absl::Duration t : client.timeouts()) {
    EXPECT_GT(t, absl::ZeroDuration());
    EXPECT_LE(t, absl::Milliseconds(300));
  }
  // Each attempt got what was left, less and less.
  EXPECT_LT(client.timeouts().back(), client.timeouts().front());
}

TEST(CallDeadlineTest, APassedDeadlineSendsNothing) {
  SlowFailingClient client(absl::Milliseconds(1));
  ScopedCallDeadline bound(absl::Now() - absl::Milliseconds(1));
  const absl::Status s =
      SendWithRetries(client, FastPolicy(3), {"S3", "PUT", "blk/1"}, [] { return HttpRequest(); },
                      ByStatus);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(std::string(s.message()), HasSubstr("S3 PUT blk/1"));
  EXPECT_TRUE(client.timeouts().empty());
}

TEST(CallDeadlineTest, WithoutOneTheRequestTimeoutIsLeftAsBuilt) {
  ScriptedClient client({Response(200)});
  ASSERT_OK(SendWithRetries(client, FastPolicy(1), {"S3", "GET", "k"},
                            [] {
                              HttpRequest r;
                              r.timeout = absl::Seconds(7);
                              return r;
                            },
                            ByStatus));
  ASSERT_EQ(client.sent().size(), 1u);
  EXPECT_EQ(client.sent()[0].timeout, absl::Seconds(7));
}

}  // namespace
}  // namespace nighfs::blockstore
