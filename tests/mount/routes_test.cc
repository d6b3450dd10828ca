// The routes `nighfs status` shows: health from real requests and, for the proxy of -o proxy=,
// from pings made by ProxyPinger against a live HTTP server.
#include "mount/routes.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "blockstore/fault_store.h"
#include "common/http_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

using ::testing::HasSubstr;
using Op = blockstore::FaultInjectingStore::Op;

class RoutesTest : public ::testing::Test {
 protected:
  RoutesTest() {
    auto faulty = std::make_unique<blockstore::FaultInjectingStore>(blockstore::NewMemoryStore());
    faults_ = faulty.get();
    store_ = std::make_unique<blockstore::CountingStore>(std::move(faulty));
  }
  blockstore::FaultInjectingStore* faults_;
  std::unique_ptr<blockstore::CountingStore> store_;
};

TEST_F(RoutesTest, DirectRouteHealthComesFromRequests) {
  ASSERT_OK(store_->Put(blockstore::BlockKey(1), "x"));
  status::v1::Route r;
  FillDirectRoute(*store_, &r);
  EXPECT_EQ(r.kind(), "store");
  EXPECT_TRUE(r.healthy());
  EXPECT_EQ(r.requests(), 1u);
  faults_->FailNext(Op::kGet, absl::UnavailableError("refused"));
  EXPECT_FALSE(store_->Get(blockstore::BlockKey(1)).ok());
  FillDirectRoute(*store_, &r);
  EXPECT_FALSE(r.healthy());
  EXPECT_THAT(r.last_error(), HasSubstr("refused"));
}

TEST_F(RoutesTest, ProxyRouteNotPingedYetShowsNoRtt) {
  status::v1::Route r;
  FillProxyRoute(*store_, "https://p1:7430", PingResult{}, &r);
  EXPECT_EQ(r.name(), "proxy");
  EXPECT_EQ(r.kind(), "proxy");
  EXPECT_EQ(r.target(), "https://p1:7430");
  EXPECT_TRUE(r.selected());
  EXPECT_TRUE(r.healthy());  // nothing has failed
  EXPECT_EQ(r.rtt_us(), 0);
  EXPECT_THAT(r.reason(), HasSubstr("not pinged yet"));
}

TEST_F(RoutesTest, ProxyRouteHealthyNeedsPingsAndRequests) {
  PingResult ok{true, absl::OkStatus(), absl::Microseconds(1500)};
  status::v1::Route r;
  FillProxyRoute(*store_, "https://p1:7430", ok, &r);
  EXPECT_TRUE(r.healthy());
  EXPECT_EQ(r.rtt_us(), 1500);

  PingResult failed{true, absl::DeadlineExceededError("GET https://p1:7430/ping: timed out"),
                    absl::Microseconds(1500)};
  r.Clear();
  FillProxyRoute(*store_, "https://p1:7430", failed, &r);
  EXPECT_FALSE(r.healthy());
  EXPECT_EQ(r.rtt_us(), 0);
  EXPECT_THAT(r.reason(), HasSubstr("timed out"));

  // Pings answer, but the block requests fail: not healthy either.
  faults_->FailNext(Op::kPut, absl::UnavailableError("503 SlowDown"));
  EXPECT_FALSE(store_->Put(blockstore::BlockKey(2), "x").ok());
  r.Clear();
  FillProxyRoute(*store_, "https://p1:7430", ok, &r);
  EXPECT_FALSE(r.healthy());
  EXPECT_EQ(r.rtt_us(), 1500);
  EXPECT_EQ(r.errors(), 1u);
}

TEST(ProxyPingerTest, MeasuresThenSeesTheProxyGo) {
  auto server = HttpServer::Start({}, [](const ServerRequest& req) {
    ServerResponse r;
    r.status = req.target == "/ping" ? 200 : 404;
    r.body = "pong\n";
    return r;
  });
  ASSERT_OK(server);
  blockstore::ProxyStoreOptions o;
  o.address = absl::StrCat("http://127.0.0.1:", (*server)->port());
  o.volume = "v";
  o.ping_timeout = absl::Milliseconds(500);
  auto proxy = blockstore::ProxyStore::Create(o);
  ASSERT_OK(proxy);
  ProxyPinger pinger(proxy->get(), absl::Milliseconds(50));
  ASSERT_TRUE(testing::WaitFor([&] { return pinger.Last().answered; }, absl::Seconds(5)));
  PingResult first = pinger.Last();
  EXPECT_OK(first.status);
  EXPECT_GT(first.rtt, absl::ZeroDuration());
  (*server)->Stop();
  EXPECT_TRUE(testing::WaitFor([&] { return !pinger.Last().status.ok(); }, absl::Seconds(5)));
}

}  // namespace
}  // namespace nighfs::fs
