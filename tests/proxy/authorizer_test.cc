#include "proxy/authorizer.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/proxy/fake_meta.h"
#include "tests/testing/test_status.h"

namespace nighfs::proxy {
namespace {

using ::nighfs::proxy::testing::FakeMeta;

class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() {
    meta_.AddVolume(1, "vol", "mem://a");
    meta_.AddVolume(2, "other", "mem://b");
    meta_.AddToken("writer", "vol", pb::ACCESS_WRITE);
    meta_.AddToken("reader", "vol", pb::ACCESS_READ);
    AuthorizerOptions o;
    o.meta = &meta_;
    o.proxy_address = "proxy.lan:7430";
    o.ttl = absl::Seconds(10);
    o.now = [this] { return now_; };
    auth_ = std::make_unique<Authorizer>(std::move(o));
  }
  FakeMeta meta_;
  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  std::unique_ptr<Authorizer> auth_;
};

TEST_F(AuthorizerTest, CachesAGrant) {
  absl::StatusOr<Grant> g = auth_->Authorize("writer", "vol");
  ASSERT_OK(g);
  EXPECT_TRUE(g->may_write());
  EXPECT_EQ(g->volume.id(), 1u);
  EXPECT_EQ(meta_.last_proxy_address(), "proxy.lan:7430");
  ASSERT_OK(auth_->Authorize("writer", "vol"));
  EXPECT_EQ(meta_.authorize_calls(), 1);
  absl::StatusOr<Grant> r = auth_->Authorize("reader", "vol");
  ASSERT_OK(r);
  EXPECT_FALSE(r->may_write());
  EXPECT_EQ(meta_.authorize_calls(), 2);
}

TEST_F(AuthorizerTest, CachesRefusalsToo) {
  for (int i = 0; i < 5; ++i) {
    EXPECT_THAT(auth_->Authorize("bogus", "vol"), StatusIs(absl::StatusCode::kUnauthenticated));
    EXPECT_THAT(auth_->Authorize("writer", "other"),
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  EXPECT_EQ(meta_.authorize_calls(), 2);
}

TEST_F(AuthorizerTest, AnswersExpire) {
  ASSERT_OK(auth_->Authorize("writer", "vol"));
  meta_.RevokeToken("writer");
  now_ += absl::Seconds(9);
  ASSERT_OK(auth_->Authorize("writer", "vol"));  // still cached
  now_ += absl::Seconds(2);
  EXPECT_THAT(auth_->Authorize("writer", "vol"), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(meta_.authorize_calls(), 2);
}

TEST_F(AuthorizerTest, NeverTrustedPastTheTokensExpiry) {
  meta_.AddToken("short", "vol", pb::ACCESS_WRITE, absl::ToUnixNanos(now_ + absl::Seconds(2)));
  ASSERT_OK(auth_->Authorize("short", "vol"));
  now_ += absl::Seconds(3);
  meta_.RevokeToken("short");  // what the server would now say of an expired token
  EXPECT_THAT(auth_->Authorize("short", "vol"), StatusIs(absl::StatusCode::kUnauthenticated));
}

TEST_F(AuthorizerTest, ServerFailuresAreNotCached) {
  meta_.SetFailure(absl::UnavailableError("meta down"));
  EXPECT_THAT(auth_->Authorize("writer", "vol"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(auth_->Authorize("writer", "vol"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(meta_.authorize_calls(), 2);
  meta_.SetFailure(absl::OkStatus());
  ASSERT_OK(auth_->Authorize("writer", "vol"));
}

TEST_F(AuthorizerTest, NoTokenNeverReachesTheServer) {
  EXPECT_THAT(auth_->Authorize("", "vol"), StatusIs(absl::StatusCode::kUnauthenticated));
  EXPECT_EQ(meta_.authorize_calls(), 0);
}

TEST_F(AuthorizerTest, ConcurrentMissesAskOnce) {
  // The fake answers slowly enough for all the threads to miss at once.
  meta_.SetDelay(absl::Milliseconds(200));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&] {
      if (auth_->Authorize("writer", "vol").ok()) ok.fetch_add(1);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 16);
  EXPECT_EQ(meta_.authorize_calls(), 1);
}

TEST_F(AuthorizerTest, ProxyTokensGrantNoBlockAccess) {
  meta_.AddToken("proxy", "", pb::ACCESS_PROXY);
  EXPECT_THAT(auth_->Authorize("proxy", "vol"), StatusIs(absl::StatusCode::kPermissionDenied));
}

}  // namespace
}  // namespace nighfs::proxy
