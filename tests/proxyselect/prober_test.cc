#include "proxyselect/prober.h"

#include <map>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace nighfs::proxyselect {
namespace {

using absl::Milliseconds;
using absl::Seconds;

// Answers each address with its programmed RTT; an address marked held blocks its pings until
// released (a black-holed proxy).
class GatedPinger : public Pinger {
 public:
  absl::StatusOr<absl::Duration> Ping(const std::string& address) override {
    absl::MutexLock lock(&mu_);
    ++calls_[address];
    ++running_[address];
    max_running_ = std::max(max_running_, running_[address]);
    auto released = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return held_.count(address) == 0; };
    mu_.Await(absl::Condition(&released));
    --running_[address];
    return absl::Milliseconds(rtt_ms_[address]);
  }
  void Set(const std::string& address, int ms) {
    absl::MutexLock lock(&mu_);
    rtt_ms_[address] = ms;
  }
  void Hold(const std::string& address) {
    absl::MutexLock lock(&mu_);
    held_[address] = true;
  }
  void Release(const std::string& address) {
    absl::MutexLock lock(&mu_);
    held_.erase(address);
  }
  int calls(const std::string& address) {
    absl::MutexLock lock(&mu_);
    return calls_[address];
  }
  int max_running() {
    absl::MutexLock lock(&mu_);
    return max_running_;
  }
  // Waits (a real 5 s at most) until `address` has a ping blocked in Ping.
  bool WaitRunning(const std::string& address) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return running_[address] > 0; };
    return mu_.AwaitWithDeadline(absl::Condition(&cond), absl::Now() + Seconds(5));
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int> rtt_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> running_ ABSL_GUARDED_BY(mu_);
  int max_running_ ABSL_GUARDED_BY(mu_) = 0;
};

struct Result {
  std::string address;
  absl::StatusOr<absl::Duration> rtt;
  absl::Time when;
};

class ProberTest : public ::testing::Test {
 protected:
  ProberTest() : pinger_(std::make_shared<GatedPinger>()) {
    pinger_->Set("a:1", 1);
    pinger_->Set("b:1", 10);
    options_.interval = Seconds(1);
    options_.timeout = Milliseconds(500);
    options_.clock = [this] {
      absl::MutexLock lock(&mu_);
      return now_;
    };
  }
  std::unique_ptr<Prober> Make() {
    return std::make_unique<Prober>(
        pinger_, options_,
        [this](const std::string& a, const absl::StatusOr<absl::Duration>& rtt, absl::Time when) {
          absl::MutexLock lock(&mu_);
          results_.push_back(Result{a, rtt, when});
        });
  }
  // Waits (a real 5 s at most) for `n` results in all.
  bool WaitResults(size_t n) {
    absl::MutexLock lock(&mu_);
    auto cond = [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return results_.size() >= n; };
    return mu_.AwaitWithDeadline(absl::Condition(&cond), absl::Now() + Seconds(5));
  }
  // Waits (a real 5 s at most) until no ping is running: the worker threads report on their own.
  static bool WaitIdle(const Prober& prober) {
    const absl::Time deadline = absl::Now() + Seconds(5);
    while (prober.InFlightForTest() != 0 && absl::Now() < deadline) absl::SleepFor(Milliseconds(1));
    return prober.InFlightForTest() == 0;
  }
  std::vector<Result> Results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  absl::Time Now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  std::shared_ptr<GatedPinger> pinger_;
  ProberOptions options_;
  absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();
  std::vector<Result> results_ ABSL_GUARDED_BY(mu_);
};

TEST_F(ProberTest, ProbesEveryMemberOncePerInterval) {
  auto prober = Make();
  prober->SetMembers({"a:1", "b:1"});
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(2));
  std::map<std::string, absl::Duration> got;
  for (const Result& r : Results()) got[r.address] = *r.rtt;
  EXPECT_EQ(got["a:1"], Milliseconds(1));
  EXPECT_EQ(got["b:1"], Milliseconds(10));

  Advance(Milliseconds(900));
  prober->Tick(Now());  // not due yet
  Advance(Milliseconds(100));
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(4));
  EXPECT_EQ(pinger_->calls("a:1"), 2);
  EXPECT_EQ(pinger_->calls("b:1"), 2);
}

TEST_F(ProberTest, ABlackHoledMemberTimesOutWithoutASecondPingInFlight) {
  auto prober = Make();
  pinger_->Hold("b:1");
  prober->SetMembers({"a:1", "b:1"});
  prober->Tick(Now());
  ASSERT_TRUE(pinger_->WaitRunning("b:1"));
  ASSERT_TRUE(WaitResults(1));  // a's answer
  Advance(Milliseconds(499));
  prober->Tick(Now());
  EXPECT_EQ(Results().size(), 1u);
  Advance(Milliseconds(1));
  prober->Tick(Now());
  ASSERT_EQ(Results().size(), 2u);  // reported by Tick itself
  const Result late = Results()[1];
  EXPECT_EQ(late.address, "b:1");
  EXPECT_EQ(late.rtt.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(late.when, absl::UnixEpoch() + Milliseconds(500));

  // Intervals pass; a gets probed, b's ping is still stuck: no second one, no second timeout.
  for (int i = 0; i < 5; ++i) {
    Advance(Seconds(1));
    prober->Tick(Now());
    ASSERT_TRUE(WaitResults(3 + i));
  }
  EXPECT_EQ(pinger_->calls("b:1"), 1);
  EXPECT_EQ(pinger_->max_running(), 1);
  EXPECT_EQ(prober->InFlightForTest(), 1);

  // The stuck ping returns: its answer is dropped (already counted as a timeout); the next
  // tick probes b again.
  pinger_->Release("b:1");
  ASSERT_TRUE(WaitIdle(*prober));
  const size_t before = Results().size();
  for (const Result& r : Results()) {
    if (r.address == "b:1") {
      EXPECT_FALSE(r.rtt.ok());
    }
  }
  Advance(Seconds(1));
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(before + 2));
  EXPECT_EQ(pinger_->calls("b:1"), 2);
  int b_ok = 0;
  for (const Result& r : Results()) b_ok += r.address == "b:1" && r.rtt.ok();
  EXPECT_EQ(b_ok, 1);
}

TEST_F(ProberTest, RemovedMembersAreNoLongerProbedAndNewOnesAre) {
  auto prober = Make();
  prober->SetMembers({"a:1", "b:1"});
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(2));
  pinger_->Set("c:1", 3);
  prober->SetMembers({"b:1", "c:1"});
  Advance(Seconds(1));
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(4));
  EXPECT_EQ(pinger_->calls("a:1"), 1);
  EXPECT_EQ(pinger_->calls("b:1"), 2);
  EXPECT_EQ(pinger_->calls("c:1"), 1);
}

TEST_F(ProberTest, AMemberBackBeforeItsPingReturnedIsNotPingedTwice) {
  auto prober = Make();
  pinger_->Hold("a:1");
  prober->SetMembers({"a:1"});
  prober->Tick(Now());
  ASSERT_TRUE(pinger_->WaitRunning("a:1"));
  prober->SetMembers({});
  prober->SetMembers({"a:1"});
  Advance(Seconds(1));
  prober->Tick(Now());  // times out the running ping; starts none
  EXPECT_EQ(pinger_->calls("a:1"), 1);
  EXPECT_EQ(pinger_->max_running(), 1);
  pinger_->Release("a:1");
  ASSERT_TRUE(WaitIdle(*prober));
  Advance(Seconds(1));
  prober->Tick(Now());
  ASSERT_TRUE(WaitResults(2));  // the timeout, then the next probe's answer
  EXPECT_EQ(pinger_->calls("a:1"), 2);
  EXPECT_TRUE(Results()[1].rtt.ok());
}

TEST_F(ProberTest, DestructionWithAPingInFlightWaitsForIt) {
  auto prober = Make();
  pinger_->Hold("a:1");
  prober->SetMembers({"a:1"});
  prober->Tick(Now());
  ASSERT_TRUE(pinger_->WaitRunning("a:1"));
  std::thread release([&] {
    absl::SleepFor(Milliseconds(20));
    pinger_->Release("a:1");
  });
  prober.reset();  // returns once the ping did; its answer is not reported
  release.join();
  EXPECT_TRUE(Results().empty());
}

TEST_F(ProberTest, TheSchedulerThreadProbesOnItsOwn) {
  options_.interval = Milliseconds(10);
  options_.timeout = Milliseconds(100);
  options_.clock = [] { return absl::Now(); };
  auto prober = Make();
  prober->SetMembers({"a:1", "b:1"});
  prober->Start();
  ASSERT_TRUE(WaitResults(6));
  prober.reset();
  EXPECT_GE(pinger_->calls("a:1"), 2);
  EXPECT_GE(pinger_->calls("b:1"), 2);
}

}  // namespace
}  // namespace nighfs::proxyselect
