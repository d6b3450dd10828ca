// The metadata server's proxy groups (issue 13), driven directly through MetaService with a
// temporary SQLite file and an injected clock: validation, exactly-once retries, the
// per-volume routes_version seen by Heartbeat and GetVolumeRoutes, deletion rules, known
// proxies, and the schema v6 -> v7 migration. Who may call what over HTTP:
// meta_auth_test.cc (MetaAuthTest.ProxyGroupsAreAdminOnlyAndRoutesAreScopedToTheVolume).
#include <sqlite3.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "meta/schema.h"
#include "tests/meta/fake_store.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta {
namespace {

using ::nighfs::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kStart = int64_t{1'700'000'000} * 1'000'000'000;

template <class T>
absl::StatusCode Code(const T& s) {
  return ::nighfs::testing::GetStatus(s).code();
}

class ProxyGroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() + "/meta.db";
    Open();
    ASSERT_TRUE(svc_);
    vol_ = CreateVolume("vol");
    other_ = CreateVolume("other");
    pb::MountRequest m;
    m.set_volume_name("vol");
    absl::StatusOr<pb::MountResponse> r = svc_->Mount(m);
    ASSERT_OK(r);
    session_ = r->session_id();
  }

  void Open() {
    svc_.reset();
    MetaServiceOptions o;
    o.db_path = db_path_;
    o.run_background = false;
    o.now_ns = [this] { return now_.load(); };
    o.open_store = [this](const std::string& url) { return stores_.Open(url); };
    o.allow_test_stores = true;
    absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
    ASSERT_OK(s);
    svc_ = std::move(*s);
  }

  void RawSql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }

  uint64_t CreateVolume(const std::string& name) {
    pb::CreateVolumeRequest r;
    r.set_name(name);
    r.set_store_url("mem://" + name);
    r.set_block_size(64 * 1024);
    absl::StatusOr<pb::CreateVolumeResponse> v = svc_->CreateVolume(r);
    EXPECT_OK(v);
    return v.ok() ? v->volume().id() : 0;
  }

  absl::StatusOr<pb::ProxyGroupResponse> Create(const std::vector<std::string>& addresses,
                                                const std::string& provider = "onprem",
                                                const std::string& region = "dc1",
                                                const std::string& request_id = "") {
    pb::CreateProxyGroupRequest r;
    r.set_provider_code(provider);
    r.set_region_code(region);
    for (const std::string& a : addresses) r.add_addresses(a);
    r.set_request_id(request_id);
    return svc_->CreateProxyGroup(r);
  }
  absl::StatusOr<pb::ProxyGroupResponse> Update(uint64_t id,
                                                const std::vector<std::string>& addresses,
                                                const std::string& request_id = "") {
    pb::UpdateProxyGroupRequest r;
    r.set_id(id);
    for (const std::string& a : addresses) r.add_addresses(a);
    r.set_request_id(request_id);
    return svc_->UpdateProxyGroup(r);
  }
  absl::Status Associate(const std::string& volume, uint64_t group,
                         const std::string& request_id = "") {
    pb::CreateVolumeProxyGroupRequest r;
    r.set_volume(volume);
    r.set_proxy_group_id(group);
    r.set_request_id(request_id);
    return svc_->CreateVolumeProxyGroup(r).status();
  }
  absl::Status Dissociate(const std::string& volume, uint64_t group,
                          const std::string& request_id = "") {
    pb::DeleteVolumeProxyGroupRequest r;
    r.set_volume(volume);
    r.set_proxy_group_id(group);
    r.set_request_id(request_id);
    return svc_->DeleteVolumeProxyGroup(r).status();
  }
  absl::Status DeleteGroup(uint64_t id, const std::string& request_id = "") {
    pb::DeleteProxyGroupRequest r;
    r.set_id(id);
    r.set_request_id(request_id);
    return svc_->DeleteProxyGroup(r).status();
  }
  uint64_t HeartbeatVersion() {
    pb::HeartbeatRequest r;
    r.set_session_id(session_);
    absl::StatusOr<pb::HeartbeatResponse> h = svc_->Heartbeat(r);
    EXPECT_OK(h);
    return h.ok() ? h->routes_version() : 0;
  }
  pb::GetVolumeRoutesResponse Routes(uint64_t volume_id) {
    pb::GetVolumeRoutesRequest r;
    r.set_volume_id(volume_id);
    absl::StatusOr<pb::GetVolumeRoutesResponse> g = svc_->GetVolumeRoutes(r);
    EXPECT_OK(g);
    return g.ok() ? *g : pb::GetVolumeRoutesResponse();
  }
  std::vector<uint64_t> GroupIds() {
    absl::StatusOr<pb::ListProxyGroupsResponse> l = svc_->ListProxyGroups({});
    EXPECT_OK(l);
    std::vector<uint64_t> ids;
    if (l.ok()) for (const auto& g : l->groups()) ids.push_back(g.id());
    return ids;
  }
  size_t Associations(const std::string& volume = "") {
    pb::ListVolumeProxyGroupsRequest r;
    r.set_volume(volume);
    absl::StatusOr<pb::ListVolumeProxyGroupsResponse> l = svc_->ListVolumeProxyGroups(r);
    EXPECT_OK(l);
    return l.ok() ? l->associations_size() : ~size_t{0};
  }

  TempDir dir_;
  std::string db_path_;
  std::atomic<int64_t> now_{kStart};
  fake::FakeStores stores_;
  std::unique_ptr<MetaService> svc_;
  uint64_t vol_ = 0;
  uint64_t other_ = 0;
  uint64_t session_ = 0;
};

TEST_F(ProxyGroupsTest, AddressesAndCodesAreValidated) {
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {},
           {"p1"},
           {"p1:0"},
           {"p1:65536"},
           {"p1:7430", "p1:7430"},
           {"ftp://p1:7430"},
           {"[::1:7430"},
           {"p1:7430/path"},
           {std::string(250, 'a') + ".example:7430"},
       }) {
    EXPECT_EQ(Code(Create(bad)), absl::StatusCode::kInvalidArgument) << ::testing::PrintToString(bad);
  }
  std::vector<std::string> many;
  for (int i = 0; i < 65; ++i) many.push_back(absl::StrCat("p", i, ":7430"));
  EXPECT_EQ(Code(Create(many)), absl::StatusCode::kInvalidArgument);
  many.pop_back();
  EXPECT_OK(Create(many));
  for (const std::string& code : {std::string(""), std::string("OnPrem"), std::string("a_b"),
                                  std::string(33, 'a')}) {
    EXPECT_EQ(Code(Create({"p1:7430"}, code)), absl::StatusCode::kInvalidArgument) << code;
    EXPECT_EQ(Code(Create({"p1:7430"}, "onprem", code)), absl::StatusCode::kInvalidArgument)
        << code;
  }
  absl::StatusOr<pb::ProxyGroupResponse> g =
      Create({"p1:7430", "http://10.0.0.2:80", "https://[fe80::1]:7430", "[::1]:7430"}, "aws",
             std::string(32, 'z'));
  ASSERT_OK(g);
  EXPECT_THAT(g->group().addresses(), ElementsAre("p1:7430", "http://10.0.0.2:80",
                                                  "https://[fe80::1]:7430", "[::1]:7430"));
  EXPECT_EQ(g->group().created_ns(), kStart);
  EXPECT_EQ(Code(Update(g->group().id(), {"p1:7430", "p1:7430"})),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Update(9999, {"p1:7430"})), absl::StatusCode::kNotFound);
  EXPECT_EQ(GroupIds().size(), 2u) << "nothing invalid was created";
}

TEST_F(ProxyGroupsTest, RetriesWithTheSameRequestIdApplyOnce) {
  absl::StatusOr<pb::ProxyGroupResponse> a = Create({"p1:7430"}, "onprem", "dc1", "rq-create");
  absl::StatusOr<pb::ProxyGroupResponse> b = Create({"p1:7430"}, "onprem", "dc1", "rq-create");
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_EQ(a->group().id(), b->group().id());
  EXPECT_THAT(GroupIds(), ElementsAre(a->group().id()));
  const uint64_t id = a->group().id();

  ASSERT_OK(Associate("vol", id, "rq-assoc"));
  const uint64_t v1 = HeartbeatVersion();
  EXPECT_OK(Associate("vol", id, "rq-assoc")) << "a retry is answered, not AlreadyExists";
  EXPECT_EQ(HeartbeatVersion(), v1) << "a retry bumps nothing";
  EXPECT_EQ(Code(Associate("vol", id, "rq-other")), absl::StatusCode::kAlreadyExists);

  now_ += 1000;
  ASSERT_OK(Update(id, {"p2:7430"}, "rq-update"));
  const uint64_t v2 = HeartbeatVersion();
  EXPECT_EQ(v2, v1 + 1);
  ASSERT_OK(Update(id, {"p2:7430"}, "rq-update"));
  EXPECT_EQ(HeartbeatVersion(), v2);

  ASSERT_OK(Dissociate("vol", id, "rq-dis"));
  EXPECT_OK(Dissociate("vol", id, "rq-dis"));
  EXPECT_EQ(HeartbeatVersion(), v2 + 1);
  EXPECT_EQ(Code(Dissociate("vol", id, "rq-dis2")), absl::StatusCode::kNotFound);

  ASSERT_OK(DeleteGroup(id, "rq-del"));
  EXPECT_OK(DeleteGroup(id, "rq-del"));
  EXPECT_EQ(Code(DeleteGroup(id, "rq-del2")), absl::StatusCode::kNotFound);
  EXPECT_THAT(GroupIds(), IsEmpty());
}

TEST_F(ProxyGroupsTest, EveryChangeBumpsTheVersionOfExactlyTheVolumesItAffects) {
  const uint64_t start = HeartbeatVersion();
  EXPECT_GE(start, 1u);
  EXPECT_EQ(Routes(vol_).routes_version(), start);
  EXPECT_THAT(Routes(vol_).groups(), IsEmpty());
  const uint64_t other_start = Routes(other_).routes_version();

  absl::StatusOr<pb::ProxyGroupResponse> g1 = Create({"p1:7430", "p2:7430"}, "onprem", "dc1");
  absl::StatusOr<pb::ProxyGroupResponse> g2 = Create({"q1:7430"}, "aws", "us-east-1");
  ASSERT_OK(g1);
  ASSERT_OK(g2);
  EXPECT_EQ(HeartbeatVersion(), start) << "a group no volume uses changes no route";

  ASSERT_OK(Associate("vol", g1->group().id()));
  ASSERT_OK(Associate("vol", g2->group().id()));
  EXPECT_EQ(HeartbeatVersion(), start + 2);
  pb::GetVolumeRoutesResponse r = Routes(vol_);
  EXPECT_EQ(r.routes_version(), start + 2);
  ASSERT_EQ(r.groups_size(), 2);
  EXPECT_EQ(r.groups(0).region_code(), "dc1");
  EXPECT_THAT(r.groups(0).addresses(), ElementsAre("p1:7430", "p2:7430"));
  EXPECT_EQ(r.groups(1).provider_code(), "aws");

  // A member joins (order kept) while the volume uses the group: this volume only.
  now_ += 5000;
  absl::StatusOr<pb::ProxyGroupResponse> u = Update(g1->group().id(), {"p3:7430", "p1:7430"});
  ASSERT_OK(u);
  EXPECT_EQ(u->group().updated_ns(), kStart + 5000);
  EXPECT_EQ(u->group().created_ns(), kStart);
  EXPECT_EQ(HeartbeatVersion(), start + 3);
  EXPECT_THAT(Routes(vol_).groups(0).addresses(), ElementsAre("p3:7430", "p1:7430"));
  EXPECT_EQ(Routes(other_).routes_version(), other_start);

  // Shared by two volumes: an update bumps both.
  ASSERT_OK(Associate("other", g1->group().id()));
  EXPECT_EQ(Routes(other_).routes_version(), other_start + 1);
  ASSERT_OK(Update(g1->group().id(), {"p1:7430"}));
  EXPECT_EQ(Routes(other_).routes_version(), other_start + 2);
  EXPECT_EQ(HeartbeatVersion(), start + 4);
  EXPECT_EQ(Associations(), 3u);
  EXPECT_EQ(Associations("other"), 1u);
  EXPECT_EQ(Code(svc_->ListVolumeProxyGroups([] {
              pb::ListVolumeProxyGroupsRequest r;
              r.set_volume("nope");
              return r;
            }())),
            absl::StatusCode::kNotFound);

  // Kept across a restart (persisted, not cached).
  Open();
  EXPECT_EQ(HeartbeatVersion(), start + 4);
  EXPECT_EQ(Routes(vol_).groups_size(), 2);
}

TEST_F(ProxyGroupsTest, GroupInUseCannotBeDeletedAndDeletedVolumesDropTheirAssociations) {
  absl::StatusOr<pb::ProxyGroupResponse> g = Create({"p1:7430"});
  ASSERT_OK(g);
  const uint64_t id = g->group().id();
  EXPECT_EQ(Code(Associate("nope", id)), absl::StatusCode::kNotFound);
  EXPECT_EQ(Code(Associate("vol", id + 100)), absl::StatusCode::kNotFound);
  ASSERT_OK(Associate("vol", id));
  ASSERT_OK(Associate("other", id));
  EXPECT_EQ(Code(DeleteGroup(id)), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(Dissociate("vol", id));
  EXPECT_EQ(Code(DeleteGroup(id)), absl::StatusCode::kFailedPrecondition);

  pb::DeleteVolumeRequest dv;
  dv.set_name("other");
  ASSERT_OK(svc_->DeleteVolume(dv));
  EXPECT_EQ(Associations(), 0u);
  EXPECT_OK(DeleteGroup(id));
  EXPECT_THAT(GroupIds(), IsEmpty());
  pb::GetVolumeRoutesRequest gr;
  gr.set_volume_id(other_);
  EXPECT_EQ(Code(svc_->GetVolumeRoutes(gr)), absl::StatusCode::kNotFound);
}

TEST_F(ProxyGroupsTest, GroupMembersAreKnownProxiesForBlockHolders) {
  pb::MknodRequest mk;
  mk.set_volume_id(vol_);
  mk.set_parent(1);
  mk.set_name("f");
  mk.set_mode(S_IFREG | 0644);
  absl::StatusOr<pb::EntryResponse> e = svc_->Mknod(mk);
  ASSERT_OK(e);
  pb::AllocBlockIdsRequest al;
  al.set_volume_id(vol_);
  al.set_count(4);
  al.set_session_id(session_);
  absl::StatusOr<pb::AllocBlockIdsResponse> ids = svc_->AllocBlockIds(al);
  ASSERT_OK(ids);
  auto commit = [&](uint64_t index, const std::string& holder) {
    pb::CommitBlocksRequest c;
    c.set_volume_id(vol_);
    c.set_ino(e->attr().ino());
    pb::Block* b = c.add_blocks();
    b->set_index(index);
    b->set_id(ids->first_id() + index);
    b->set_length(10);
    b->set_object_size(10);
    b->set_holder(holder);
    return svc_->CommitBlocks(c).status();
  };
  EXPECT_FALSE(commit(0, "p9:7430").ok()) << "not a member of any group yet";
  absl::StatusOr<pb::ProxyGroupResponse> g = Create({"p1:7430"});
  ASSERT_OK(g);
  ASSERT_OK(Update(g->group().id(), {"p1:7430", "http://p9:7430"}));
  EXPECT_OK(commit(0, "http://p9:7430"));
  EXPECT_OK(commit(1, "p1:7430"));
  EXPECT_FALSE(commit(2, "p8:7430").ok());
}

TEST_F(ProxyGroupsTest, SchemaV6DatabaseMigratesToV7) {
  svc_.reset();
  // What a version-6 database looks like.
  RawSql(
      "DROP TABLE proxy_groups; DROP TABLE proxy_group_members; DROP TABLE volume_proxy_groups;"
      "ALTER TABLE volumes DROP COLUMN routes_version;"
      // and without what later versions added (v8: range checksums)
      "ALTER TABLE blocks DROP COLUMN range_crc32c; ALTER TABLE blocks DROP COLUMN range_size;"
      "UPDATE meta SET value = '6' WHERE key = 'schema_version';");
  Open();
  ASSERT_TRUE(svc_);
  const uint64_t v = HeartbeatVersion();
  EXPECT_EQ(v, 1u) << "existing volumes start at version 1";
  absl::StatusOr<pb::ProxyGroupResponse> g = Create({"p1:7430"});
  ASSERT_OK(g);
  ASSERT_OK(Associate("vol", g->group().id()));
  EXPECT_EQ(HeartbeatVersion(), v + 1);
  EXPECT_EQ(Routes(vol_).groups_size(), 1);
}

}  // namespace
}  // namespace nighfs::meta
