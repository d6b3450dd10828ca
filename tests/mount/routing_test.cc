// The mount's proxy-group wiring (mount/routing.h): routes from GetVolumeRoutes into a
// RoutingStore, refreshed only when a heartbeat reports another routes_version, and the
// RoutingStore snapshot into status.proto as it is. A fake MetaApi, pinger, clock and member
// stores: no network.
#include "mount/routing.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/proxy/fake_meta.h"
#include "tests/proxyselect/fakes.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using proxyselect::testing::FakeClock;
using proxyselect::testing::FakePinger;
using proxyselect::testing::MemberStores;

// Answers GetVolumeRoutes from a settable reply (or error) and counts the calls; every other
// call is Unimplemented.
class RoutesMeta : public proxy::testing::UnimplementedMeta {
 public:
  absl::StatusOr<pb::GetVolumeRoutesResponse> GetVolumeRoutes(
      const pb::GetVolumeRoutesRequest& req) override {
    absl::MutexLock l(&mu_);
    ++calls_;
    last_volume_ = req.volume_id();
    if (!failure_.ok()) return failure_;
    return reply_;
  }

  void Set(uint64_t version, std::vector<std::pair<uint64_t, std::vector<std::string>>> groups) {
    absl::MutexLock l(&mu_);
    reply_.Clear();
    reply_.set_routes_version(version);
    for (auto& [id, members] : groups) {
      pb::ProxyGroup* g = reply_.add_groups();
      g->set_id(id);
      g->set_provider_code("onprem");
      g->set_region_code(absl::StrCat("dc", id));
      for (const std::string& m : members) g->add_addresses(m);
    }
  }
  void Fail(absl::Status s) {
    absl::MutexLock l(&mu_);
    failure_ = std::move(s);
  }
  int calls() const {
    absl::MutexLock l(&mu_);
    return calls_;
  }
  uint64_t last_volume() const {
    absl::MutexLock l(&mu_);
    return last_volume_;
  }

 private:
  mutable absl::Mutex mu_;
  pb::GetVolumeRoutesResponse reply_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_volume_ ABSL_GUARDED_BY(mu_) = 0;
};

class MountRoutingTest : public ::testing::Test {
 protected:
  MountRoutingOptions Options(std::shared_ptr<blockstore::BlockStore> direct = nullptr) {
    MountRoutingOptions o;
    o.meta = &meta_;
    o.volume_id = 7;
    o.member_options.volume = "vol";
    o.direct = std::move(direct);
    o.direct_missing_reason = "no usable store credentials: test";
    o.pinger = pinger_;
    o.member_store_factory = members_.Factory();
    o.start_prober = false;
    o.clock = [this] { return clock_.Now(); };
    o.probe_interval = absl::Seconds(1);
    o.probe_timeout = absl::Milliseconds(500);
    o.route_deadline = absl::Seconds(5);
    return o;
  }
  std::unique_ptr<MountRouting> MustCreate(MountRoutingOptions o) {
    absl::StatusOr<std::unique_ptr<MountRouting>> r = MountRouting::Create(std::move(o));
    EXPECT_OK(r.status());
    return r.ok() ? *std::move(r) : nullptr;
  }
  void Rounds(MountRouting& r, int n) {
    for (int i = 0; i < n; ++i) {
      clock_.Advance(absl::Seconds(1));
      r.routing_store()->ProbeRoundForTest();
    }
  }
  const status::v1::RoutingGroup* Group(const status::v1::Routing& s, const std::string& name) {
    for (const auto& g : s.groups()) {
      if (g.name() == name) return &g;
    }
    return nullptr;
  }

  RoutesMeta meta_;
  FakeClock clock_;
  std::shared_ptr<FakePinger> pinger_ = std::make_shared<FakePinger>();
  MemberStores members_;
};

TEST(GroupsFromRoutesTest, NamesGroupsAndSkipsEmptyOnes) {
  pb::GetVolumeRoutesResponse r;
  pb::ProxyGroup* a = r.add_groups();
  a->set_id(3);
  a->set_provider_code("aws");
  a->set_region_code("us-east-1");
  a->add_addresses("p1:7430");
  a->add_addresses("p2:7430");
  pb::ProxyGroup* empty = r.add_groups();
  empty->set_id(4);
  pb::ProxyGroup* bare = r.add_groups();
  bare->set_id(5);
  bare->add_addresses("http://p3:7430");
  std::vector<proxyselect::GroupConfig> g = GroupsFromRoutes(r);
  ASSERT_THAT(g, SizeIs(2));
  EXPECT_EQ(g[0].name, "3 aws/us-east-1");
  EXPECT_EQ(g[0].members, (std::vector<std::string>{"p1:7430", "p2:7430"}));
  EXPECT_EQ(g[1].name, "5");
  EXPECT_EQ(g[1].members, (std::vector<std::string>{"http://p3:7430"}));
}

TEST_F(MountRoutingTest, NoGroupsMeansNoRouting) {
  meta_.Set(4, {{1, {}}});  // a group without members cannot serve
  absl::StatusOr<std::unique_ptr<MountRouting>> r = MountRouting::Create(Options());
  ASSERT_OK(r.status());
  EXPECT_EQ(*r, nullptr);
  EXPECT_EQ(meta_.last_volume(), 7u);
}

TEST_F(MountRoutingTest, AVolumeWithoutGroupsGoesDirectAndPicksUpGroupsLater) {
  std::shared_ptr<blockstore::BlockStore> direct = blockstore::NewMemoryStore();
  meta_.Set(3, {});
  std::unique_ptr<MountRouting> r = MustCreate(Options(direct));
  ASSERT_NE(r, nullptr);
  EXPECT_FALSE(r->active());
  EXPECT_TRUE(r->Snapshot().direct_active);
  ASSERT_OK(r->store()->Put("blk/1", "one"));
  EXPECT_EQ(*direct->Get("blk/1"), "one");

  // A group is associated while mounted: the next heartbeat brings it, no remount.
  pinger_->Set("a1:7430", absl::Milliseconds(1));
  meta_.Set(4, {{1, {"a1:7430"}}});
  r->OnRoutesVersion(4);
  ASSERT_TRUE(r->active());
  Rounds(*r, 3);
  EXPECT_EQ(r->Snapshot().selected_group, "1 onprem/dc1");
  absl::StatusOr<std::string> holder = r->store()->PutAndLocate("blk/2", "two");
  ASSERT_OK(holder);
  EXPECT_EQ(*holder, "a1:7430");
  EXPECT_EQ(members_.Get("a1:7430")->calls(blockstore::FaultInjectingStore::Op::kPut), 1);
  EXPECT_FALSE(direct->Get("blk/2").ok()) << "went direct, not through the group";

  // The last group is dissociated: straight to the object store again.
  meta_.Set(5, {});
  r->OnRoutesVersion(5);
  EXPECT_FALSE(r->active());
  EXPECT_EQ(r->routes_version(), 5u);
  ASSERT_OK(r->store()->Put("blk/3", "three"));
  EXPECT_EQ(*direct->Get("blk/3"), "three");
  EXPECT_EQ(members_.Get("a1:7430")->calls(blockstore::FaultInjectingStore::Op::kPut), 1);
}

TEST_F(MountRoutingTest, WithoutADirectStoreTheLastGroupsAreKept) {
  meta_.Set(1, {{1, {"a1:7430"}}});
  std::unique_ptr<MountRouting> r = MustCreate(Options());
  ASSERT_NE(r, nullptr);
  meta_.Set(2, {});
  r->OnRoutesVersion(2);
  EXPECT_TRUE(r->active()) << "no other way to the blocks";
  EXPECT_THAT(r->Snapshot().groups, SizeIs(1));
}

TEST_F(MountRoutingTest, MetaErrorAtCreateIsReturned) {
  meta_.Fail(absl::UnavailableError("meta down"));
  EXPECT_EQ(MountRouting::Create(Options()).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(MountRoutingTest, RefreshesOnlyWhenTheVersionChanges) {
  meta_.Set(1, {{1, {"a1:7430"}}});
  std::unique_ptr<MountRouting> r = MustCreate(Options());
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(meta_.calls(), 1);
  EXPECT_EQ(r->routes_version(), 1u);

  // Heartbeats with the version in use: no call.
  r->OnRoutesVersion(1);
  r->OnRoutesVersion(1);
  EXPECT_EQ(meta_.calls(), 1);

  // A member joins group 1 and group 2 is associated: one call, applied without a remount.
  meta_.Set(2, {{1, {"a1:7430", "a2:7430"}}, {2, {"b1:7430"}}});
  r->OnRoutesVersion(2);
  EXPECT_EQ(meta_.calls(), 2);
  EXPECT_EQ(r->routes_version(), 2u);
  proxyselect::RoutingSnapshot snap = r->Snapshot();
  ASSERT_THAT(snap.groups, SizeIs(2));
  EXPECT_EQ(snap.groups[0].name, "1 onprem/dc1");
  EXPECT_THAT(snap.groups[0].members, SizeIs(2));
  EXPECT_EQ(snap.groups[1].name, "2 onprem/dc2");
  r->OnRoutesVersion(2);
  EXPECT_EQ(meta_.calls(), 2);

  status::v1::Routing s;
  r->FillStatus(&s);
  EXPECT_EQ(s.routes_version(), 2u);
  EXPECT_EQ(s.last_refresh_error(), "");
}

TEST_F(MountRoutingTest, FailedRefreshIsShownAndRetriedAtTheNextHeartbeat) {
  meta_.Set(1, {{1, {"a1:7430"}}});
  std::unique_ptr<MountRouting> r = MustCreate(Options());
  ASSERT_NE(r, nullptr);
  meta_.Set(2, {{1, {"a1:7430"}}, {2, {"b1:7430"}}});
  meta_.Fail(absl::UnavailableError("meta down"));
  r->OnRoutesVersion(2);
  status::v1::Routing s;
  r->FillStatus(&s);
  EXPECT_EQ(s.routes_version(), 1u);  // still the old configuration
  EXPECT_THAT(s.last_refresh_error(), HasSubstr("meta down"));
  EXPECT_THAT(r->Snapshot().groups, SizeIs(1));

  meta_.Fail(absl::OkStatus());
  r->OnRoutesVersion(2);
  s.Clear();
  r->FillStatus(&s);
  EXPECT_EQ(s.routes_version(), 2u);
  EXPECT_EQ(s.last_refresh_error(), "");
  EXPECT_THAT(r->Snapshot().groups, SizeIs(2));
}

TEST_F(MountRoutingTest, EmptiedConfigurationKeepsTheLastGroups) {
  meta_.Set(1, {{1, {"a1:7430"}}});
  std::unique_ptr<MountRouting> r = MustCreate(Options());
  ASSERT_NE(r, nullptr);
  meta_.Set(2, {});
  r->OnRoutesVersion(2);
  EXPECT_EQ(r->routes_version(), 2u);
  EXPECT_THAT(r->Snapshot().groups, SizeIs(1));
}

TEST_F(MountRoutingTest, NearestGroupSelectedAndStatusSaysSo) {
  meta_.Set(1, {{1, {"near:7430"}}, {2, {"far:7430"}}});
  pinger_->Set("near:7430", absl::Milliseconds(1));
  pinger_->Set("far:7430", absl::Milliseconds(10));
  std::unique_ptr<MountRouting> r = MustCreate(Options());
  ASSERT_NE(r, nullptr);
  Rounds(*r, 4);
  ASSERT_OK(r->store()->Put(blockstore::BlockKey(1), "hello"));
  absl::StatusOr<std::string> got = r->store()->Get(blockstore::BlockKey(1));
  ASSERT_OK(got);
  EXPECT_EQ(*got, "hello");

  status::v1::Routing s;
  r->FillStatus(&s);
  EXPECT_EQ(s.selected_group(), "1 onprem/dc1");
  EXPECT_FALSE(s.direct_configured());
  EXPECT_THAT(s.direct_why(), HasSubstr("no usable store credentials"));
  EXPECT_EQ(s.probe_interval_us(), 1000000);
  EXPECT_EQ(s.probe_timeout_us(), 500000);
  const status::v1::RoutingGroup* near = Group(s, "1 onprem/dc1");
  const status::v1::RoutingGroup* far = Group(s, "2 onprem/dc2");
  ASSERT_NE(near, nullptr);
  ASSERT_NE(far, nullptr);
  EXPECT_TRUE(near->selected());
  EXPECT_FALSE(far->selected());
  EXPECT_EQ(near->members(0).last_rtt_us(), 1000);
  EXPECT_EQ(far->members(0).last_rtt_us(), 10000);
  EXPECT_EQ(near->members(0).counters().requests(), 2u);
  EXPECT_EQ(near->members(0).counters().bytes(), 10u);
  EXPECT_EQ(far->members(0).counters().requests(), 0u);
  EXPECT_THAT(s.text(), HasSubstr("1 onprem/dc1"));

  // The near group dies: the far one takes over, and the switch is recorded.
  pinger_->Set("near:7430", absl::UnavailableError("refused"));
  members_.Get("near:7430")->FailNext(blockstore::FaultInjectingStore::Op::kGet,
                                      absl::UnavailableError("refused"),
                                      blockstore::FaultInjectingStore::kForever);
  Rounds(*r, 2);
  s.Clear();
  r->FillStatus(&s);
  EXPECT_EQ(s.selected_group(), "2 onprem/dc2");
  ASSERT_GE(s.switches_size(), 1);
  EXPECT_EQ(s.switches(s.switches_size() - 1).to(), "2 onprem/dc2");
  EXPECT_GT(s.switches(s.switches_size() - 1).time_ns(), 0);
}

TEST_F(MountRoutingTest, DirectFallbackWhenEveryGroupIsDown) {
  std::shared_ptr<blockstore::BlockStore> direct = blockstore::NewMemoryStore();
  meta_.Set(1, {{1, {"only:7430"}}});
  pinger_->Set("only:7430", absl::UnavailableError("refused"));
  std::unique_ptr<MountRouting> r = MustCreate(Options(direct));
  ASSERT_NE(r, nullptr);
  Rounds(*r, 3);
  ASSERT_OK(r->store()->Put(blockstore::BlockKey(2), "abc"));
  EXPECT_OK(direct->Head(blockstore::BlockKey(2)).status());
  status::v1::Routing s;
  r->FillStatus(&s);
  EXPECT_TRUE(s.direct_configured());
  EXPECT_TRUE(s.direct_active());
  EXPECT_EQ(s.selected_group(), "");
  EXPECT_EQ(s.direct_counters().requests(), 1u);
  EXPECT_EQ(s.direct_counters().bytes(), 3u);
}

// Every field of status.proto's Routing comes from the snapshot, unchanged.
TEST(FillRoutingStatusTest, CopiesEveryFieldOfTheSnapshot) {
  proxyselect::RoutingSnapshot snap;
  proxyselect::GroupStatus g;
  g.name = "g1";
  g.healthy = false;
  g.why = "no healthy member";
  g.measured = true;
  g.rtt = absl::Microseconds(1234);
  proxyselect::MemberStatus m;
  m.address = "p1:7430";
  m.healthy = false;
  m.why = "ejected: 3 failures";
  m.measured = true;
  m.last_rtt = absl::Microseconds(2000);
  m.smoothed_rtt = absl::Microseconds(1500);
  m.counters = {.requests = 11, .bytes = 22, .errors = 3, .p50 = absl::Microseconds(400),
                .p99 = absl::Microseconds(9000)};
  g.members.push_back(m);
  snap.groups.push_back(g);
  proxyselect::GroupStatus h;
  h.name = "g2";
  h.healthy = true;
  snap.groups.push_back(h);
  snap.selected_group = "g2";
  snap.selected_why = "lowest RTT";
  snap.direct_configured = true;
  snap.direct_active = false;
  snap.direct_why = "a group serves";
  snap.direct_counters = {.requests = 5, .bytes = 6, .errors = 1, .p50 = absl::Microseconds(7),
                          .p99 = absl::Microseconds(8)};
  snap.switches.push_back({absl::FromUnixSeconds(1000), "", "g1", "first measurement"});
  snap.switches.push_back({absl::FromUnixSeconds(2000), "g1", "g2", "g1 down"});

  status::v1::Routing s;
  FillRoutingStatus(snap, &s);
  ASSERT_EQ(s.groups_size(), 2);
  const auto& sg = s.groups(0);
  EXPECT_EQ(sg.name(), "g1");
  EXPECT_FALSE(sg.healthy());
  EXPECT_EQ(sg.why(), "no healthy member");
  EXPECT_TRUE(sg.measured());
  EXPECT_EQ(sg.rtt_us(), 1234);
  EXPECT_FALSE(sg.selected());
  EXPECT_TRUE(s.groups(1).selected());
  ASSERT_EQ(sg.members_size(), 1);
  const auto& sm = sg.members(0);
  EXPECT_EQ(sm.address(), "p1:7430");
  EXPECT_FALSE(sm.healthy());
  EXPECT_EQ(sm.why(), "ejected: 3 failures");
  EXPECT_TRUE(sm.measured());
  EXPECT_EQ(sm.last_rtt_us(), 2000);
  EXPECT_EQ(sm.smoothed_rtt_us(), 1500);
  EXPECT_EQ(sm.counters().requests(), 11u);
  EXPECT_EQ(sm.counters().bytes(), 22u);
  EXPECT_EQ(sm.counters().errors(), 3u);
  EXPECT_EQ(sm.counters().p50_us(), 400);
  EXPECT_EQ(sm.counters().p99_us(), 9000);
  EXPECT_EQ(s.selected_group(), "g2");
  EXPECT_EQ(s.selected_why(), "lowest RTT");
  EXPECT_TRUE(s.direct_configured());
  EXPECT_FALSE(s.direct_active());
  EXPECT_EQ(s.direct_why(), "a group serves");
  EXPECT_EQ(s.direct_counters().requests(), 5u);
  EXPECT_EQ(s.direct_counters().bytes(), 6u);
  EXPECT_EQ(s.direct_counters().errors(), 1u);
  EXPECT_EQ(s.direct_counters().p50_us(), 7);
  EXPECT_EQ(s.direct_counters().p99_us(), 8);
  ASSERT_EQ(s.switches_size(), 2);
  EXPECT_EQ(s.switches(1).time_ns(), 2000 * int64_t{1000000000});
  EXPECT_EQ(s.switches(1).from(), "g1");
  EXPECT_EQ(s.switches(1).to(), "g2");
  EXPECT_EQ(s.switches(1).reason(), "g1 down");
  EXPECT_EQ(s.text(), proxyselect::FormatRoutingStatus(snap));
}

}  // namespace
}  // namespace nighfs::fs
