// The FaultProxy test helper: forwarding fidelity and each fault.
#include "tests/testing/fault_proxy.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class FaultProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<HttpServer>> s =
        HttpServer::Start(HttpServerOptions{}, [this](const ServerRequest& r) {
          ++upstream_calls_;
          {
            absl::MutexLock lock(&mu_);
            last_ = r;
          }
          ServerResponse resp;
          resp.status = r.target == "/created" ? 201 : 200;
          resp.content_type = "application/x-test";
          resp.headers.push_back({"ETag", "\"etag-1\""});
          resp.headers.push_back({"x-amz-meta-crc", "1234"});
          resp.body = absl::StrCat(r.method, " ", r.target, " ", r.body);
          return resp;
        });
    ASSERT_TRUE(s.ok()) << s.status();
    upstream_ = std::move(*s);
    absl::StatusOr<std::unique_ptr<FaultProxy>> p =
        FaultProxy::Start(absl::StrCat("http://127.0.0.1:", upstream_->port(), "/"));
    ASSERT_TRUE(p.ok()) << p.status();
    proxy_ = std::move(*p);
  }

  absl::StatusOr<HttpResponse> Do(std::string method, std::string path, std::string_view body = {},
                                  HttpHeaders headers = {}) {
    HttpRequest req;
    req.method = std::move(method);
    req.url = proxy_->url() + path;
    req.body = body;
    req.headers = std::move(headers);
    return http_->Do(req);
  }

  ServerRequest Last() {
    absl::MutexLock lock(&mu_);
    return last_;
  }

  std::atomic<int> upstream_calls_{0};
  absl::Mutex mu_;
  ServerRequest last_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<HttpServer> upstream_;
  std::unique_ptr<FaultProxy> proxy_;
  std::unique_ptr<HttpClient> http_ = HttpClient::Create();
};

TEST_F(FaultProxyTest, UrlIsLoopback) {
  EXPECT_EQ(proxy_->url(), absl::StrCat("http://127.0.0.1:", proxy_->port()));
  EXPECT_NE(proxy_->port(), upstream_->port());
}

TEST_F(FaultProxyTest, ForwardsRequestAndRelaysResponse) {
  absl::StatusOr<HttpResponse> r =
      Do("PUT", "/bucket/key?partNumber=2&uploadId=u1", "payload",
         {{"Authorization", "AWS4-HMAC-SHA256 Credential=x"}, {"x-amz-date", "20240101T000000Z"},
          {"Content-Type", "application/octet-stream"}});
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT /bucket/key?partNumber=2&uploadId=u1 payload");
  EXPECT_EQ(r->Header("ETag"), "\"etag-1\"");
  EXPECT_EQ(r->Header("x-amz-meta-crc"), "1234");
  EXPECT_EQ(r->Header("Content-Type"), "application/x-test");

  ServerRequest seen = Last();
  EXPECT_EQ(seen.method, "PUT");
  EXPECT_EQ(seen.target, "/bucket/key?partNumber=2&uploadId=u1");
  EXPECT_EQ(seen.body, "payload");
  EXPECT_EQ(seen.Header("Authorization"), "AWS4-HMAC-SHA256 Credential=x");
  EXPECT_EQ(seen.Header("x-amz-date"), "20240101T000000Z");
  EXPECT_EQ(seen.Header("Content-Type"), "application/octet-stream");
  EXPECT_EQ(seen.Header("Content-Length"), "7");
  // Host is what the client signed for: the proxy's address, not the upstream's.
  EXPECT_EQ(seen.Header("Host"), absl::StrCat("127.0.0.1:", proxy_->port()));
  EXPECT_EQ(proxy_->requests_seen(), 1);

  r = Do("POST", "/created", "");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 201);
}

TEST_F(FaultProxyTest, HeadKeepsTheUpstreamLength) {
  absl::StatusOr<HttpResponse> r = Do("HEAD", "/bucket/key");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("Content-Length"), std::to_string(std::string("HEAD /bucket/key ").size()));
  EXPECT_EQ(r->body, "");
}

TEST_F(FaultProxyTest, ServiceUnavailableIsS3Shaped) {
  proxy_->InjectNext(FaultProxy::Fault::kServiceUnavailable);
  absl::StatusOr<HttpResponse> r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_THAT(r->body, HasSubstr("<Code>SlowDown</Code>"));
  EXPECT_THAT(r->Header("Content-Type"), HasSubstr("xml"));
  EXPECT_EQ(upstream_calls_.load(), 0);
  // Only the next request was affected.
  r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(upstream_calls_.load(), 1);
  EXPECT_EQ(proxy_->requests_seen(), 2);
}

TEST_F(FaultProxyTest, ForbiddenIsAccessDenied) {
  proxy_->InjectNext(FaultProxy::Fault::kForbidden);
  absl::StatusOr<HttpResponse> r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_THAT(r->body, HasSubstr("<Error><Code>AccessDenied</Code><Message>"));
  EXPECT_THAT(r->body, HasSubstr("<RequestId>"));
}

TEST_F(FaultProxyTest, TooManyRequestsCountsDown) {
  proxy_->InjectNext(FaultProxy::Fault::kTooManyRequests, 3);
  EXPECT_EQ(proxy_->faults_pending(), 3);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> r = Do("GET", "/k");
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 429);
  }
  absl::StatusOr<HttpResponse> r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(proxy_->requests_seen(), 4);
  EXPECT_EQ(proxy_->faults_pending(), 0);
}

TEST_F(FaultProxyTest, DropConnection) {
  proxy_->InjectNext(FaultProxy::Fault::kDropConnection);
  EXPECT_THAT(Do("PUT", "/k", "data"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(upstream_calls_.load(), 0);
  absl::StatusOr<HttpResponse> r = Do("PUT", "/k", "data");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(FaultProxyTest, DelayStillForwards) {
  proxy_->InjectNext(FaultProxy::Fault::kDelay);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> r = Do("GET", "/slow");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /slow ");
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1900));  // a lower bound: the sleep happened
  // A client with a shorter timeout sees a deadline.
  proxy_->InjectNext(FaultProxy::Fault::kDelay);
  HttpRequest req;
  req.url = proxy_->url() + "/slow";
  req.timeout = absl::Milliseconds(300);
  EXPECT_THAT(http_->Do(req), StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(FaultProxyTest, FaultsApplyInOrderAndCanBeCleared) {
  proxy_->InjectNext(FaultProxy::Fault::kForbidden);
  proxy_->InjectNext(FaultProxy::Fault::kServiceUnavailable);
  proxy_->InjectNext(FaultProxy::Fault::kTooManyRequests);
  absl::StatusOr<HttpResponse> r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 403);
  r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 503);
  proxy_->ClearFaults();
  r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(proxy_->requests_seen(), 3);
  proxy_->ResetCounters();
  EXPECT_EQ(proxy_->requests_seen(), 0);
}

TEST_F(FaultProxyTest, UnreachableUpstreamIs502) {
  upstream_->Stop();
  absl::StatusOr<HttpResponse> r = Do("GET", "/k");
  ASSERT_OK(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_THAT(r->body, StartsWith("fault proxy: upstream failed"));
}

}  // namespace
}  // namespace nighfs::testing
