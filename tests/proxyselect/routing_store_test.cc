#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "blockstore/call_deadline.h"
#include "blockstore/fault_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxyselect/proxyselect.h"
#include "proxyselect/rendezvous.h"
#include "tests/proxyselect/fakes.h"
#include "tests/testing/test_status.h"

namespace nighfs::proxyselect {
namespace {

using absl::Milliseconds;
using absl::Seconds;
using blockstore::BlockKey;
using blockstore::FaultInjectingStore;
using Op = blockstore::FaultInjectingStore::Op;
using ::testing::HasSubstr;
using testing::FakeClock;
using testing::FakePinger;
using testing::MemberStores;

const GroupConfig kNear{"near", {"n1:7430", "n2:7430", "n3:7430"}};
const GroupConfig kMid{"mid", {"m1:7430", "m2:7430"}};
const GroupConfig kFar{"far", {"f1:7430"}};

// The home member (address) of `key` among `members`, then the next.
std::vector<std::string> RankFor(const std::vector<std::string>& members, std::string_view key) {
  std::vector<uint64_t> hashes;
  for (const std::string& m : members) hashes.push_back(MemberHash(m));
  std::vector<std::string> out;
  for (size_t i : RendezvousOrder(hashes, KeyId(key))) out.push_back(members[i]);
  return out;
}

const MemberStatus* FindMember(const RoutingSnapshot& s, const std::string& address) {
  for (const GroupStatus& g : s.groups) {
    for (const MemberStatus& m : g.members) {
      if (m.address == address) return &m;
    }
  }
  return nullptr;
}

class RoutingStoreTest : public ::testing::Test {
 protected:
  RoutingStoreTest() {
    for (const std::string& a : kNear.members) pinger_->Set(a, Milliseconds(1));
    for (const std::string& a : kMid.members) pinger_->Set(a, Milliseconds(10));
    for (const std::string& a : kFar.members) pinger_->Set(a, Milliseconds(30));
  }

  RoutingOptions Options(std::vector<GroupConfig> groups, bool with_direct = true) {
    RoutingOptions o;
    o.groups = std::move(groups);
    o.member_store_factory = members_.Factory();
    if (with_direct) {
      direct_ = std::make_shared<FaultInjectingStore>(
          std::make_unique<blockstore::BlockStoreWrapper>(backing_));
      o.direct = direct_;
    } else {
      o.direct_missing_reason = "no store credentials";
    }
    o.pinger = pinger_;
    o.start_prober = false;
    o.clock = [this] { return clock_.Now(); };
    o.sleep = [this](absl::Duration d) { clock_.Advance(d); };
    o.request_deadline = Seconds(10);
    return o;
  }
  std::unique_ptr<RoutingStore> Make(RoutingOptions o) {
    absl::StatusOr<std::unique_ptr<RoutingStore>> s = RoutingStore::Create(std::move(o));
    EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }
  // `n` probe rounds, one simulated second apart.
  void Rounds(RoutingStore& r, int n) {
    for (int i = 0; i < n; ++i) {
      clock_.Advance(Seconds(1));
      r.ProbeRoundForTest();
    }
  }
  int Calls(const std::string& address, Op op) { return members_.Get(address)->calls(op); }
  void FailForever(const GroupConfig& g, Op op) {
    for (const std::string& a : g.members) {
      members_.Get(a)->FailNext(op, absl::UnavailableError("connection refused"),
                                FaultInjectingStore::kForever);
    }
  }

  FakeClock clock_;
  std::shared_ptr<FakePinger> pinger_ = std::make_shared<FakePinger>();
  // The object store: behind every proxy and the direct route.
  std::shared_ptr<blockstore::BlockStore> backing_ = blockstore::NewMemoryStore();
  MemberStores members_{backing_};
  std::shared_ptr<FaultInjectingStore> direct_;
};

// Records the call deadline (blockstore/call_deadline.h) each Put ran under; fails them all
// when told to.
class DeadlineRecorder : public blockstore::BlockStoreWrapper {
 public:
  explicit DeadlineRecorder(std::shared_ptr<blockstore::BlockStore> base)
      : BlockStoreWrapper(std::move(base)) {}
  absl::Status Put(std::string_view key, std::string_view data) override {
    absl::MutexLock l(&mu_);
    seen_.push_back(blockstore::CallDeadline());
    if (fail_) return absl::UnavailableError("connection refused");
    return BlockStoreWrapper::Put(key, data);
  }
  void set_fail(bool fail) {
    absl::MutexLock l(&mu_);
    fail_ = fail;
  }
  std::vector<absl::Time> seen() const {
    absl::MutexLock l(&mu_);
    return seen_;
  }

 private:
  mutable absl::Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::Time> seen_ ABSL_GUARDED_BY(mu_);
};

TEST_F(RoutingStoreTest, EachRouteRunsUnderItsShareOfTheRequestDeadline) {
  RoutingOptions o = Options({kFar});
  o.request_deadline = Seconds(10);
  o.member_attempt_timeout = Seconds(2);
  auto member = std::make_shared<DeadlineRecorder>(backing_);
  auto direct = std::make_shared<DeadlineRecorder>(backing_);
  o.member_store_factory =
      [member](const std::string&) -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
    return std::make_unique<blockstore::BlockStoreWrapper>(
        std::shared_ptr<blockstore::BlockStore>(member));
  };
  o.direct = direct;
  auto r = Make(std::move(o));
  Rounds(*r, 1);
  ASSERT_EQ(r->Snapshot().selected_group, "far");

  absl::Time before = absl::Now();
  ASSERT_OK(r->Put(BlockKey(1), "a"));
  absl::Time after = absl::Now();
  ASSERT_EQ(member->seen().size(), 1u);
  // A member gets member_attempt_timeout, not the whole request deadline.
  EXPECT_GE(member->seen()[0], before + Seconds(2));
  EXPECT_LE(member->seen()[0], after + Seconds(2));
  EXPECT_EQ(blockstore::CallDeadline(), absl::InfiniteFuture()) << "the scope leaked";

  // The member fails: the direct route gets what is left of the request deadline.
  member->set_fail(true);
  before = absl::Now();
  ASSERT_OK(r->Put(BlockKey(2), "b"));
  after = absl::Now();
  ASSERT_EQ(direct->seen().size(), 1u);
  EXPECT_GT(direct->seen()[0], before + Seconds(2));
  EXPECT_LE(direct->seen()[0], after + Seconds(10));
  EXPECT_EQ(*r->Get(BlockKey(2)), "b");
}

TEST_F(RoutingStoreTest, CreateRefusesBadConfigurations) {
  RoutingOptions o = Options({kNear});
  o.member_store_factory = nullptr;
  EXPECT_THAT(RoutingStore::Create(o), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RoutingStore::Create(Options({GroupConfig{"", {"a:1"}}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RoutingStore::Create(Options({GroupConfig{"g", {}}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RoutingStore::Create(Options({GroupConfig{"g", {"a:1", "a:1"}}})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RoutingStore::Create(Options({kNear, kNear})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  o = Options({kNear});
  o.start_prober = true;
  o.pinger = nullptr;
  EXPECT_THAT(RoutingStore::Create(o), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RoutingStoreTest, EachBlockGoesToItsHomeInTheNearestGroupAndPutReturnsTheHolder) {
  auto r = Make(Options({kFar, kMid, kNear}));
  Rounds(*r, 1);
  ASSERT_EQ(r->Snapshot().selected_group, "near");
  std::map<std::string, int> expected;
  for (int i = 0; i < 300; ++i) {
    const std::string key = BlockKey(i);
    const std::string home = RankFor(kNear.members, key)[0];
    ++expected[home];
    absl::StatusOr<std::string> holder = r->PutAndLocate(key, "data" + std::to_string(i));
    ASSERT_OK(holder);
    EXPECT_EQ(*holder, home);
  }
  for (const std::string& a : kNear.members) {
    EXPECT_EQ(Calls(a, Op::kPut), expected[a]) << a;
    EXPECT_GT(expected[a], 60) << "three members share 300 blocks";
  }
  for (const std::string& a : kMid.members) EXPECT_EQ(Calls(a, Op::kPut), 0);
  EXPECT_EQ(direct_->calls(Op::kPut), 0);
  EXPECT_EQ(*r->Get(BlockKey(7)), "data7");
}

TEST_F(RoutingStoreTest, AFailedHomeIsEjectedAndTheNextMemberServes) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 1);
  const std::string key = BlockKey(42);
  ASSERT_OK(backing_->Put(key, "hello"));
  const std::vector<std::string> rank = RankFor(kNear.members, key);
  members_.Get(rank[0])->FailNext(Op::kGet, absl::UnavailableError("connection reset by peer"));

  EXPECT_EQ(*r->Get(key), "hello");
  EXPECT_EQ(Calls(rank[0], Op::kGet), 1);
  EXPECT_EQ(Calls(rank[1], Op::kGet), 1);
  RoutingSnapshot s = r->Snapshot();
  const MemberStatus* home = FindMember(s, rank[0]);
  ASSERT_NE(home, nullptr);
  EXPECT_FALSE(home->healthy);
  EXPECT_THAT(home->why, HasSubstr("connection reset by peer"));
  EXPECT_EQ(home->counters.errors, 1u);
  EXPECT_EQ(s.selected_group, "near");  // two members left

  // Ejected: the next call for the block goes straight to the next member.
  EXPECT_EQ(*r->Get(key), "hello");
  EXPECT_EQ(Calls(rank[0], Op::kGet), 1);
  EXPECT_EQ(Calls(rank[1], Op::kGet), 2);

  // Probes readmit it after the ejection time (1 s) and two successes; then it is home again.
  Rounds(*r, 3);
  EXPECT_TRUE(FindMember(r->Snapshot(), rank[0])->healthy);
  EXPECT_EQ(*r->Get(key), "hello");
  EXPECT_EQ(Calls(rank[0], Op::kGet), 2);
}

TEST_F(RoutingStoreTest, NotFoundIsAnAnswerNotAFailure) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 1);
  const std::string key = BlockKey(5);
  EXPECT_THAT(r->Get(key), StatusIs(absl::StatusCode::kNotFound));
  const std::string home = RankFor(kNear.members, key)[0];
  int total = direct_->calls(Op::kGet);
  for (const auto& g : {kNear, kMid}) {
    for (const std::string& a : g.members) total += Calls(a, Op::kGet);
  }
  EXPECT_EQ(total, 1);
  EXPECT_EQ(Calls(home, Op::kGet), 1);
  const RoutingSnapshot snap = r->Snapshot();
  const MemberStatus* m = FindMember(snap, home);
  EXPECT_TRUE(m->healthy);
  EXPECT_EQ(m->counters.requests, 1u);
  EXPECT_EQ(m->counters.errors, 0u);
  // A caller's error is not retried elsewhere either.
  EXPECT_THAT(r->Get("../etc/passwd"), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(RoutingStoreTest, BackPressureRoutesAroundWithoutEjecting) {
  auto r = Make(Options({kNear}));
  Rounds(*r, 1);
  const std::string key = BlockKey(9);
  const std::vector<std::string> rank = RankFor(kNear.members, key);
  members_.Get(rank[0])->FailNext(Op::kPut, absl::ResourceExhaustedError("503 SlowDown"));
  absl::StatusOr<std::string> holder = r->PutAndLocate(key, "x");
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, rank[1]);
  EXPECT_TRUE(FindMember(r->Snapshot(), rank[0])->healthy);
}

TEST_F(RoutingStoreTest, AWholeGroupDownGoesToTheNextGroupWithinTheSameCall) {
  auto r = Make(Options({kNear, kMid, kFar}));
  Rounds(*r, 1);
  const std::string key = BlockKey(77);
  ASSERT_OK(backing_->Put(key, "payload"));
  FailForever(kNear, Op::kGet);
  const absl::Time start = clock_.Now();
  EXPECT_EQ(*r->Get(key), "payload");
  EXPECT_EQ(clock_.Now(), start) << "no backoff: the next route was tried at once";
  EXPECT_EQ(Calls(RankFor(kMid.members, key)[0], Op::kGet), 1);
  RoutingSnapshot s = r->Snapshot();
  EXPECT_EQ(s.selected_group, "mid");
  ASSERT_FALSE(s.switches.empty());
  EXPECT_EQ(s.switches.back().from, "near");
  EXPECT_EQ(s.switches.back().to, "mid");
  EXPECT_THAT(s.switches.back().reason, HasSubstr("near unhealthy"));
  EXPECT_FALSE(s.groups[0].healthy);
  EXPECT_FALSE(s.direct_active);
}

TEST_F(RoutingStoreTest, EveryGroupDownFallsBackToDirect) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 1);
  FailForever(kNear, Op::kPut);
  FailForever(kMid, Op::kPut);
  absl::StatusOr<std::string> holder = r->PutAndLocate(BlockKey(1), "abc");
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, "") << "the object store itself has it";
  EXPECT_EQ(*backing_->Get(BlockKey(1)), "abc");
  RoutingSnapshot s = r->Snapshot();
  EXPECT_TRUE(s.direct_active);
  EXPECT_EQ(s.selected_group, "");
  EXPECT_THAT(s.direct_why, HasSubstr("no healthy proxy group"));
  EXPECT_EQ(s.direct_counters.requests, 1u);
  EXPECT_EQ(s.direct_counters.bytes, 3u);
  // The next write goes direct at once, tried on no ejected member.
  const int before = Calls(kNear.members[0], Op::kPut) + Calls(kMid.members[0], Op::kPut);
  ASSERT_OK(r->Put(BlockKey(2), "def"));
  EXPECT_EQ(Calls(kNear.members[0], Op::kPut) + Calls(kMid.members[0], Op::kPut), before);

  // The groups come back: probes readmit them and routing returns to the nearest.
  for (const auto& g : {kNear, kMid}) {
    for (const std::string& a : g.members) members_.Get(a)->ClearFaults();
  }
  Rounds(*r, 3);
  EXPECT_EQ(r->Snapshot().selected_group, "near");
}

TEST_F(RoutingStoreTest, NoRouteWithoutDirectIsAClearErrorWithinTheDeadline) {
  auto r = Make(Options({kNear}, /*with_direct=*/false));
  Rounds(*r, 1);
  FailForever(kNear, Op::kGet);
  const absl::Time start = clock_.Now();
  const absl::Time real_start = absl::Now();
  absl::StatusOr<std::string> got = r->Get(BlockKey(3));
  EXPECT_THAT(got, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(got.status().message(), HasSubstr("no direct route: no store credentials"));
  EXPECT_THAT(got.status().message(), HasSubstr("connection refused"));
  EXPECT_LE(clock_.Now() - start, Seconds(10));
  EXPECT_GE(clock_.Now() - start, Seconds(8)) << "kept trying (with backoff) until the deadline";
  EXPECT_LT(absl::Now() - real_start, Seconds(2));
  RoutingSnapshot s = r->Snapshot();
  EXPECT_TRUE(s.direct_active);
  EXPECT_FALSE(s.direct_configured);
  EXPECT_THAT(s.direct_why, HasSubstr("needed but missing: no store credentials"));
}

TEST_F(RoutingStoreTest, CheckMakesOnePassWithoutBackoff) {
  auto r = Make(Options({kNear}, /*with_direct=*/false));
  Rounds(*r, 1);
  EXPECT_OK(r->Check());
  FailForever(kNear, Op::kCheck);
  const absl::Time start = clock_.Now();
  EXPECT_THAT(r->Check(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(clock_.Now(), start);
  int calls = 0;
  for (const std::string& a : kNear.members) calls += Calls(a, Op::kCheck);
  EXPECT_EQ(calls, 1 + 3);  // the OK check, then each member once
}

TEST_F(RoutingStoreTest, WithoutDirectAnEjectedMemberIsTheLastResort) {
  const GroupConfig solo{"solo", {"s1:7430"}};
  pinger_->Set("s1:7430", Milliseconds(1));
  auto r = Make(Options({solo}, /*with_direct=*/false));
  Rounds(*r, 1);
  ASSERT_OK(backing_->Put(BlockKey(4), "still here"));
  members_.Get("s1:7430")->FailNext(Op::kGet, absl::UnavailableError("blip"));
  EXPECT_EQ(*r->Get(BlockKey(4)), "still here");  // after a backoff, on the ejected member
  EXPECT_FALSE(FindMember(r->Snapshot(), "s1:7430")->healthy);
}

TEST_F(RoutingStoreTest, ProbesSelectTheNearestGroupAndFollowItsHealth) {
  auto r = Make(Options({kFar, kMid, kNear}));
  RoutingSnapshot s = r->Snapshot();
  EXPECT_THAT(s.selected_why, HasSubstr("not measured yet"));
  Rounds(*r, 1);
  s = r->Snapshot();
  EXPECT_EQ(s.selected_group, "near");
  EXPECT_TRUE(s.groups[2].measured);
  EXPECT_EQ(s.groups[2].rtt, Milliseconds(1));
  EXPECT_EQ(s.groups[1].rtt, Milliseconds(10));

  // The near group stops answering probes: ejected at the first failed round, mid selected.
  for (const std::string& a : kNear.members) pinger_->Set(a, absl::DeadlineExceededError("timeout"));
  Rounds(*r, 1);
  s = r->Snapshot();
  EXPECT_EQ(s.selected_group, "mid");
  EXPECT_FALSE(s.groups[2].healthy);
  EXPECT_THAT(s.switches.back().reason, HasSubstr("timeout"));

  // Back: readmitted after 1 s of ejection and 2 good probes, then 5 s of hold.
  for (const std::string& a : kNear.members) pinger_->Set(a, Milliseconds(1));
  int rounds = 0;
  while (r->Snapshot().selected_group != "near" && rounds < 30) {
    Rounds(*r, 1);
    ++rounds;
  }
  EXPECT_EQ(r->Snapshot().selected_group, "near");
  EXPECT_GE(rounds, 5) << "the hold";
  EXPECT_LE(rounds, 2 + 5 + 1);
}

TEST_F(RoutingStoreTest, JitterThroughTheRouterNeverSwitches) {
  pinger_->SetJitter(0.3);
  auto r = Make(Options({kFar, kMid, kNear}));
  Rounds(*r, 1);
  const size_t initial = r->Snapshot().switches.size();
  for (int i = 0; i < 2000; ++i) {
    Rounds(*r, 1);
    ASSERT_EQ(r->Snapshot().selected_group, "near") << "round " << i;
  }
  EXPECT_EQ(r->Snapshot().switches.size(), initial);
}

TEST_F(RoutingStoreTest, MembershipChangesMoveOnlyTheBlocksOfMembersThatJoinOrLeave) {
  // Each proxy keeps its own blocks (no shared store, no direct): a Head finds a block only on
  // the member that got it, so which blocks are still found shows which homes moved.
  MemberStores separate;
  RoutingOptions o = Options({GroupConfig{"g", {"a:1", "b:1", "c:1"}}}, /*with_direct=*/false);
  o.member_store_factory = separate.Factory();
  for (const char* a : {"a:1", "b:1", "c:1", "d:1"}) pinger_->Set(a, Milliseconds(1));
  auto r = Make(std::move(o));
  Rounds(*r, 1);
  constexpr int kKeys = 4000;
  for (int i = 0; i < kKeys; ++i) ASSERT_OK(r->Put(BlockKey(i), "x"));

  ASSERT_OK(r->SetGroups({GroupConfig{"g", {"a:1", "b:1", "c:1", "d:1"}}}));
  EXPECT_TRUE(FindMember(r->Snapshot(), "a:1")->measured) << "staying members keep their RTT";
  Rounds(*r, 1);
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = BlockKey(i);
    const bool found = r->Head(key).ok();
    const std::string home = RankFor({"a:1", "b:1", "c:1", "d:1"}, key)[0];
    EXPECT_EQ(found, home != "d:1") << key;
    moved += !found;
  }
  EXPECT_NEAR(moved / static_cast<double>(kKeys), 0.25, 0.03);

  ASSERT_OK(r->SetGroups({GroupConfig{"g", {"a:1", "c:1", "d:1"}}}));
  int lost_home = 0;
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = BlockKey(i);
    const std::vector<std::string> before = RankFor({"a:1", "b:1", "c:1", "d:1"}, key);
    const std::string now = RankFor({"a:1", "c:1", "d:1"}, key)[0];
    if (before[0] != "b:1") {
      EXPECT_EQ(now, before[0]) << "only b's blocks move";
    } else {
      ++lost_home;
      EXPECT_EQ(now, before[1]) << "to the next-highest member";
    }
  }
  EXPECT_NEAR(lost_home / static_cast<double>(kKeys), 0.25, 0.03);
  EXPECT_EQ(FindMember(r->Snapshot(), "b:1"), nullptr);
}

TEST_F(RoutingStoreTest, AMemberWhoseStoreCannotBeMadeIsShownAndSkipped) {
  pinger_->Set("unresolvable:1", Milliseconds(1));
  auto r = Make(Options({GroupConfig{"g", {"unresolvable:1", "n1:7430"}}}));
  Rounds(*r, 1);
  RoutingSnapshot s = r->Snapshot();
  const MemberStatus* m = FindMember(s, "unresolvable:1");
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->healthy);
  EXPECT_THAT(m->why, HasSubstr("cannot resolve unresolvable:1"));
  EXPECT_EQ(s.selected_group, "g");
  for (int i = 0; i < 50; ++i) ASSERT_OK(r->Put(BlockKey(i), "x"));
  EXPECT_EQ(Calls("n1:7430", Op::kPut), 50);
}

TEST_F(RoutingStoreTest, SnapshotCountsRequestsBytesAndLatency) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 3);
  const std::string key = BlockKey(11);
  const std::string home = RankFor(kNear.members, key)[0];
  ASSERT_OK(r->Put(key, std::string(1000, 'z')));
  ASSERT_OK(r->Get(key));
  ASSERT_OK(r->Get(key, 10, 90));
  RoutingSnapshot s = r->Snapshot();
  ASSERT_EQ(s.groups.size(), 2u);
  EXPECT_EQ(s.groups[0].name, "near");
  EXPECT_TRUE(s.groups[0].healthy);
  EXPECT_EQ(s.groups[0].members.size(), 3u);
  const MemberStatus* m = FindMember(s, home);
  EXPECT_TRUE(m->measured);
  EXPECT_EQ(m->last_rtt, Milliseconds(1));
  EXPECT_EQ(m->smoothed_rtt, Milliseconds(1));
  EXPECT_EQ(m->why, "ok");
  EXPECT_EQ(m->counters.requests, 3u);
  EXPECT_EQ(m->counters.bytes, 1000u + 1000u + 90u);
  EXPECT_EQ(m->counters.errors, 0u);
  EXPECT_LE(m->counters.p50, m->counters.p99);
  EXPECT_EQ(s.selected_group, "near");
  EXPECT_THAT(s.selected_why, HasSubstr("near"));
  EXPECT_TRUE(s.direct_configured);
  EXPECT_FALSE(s.direct_active);
  EXPECT_THAT(s.direct_why, HasSubstr("standby"));
}

TEST_F(RoutingStoreTest, StatusTextShowsTheChoiceTheRttsAndTheSwitches) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 1);
  ASSERT_OK(r->Put(BlockKey(1), std::string(2048, 'q')));
  FailForever(kNear, Op::kHead);
  (void)r->Head(BlockKey(1));
  const std::string text = FormatRoutingStatus(r->Snapshot());
  EXPECT_THAT(text, HasSubstr("route:    proxy group mid: near unhealthy"));
  EXPECT_THAT(text, HasSubstr("direct:   standby: a proxy group serves"));
  EXPECT_THAT(text, HasSubstr("group near: UNHEALTHY (no healthy member)"));
  EXPECT_THAT(text, HasSubstr("group mid: healthy, rtt 10.00 ms  <- selected"));
  EXPECT_THAT(text, HasSubstr("  m1:7430  ok  rtt last 10.00 ms smoothed 10.00 ms"));
  EXPECT_THAT(text, HasSubstr("EJECTED"));
  EXPECT_THAT(text, HasSubstr("2.0 KiB"));
  EXPECT_THAT(text, HasSubstr(" near -> mid: near unhealthy"));

  FailForever(kMid, Op::kHead);
  (void)r->Head(BlockKey(1));
  EXPECT_THAT(FormatRoutingStatus(r->Snapshot()),
              HasSubstr("route:    DIRECT to the object store: no healthy proxy group"));
}

TEST_F(RoutingStoreTest, ListGoesToTheObjectStoreOrSaysWhyNot) {
  auto r = Make(Options({kNear}));
  ASSERT_OK(backing_->Put(BlockKey(1), "a"));
  absl::StatusOr<blockstore::ListPage> page = r->List("blk/", "");
  ASSERT_OK(page);
  EXPECT_EQ(page->objects.size(), 1u);
  auto nodirect = Make(Options({kNear}, false));
  EXPECT_THAT(nodirect->List("blk/", ""), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(r->Describe(), HasSubstr("near [n1:7430,n2:7430,n3:7430]"));
}

TEST_F(RoutingStoreTest, ConcurrentCallsWhileHealthAndMembershipChange) {
  auto r = Make(Options({kNear, kMid}));
  Rounds(*r, 1);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    int i = 0;
    while (!stop.load()) {
      if (i % 2 == 0) {
        ASSERT_OK(r->SetGroups({GroupConfig{"near", {"n1:7430", "n2:7430"}}, kMid}));
      } else {
        ASSERT_OK(r->SetGroups({kNear, kMid}));
      }
      members_.Get(kNear.members[i % 3])->FailNext(Op::kGet, absl::UnavailableError("flap"));
      r->ProbeRoundForTest();
      (void)r->Snapshot();
      ++i;
    }
  });
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < 300; ++i) {
        const std::string key = BlockKey(t * 1000 + i);
        const std::string data = absl::StrCat("block ", t, "/", i);
        if (!r->Put(key, data).ok()) ++failures;
        absl::StatusOr<std::string> got = r->Get(key);
        if (!got.ok() || *got != data) ++failures;
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  churn.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(RoutingStoreTest, TheProberThreadSelectsTheNearestGroup) {
  RoutingOptions o = Options({kFar, kMid, kNear});
  o.start_prober = true;
  o.probe_interval = Milliseconds(5);
  o.probe_timeout = Milliseconds(500);
  o.clock = [] { return absl::Now(); };
  o.sleep = [](absl::Duration d) { absl::SleepFor(d); };
  auto r = Make(std::move(o));
  const absl::Time deadline = absl::Now() + Seconds(5);
  while (r->Snapshot().selected_group != "near" && absl::Now() < deadline) {
    absl::SleepFor(Milliseconds(2));
  }
  EXPECT_EQ(r->Snapshot().selected_group, "near");
  const int calls = pinger_->calls();
  while (pinger_->calls() < calls + 12 && absl::Now() < deadline) absl::SleepFor(Milliseconds(2));
  EXPECT_GE(pinger_->calls(), calls + 12) << "keeps probing every member";
}

}  // namespace
}  // namespace nighfs::proxyselect
