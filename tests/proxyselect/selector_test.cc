#include "proxyselect/selector.h"

#include <random>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxyselect/estimator.h"

namespace nighfs::proxyselect {
namespace {

using absl::Milliseconds;
using absl::Seconds;
using ::testing::HasSubstr;

GroupView View(std::string name, absl::Duration rtt) {
  return GroupView{std::move(name), true, rtt, ""};
}
GroupView Dead(std::string name) { return GroupView{std::move(name), false, std::nullopt, "all ejected"}; }

// Groups of members whose probes see a base RTT with ±jitter (uniform), through the real
// estimators: what the router feeds the selector once per probe interval.
class Simulation {
 public:
  Simulation(std::vector<double> base_ms, int members, double jitter, uint32_t seed)
      : base_ms_(std::move(base_ms)), jitter_(jitter), rng_(seed) {
    estimators_.resize(base_ms_.size());
    for (auto& g : estimators_) g.resize(members);
  }
  // One probe round at `now`; returns the views.
  std::vector<GroupView> Round(absl::Time now) {
    std::uniform_real_distribution<double> factor(1 - jitter_, 1 + jitter_);
    std::vector<GroupView> views;
    for (size_t g = 0; g < base_ms_.size(); ++g) {
      std::vector<absl::Duration> estimates;
      for (RttEstimator& e : estimators_[g]) {
        e.AddSample(now, absl::Microseconds(1000 * base_ms_[g] * factor(rng_)));
        estimates.push_back(*e.estimate());
      }
      views.push_back(GroupView{"g" + std::to_string(g), true, GroupRtt(estimates), ""});
    }
    return views;
  }
  std::vector<double> base_ms_;

 private:
  double jitter_;
  std::mt19937 rng_;
  std::vector<std::vector<RttEstimator>> estimators_;
};

TEST(SelectorTest, JitterOnOneTenThirtyMsNeverSwitches) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    Simulation sim({1, 10, 30}, 3, 0.3, seed);
    GroupSelector s;
    absl::Time now = absl::UnixEpoch();
    for (int round = 0; round < 5000; ++round) {
      now += Seconds(1);
      s.Update(now, sim.Round(now));
      ASSERT_EQ(s.current().group, "g0") << "round " << round << ": " << s.current().reason;
    }
    EXPECT_TRUE(s.switches().empty());  // the first choice (g0) is not a switch
  }
}

TEST(SelectorTest, JitterOnTwoEqualGroupsNeverSwitches) {
  for (double ms : {1.0, 10.0, 30.0}) {
    Simulation sim({ms, ms}, 2, 0.3, 7);
    GroupSelector s;
    absl::Time now = absl::UnixEpoch();
    for (int round = 0; round < 5000; ++round) {
      now += Seconds(1);
      s.Update(now, sim.Round(now));
    }
    EXPECT_TRUE(s.switches().empty()) << ms << " ms: " << s.switches().front().reason;
  }
}

TEST(SelectorTest, ARealRiseSwitchesWithinBoundedRounds) {
  Simulation sim({1, 10, 30}, 3, 0.3, 11);
  SelectorOptions options;  // hold 5 s
  GroupSelector s(options);
  absl::Time now = absl::UnixEpoch();
  for (int round = 0; round < 100; ++round) {
    now += Seconds(1);
    s.Update(now, sim.Round(now));
  }
  ASSERT_EQ(s.current().group, "g0");
  sim.base_ms_[0] = 40;  // g0's path got slow: now the 10 ms group is the better one
  int rounds = 0;
  while (s.current().group == "g0" && rounds < 100) {
    now += Seconds(1);
    s.Update(now, sim.Round(now));
    ++rounds;
  }
  EXPECT_EQ(s.current().group, "g1");
  // The estimator needs 3 of its 5 samples, then the hold (5 rounds of 1 s) runs.
  EXPECT_GE(rounds, 5);
  EXPECT_LE(rounds, 3 + 5 + 1);
  EXPECT_THAT(s.switches().back().reason, HasSubstr("better for"));
  EXPECT_EQ(s.switches().back().from, "g0");
  EXPECT_EQ(s.switches().back().to, "g1");
}

TEST(SelectorTest, GroupDeathSwitchesAtOnceAndRecoveryReturnsAfterTheHold) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  for (int i = 0; i < 10; ++i) {
    now += Seconds(1);
    s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(10))});
  }
  ASSERT_EQ(s.current().group, "near");

  now += Seconds(1);
  Selection d = s.Update(now, {Dead("near"), View("far", Milliseconds(10))});
  EXPECT_TRUE(d.switched);
  EXPECT_EQ(d.group, "far");
  EXPECT_THAT(d.reason, HasSubstr("near unhealthy: all ejected"));

  // Back: better by both margins, but only switched to after 5 s of it.
  const absl::Time back = now + Seconds(1);
  for (now = back; now < back + Seconds(5); now += Seconds(1)) {
    s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(10))});
    EXPECT_EQ(s.current().group, "far") << absl::FormatDuration(now - back);
  }
  EXPECT_THAT(s.current().reason, HasSubstr("far kept"));
  s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(10))});
  EXPECT_EQ(s.current().group, "near");
  ASSERT_EQ(s.switches().size(), 2u);  // near -> far, far -> near
  EXPECT_EQ(s.switches()[1].time, back + Seconds(5));
}

TEST(SelectorTest, ABreakInTheAdvantageRestartsTheHold) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  s.Update(now, {View("a", Milliseconds(10)), View("b", Milliseconds(20))});
  now += Seconds(10);
  s.Update(now, {View("a", Milliseconds(10)), View("b", Milliseconds(20))});
  ASSERT_EQ(s.current().group, "a");
  for (int i = 0; i < 4; ++i) {
    now += Seconds(1);
    s.Update(now, {View("a", Milliseconds(20)), View("b", Milliseconds(10))});
  }
  now += Seconds(1);
  s.Update(now, {View("a", Milliseconds(12)), View("b", Milliseconds(10))});  // not better enough
  for (int i = 0; i < 5; ++i) {  // better since the first of these: 0..4 s of the 5 s hold
    now += Seconds(1);
    s.Update(now, {View("a", Milliseconds(20)), View("b", Milliseconds(10))});
    EXPECT_EQ(s.current().group, "a");
  }
  now += Seconds(1);
  s.Update(now, {View("a", Milliseconds(20)), View("b", Milliseconds(10))});
  EXPECT_EQ(s.current().group, "b");
}

TEST(SelectorTest, BothMarginsMustHold) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  s.Update(now, {View("a", Milliseconds(2.5)), View("b", Milliseconds(5))});
  now += Seconds(10);
  ASSERT_EQ(s.Update(now, {View("a", Milliseconds(2.5))}).group, "a");
  // 1 ms vs 2.5 ms: 60% better, but only 1.5 ms: under the absolute margin.
  for (int i = 0; i < 60; ++i) {
    now += Seconds(1);
    s.Update(now, {View("a", Milliseconds(2.5)), View("b", Milliseconds(1))});
  }
  EXPECT_EQ(s.current().group, "a");
  // 100 ms vs 120 ms: 20 ms faster, but only 17%: under the relative margin.
  for (int i = 0; i < 60; ++i) {
    now += Seconds(1);
    s.Update(now, {View("a", Milliseconds(120)), View("b", Milliseconds(100))});
  }
  EXPECT_EQ(s.current().group, "a");
  EXPECT_THAT(s.current().reason, HasSubstr("not better by the switch threshold"));
}

TEST(SelectorTest, StartUpTakesTheNearestGroupWithoutTheHold) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  // The far group answers first, the near one 200 ms later.
  s.Update(now, {GroupView{"near", true, std::nullopt, ""}, View("far", Milliseconds(30))});
  EXPECT_EQ(s.current().group, "far");
  now += Milliseconds(200);
  s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(30))});
  EXPECT_EQ(s.current().group, "near");
  EXPECT_THAT(s.current().reason, HasSubstr("settling"));
}

TEST(SelectorTest, NoHealthyGroupMeansDirectWithTheReasons) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  s.Update(now, {View("a", Milliseconds(1))});
  Selection d = s.Update(now + Seconds(1), {Dead("a"), Dead("b")});
  EXPECT_TRUE(d.switched);
  EXPECT_EQ(d.group, "");
  EXPECT_THAT(d.reason, HasSubstr("no healthy proxy group; a: all ejected; b: all ejected"));
  EXPECT_EQ(s.switches().back().to, "");
  // A group coming back is taken at once: anything beats no group.
  EXPECT_EQ(s.Update(now + Seconds(2), {Dead("a"), View("b", Milliseconds(50))}).group, "b");
}

TEST(SelectorTest, BackFromDirectSettlesOnTheNearestGroupWithoutTheHold) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(30))});
  now += Seconds(60);
  ASSERT_EQ(s.Update(now, {Dead("near"), Dead("far")}).group, "");
  // Both come back in one probe round; far's answer happens to be processed first.
  now += Seconds(5);
  EXPECT_EQ(s.Update(now, {Dead("near"), View("far", Milliseconds(30))}).group, "far");
  now += Milliseconds(3);
  EXPECT_EQ(s.Update(now, {View("near", Milliseconds(1)), View("far", Milliseconds(30))}).group,
            "near");
  // Once settled, the hold applies again.
  now += Seconds(10);
  s.Update(now, {View("near", Milliseconds(30)), View("far", Milliseconds(1))});
  EXPECT_EQ(s.current().group, "near");
}

TEST(SelectorTest, AGroupLeavingTheConfigurationIsLeftAtOnce) {
  GroupSelector s;
  absl::Time now = absl::UnixEpoch();
  s.Update(now, {View("a", Milliseconds(1)), View("b", Milliseconds(9))});
  Selection d = s.Update(now + Seconds(30), {View("b", Milliseconds(9))});
  EXPECT_EQ(d.group, "b");
  EXPECT_THAT(d.reason, HasSubstr("a left the configuration"));
}

TEST(SelectorTest, KeepsOnlyTheLastSwitches) {
  SelectorOptions o;
  o.keep_switches = 4;
  o.hold = absl::ZeroDuration();
  GroupSelector s(o);
  absl::Time now = absl::UnixEpoch();
  for (int i = 0; i < 20; ++i) {
    now += Seconds(1);
    s.Update(now, {i % 2 ? Dead("a") : View("a", Milliseconds(1)), View("b", Milliseconds(5))});
  }
  ASSERT_EQ(s.switches().size(), 4u);
  EXPECT_EQ(s.switches().back().time, now);
}

}  // namespace
}  // namespace nighfs::proxyselect
