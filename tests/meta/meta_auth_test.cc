// nighfs-meta's authentication and authorization over HTTP (issue 11; proxy tokens: issue 12):
// the real daemon, calls under the admin, volume and proxy tokens, raw and through the client.
#include <string>
#include <vector>

#include "tests/common/raw_connection.h"
#include "tests/meta/meta_server_fixture.h"

namespace nighfs::meta_testing {
namespace {

TEST_F(MetaAuthTest, AnonymousWrongExpiredAndRevokedTokensGet401AndChangeNothing) {
  const pb::MkdirRequest mk = MkdirReq(1, "x");
  pb::CreateVolumeRequest cv;
  cv.set_name("evil");
  cv.set_store_url(store_url_ + "/evil");
  EXPECT_EQ(RawStatus("Mkdir", mk, ""), 401);
  EXPECT_EQ(RawStatus("ListVolumes", pb::ListVolumesRequest(), ""), 401);
  EXPECT_EQ(RawStatus("CreateVolume", cv, ""), 401);
  EXPECT_EQ(RawStatus("Mkdir", mk, "nighfs-token-" + std::string(64, '0')), 401);
  EXPECT_EQ(RawStatus("Mkdir", mk, "nighfs-admin-" + std::string(64, '0')), 401);
  EXPECT_EQ(RawStatus("Mkdir", mk, "garbage"), 401);

  // Expired: refused once its time has passed.
  absl::StatusOr<pb::CreateTokenResponse> soon =
      Token(pb::ACCESS_WRITE, "", absl::ToUnixNanos(absl::Now() + absl::Seconds(1)));
  ASSERT_OK(soon);
  absl::SleepFor(absl::Milliseconds(1200));
  EXPECT_EQ(RawStatus("Mkdir", mk, soon->secret()), 401);
  EXPECT_THAT(Client(soon->secret())->Mkdir(mk), StatusIs(absl::StatusCode::kUnauthenticated));

  // Revoked: works, then is refused within the cache interval (--token-cache-ttl 1 here).
  absl::StatusOr<pb::CreateTokenResponse> rev = Token(pb::ACCESS_WRITE);
  ASSERT_OK(rev);
  pb::MkdirRequest ok = MkdirReq(1, "before-revoke");
  EXPECT_EQ(RawStatus("Mkdir", ok, rev->secret()), 200);
  pb::RevokeTokenRequest rt;
  rt.set_id(rev->token().id());
  ASSERT_OK(client_->RevokeToken(rt));
  const absl::Time revoked = absl::Now();
  // (Probed with a read: until the cache interval passes the token still works.)
  pb::GetAttrRequest probe;
  probe.mutable_caller();  // root: the server checks POSIX permissions for it
  probe.set_volume_id(vol_);
  probe.set_ino(1);
  EXPECT_TRUE(WaitFor([&] { return RawStatus("GetAttr", probe, rev->secret()) == 401; },
                      absl::Seconds(5)));
  EXPECT_LT(absl::Now() - revoked, absl::Seconds(3));
  EXPECT_EQ(RawStatus("Mkdir", mk, rev->secret()), 401);

  // Nothing changed: no "x", no volume "evil"; the admin's listing is intact.
  EXPECT_THAT(Names(1), ::testing::ElementsAre("before-revoke"));
  absl::StatusOr<pb::ListVolumesResponse> lv = client_->ListVolumes(pb::ListVolumesRequest());
  ASSERT_OK(lv);
  ASSERT_EQ(lv->volumes_size(), 1);
  EXPECT_EQ(lv->volumes(0).name(), "v");
  // /healthz still answers anyone.
  std::unique_ptr<HttpClient> http = HttpClient::Create();
  HttpRequest health;
  health.url = base_url() + "/healthz";
  absl::StatusOr<HttpResponse> h = http->Do(health);
  ASSERT_OK(h);
  EXPECT_EQ(h->status, 200);
}

// Strangers cannot hold the body budget mounts need: an anonymous or unknown token's request is
// answered when its header arrives, before any of its body is read.
TEST_F(MetaAuthTest, AnonymousRequestsAreRefusedBeforeTheirBodyIsRead) {
  const std::string header = "POST /nighfs.meta.v1.MetaService/Mkdir HTTP/1.1\r\nHost: x\r\n"
                             "Content-Type: application/proto\r\n";
  for (const std::string& auth : {std::string(),
                                 "Authorization: Bearer nighfs-token-" + std::string(64, '0') +
                                     "\r\n"}) {
    RawConnection c(port_);
    ASSERT_TRUE(c.connected());
    // 8 MiB announced, none sent: the old server waited for it (and held its budget).
    ASSERT_TRUE(c.Send(header + auth + "Content-Length: 8388608\r\n\r\n"));
    bool closed = false;
    const std::string reply = c.ReadAll(&closed);
    EXPECT_TRUE(absl::StartsWith(reply, "HTTP/1.1 401")) << reply;
    EXPECT_TRUE(closed);
  }
  // A valid token's request of the same shape gets its body read and answered.
  absl::StatusOr<pb::CreateTokenResponse> w = Token(pb::ACCESS_WRITE);
  ASSERT_OK(w);
  const std::string body = MkdirReq(1, "screened").SerializeAsString();
  RawConnection c(port_);
  ASSERT_TRUE(c.Send(header + "Authorization: Bearer " + w->secret() +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n"));
  ASSERT_TRUE(c.Send(body));
  EXPECT_TRUE(absl::StartsWith(c.ReadUntil("\r\n\r\n"), "HTTP/1.1 200"));
  EXPECT_THAT(Names(1), ::testing::ElementsAre("screened"));
}

TEST_F(MetaAuthTest, ReadTokenAndVolumeTokensGet403ForWhatTheyMayNotDo) {
  absl::StatusOr<pb::CreateTokenResponse> ro = Token(pb::ACCESS_READ);
  ASSERT_OK(ro);
  std::unique_ptr<MetaApi> c = Client(ro->secret(), std::make_shared<MetaSessionKey>());
  pb::MountRequest mr;
  mr.set_volume_name("v");
  absl::StatusOr<pb::MountResponse> m = c->Mount(mr);
  ASSERT_OK(m);
  EXPECT_EQ(m->access(), pb::ACCESS_READ);
  EXPECT_EQ(m->root_path(), "/");
  EXPECT_EQ(m->session_key().size(), 16u);
  secrets_.push_back(absl::BytesToHexString(m->session_key()));
  pb::GetAttrRequest ga;
  ga.mutable_caller();  // root: the server checks POSIX permissions for it
  ga.set_volume_id(vol_);
  ga.set_ino(1);
  EXPECT_OK(c->GetAttr(ga));
  // Writes: 403, and the raw status is 403 too.
  const pb::MkdirRequest mk = MkdirReq(1, "x");
  EXPECT_THAT(c->Mkdir(mk), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(RawStatus("Mkdir", mk, ro->secret()), 403);
  pb::SetAttrRequest sa;
  sa.mutable_caller();  // root: the server checks POSIX permissions for it
  sa.set_volume_id(vol_);
  sa.set_ino(1);
  sa.set_valid(pb::SETATTR_MODE);
  sa.set_mode(0777);
  EXPECT_EQ(RawStatus("SetAttr", sa, ro->secret()), 403);
  // Admin calls: 403 for any volume token, write included.
  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE);
  ASSERT_OK(rw);
  for (const std::string& secret : {ro->secret(), rw->secret()}) {
    EXPECT_EQ(RawStatus("ListVolumes", pb::ListVolumesRequest(), secret), 403);
    pb::CreateTokenRequest ct;
    ct.set_volume("v");
    ct.set_access(pb::ACCESS_WRITE);
    EXPECT_EQ(RawStatus("CreateToken", ct, secret), 403);
    pb::DeleteVolumeRequest dv;
    dv.set_name("v");
    EXPECT_EQ(RawStatus("DeleteVolume", dv, secret), 403);
  }
  // Another volume: 403, also to Mount it.
  pb::CreateVolumeRequest cv;
  cv.set_name("w");
  cv.set_store_url(store_url_ + "/w");
  absl::StatusOr<pb::CreateVolumeResponse> w = client_->CreateVolume(cv);
  ASSERT_OK(w);
  pb::GetAttrRequest other = ga;
  other.set_volume_id(w->volume().id());
  EXPECT_EQ(RawStatus("GetAttr", other, rw->secret()), 403);
  pb::MountRequest mw;
  mw.set_volume_name("w");
  EXPECT_EQ(RawStatus("Mount", mw, rw->secret()), 403);
  EXPECT_THAT(Names(1), ::testing::IsEmpty());
}

// Issue 12: a proxy token reaches the two proxy calls and nothing else; a volume token reaches
// neither (DeadBlocks names a volume_id, which the generic checks alone would let through).
TEST_F(MetaAuthTest, ProxyTokenCallsOnlyTheProxyRpcsAndVolumeTokensNeither) {
  pb::CreateTokenRequest ct;
  ct.set_access(pb::ACCESS_PROXY);
  ct.set_name("edge");
  absl::StatusOr<pb::CreateTokenResponse> proxy = client_->CreateToken(ct);
  ASSERT_OK(proxy);
  secrets_.push_back(proxy->secret());
  EXPECT_EQ(proxy->token().volume(), "");
  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE);
  ASSERT_OK(rw);
  absl::StatusOr<pb::CreateTokenResponse> ro = Token(pb::ACCESS_READ);
  ASSERT_OK(ro);

  pb::AuthorizeBlockAccessRequest auth;
  auth.set_volume("v");
  auth.set_token(rw->secret());
  auth.set_proxy_address("127.0.0.1:7430");
  pb::DeadBlocksRequest dead;
  dead.set_volume_id(vol_);
  dead.add_ids(1);

  // The proxy token: both proxy calls, over the real client too.
  EXPECT_EQ(RawStatus("AuthorizeBlockAccess", auth, proxy->secret()), 200);
  EXPECT_EQ(RawStatus("DeadBlocks", dead, proxy->secret()), 200);
  std::unique_ptr<MetaApi> p = Client(proxy->secret());
  absl::StatusOr<pb::AuthorizeBlockAccessResponse> a = p->AuthorizeBlockAccess(auth);
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_WRITE);
  EXPECT_EQ(a->volume().id(), vol_);
  EXPECT_EQ(a->volume().store_url(), store_url_);
  // The admin token as the client's: write access (the server knows its own admin token).
  auth.set_token(admin_token_);
  a = p->AuthorizeBlockAccess(auth);
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_WRITE);
  auth.set_token(ro->secret());
  a = p->AuthorizeBlockAccess(auth);
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_READ);
  auth.set_token("nighfs-token-" + std::string(64, '0'));
  EXPECT_THAT(p->AuthorizeBlockAccess(auth), StatusIs(absl::StatusCode::kUnauthenticated));
  auth.set_token(rw->secret());

  // ... and nothing else: every other kind of call is 403, also ones naming no volume.
  EXPECT_EQ(RawStatus("GetAttr", [&] {
              pb::GetAttrRequest ga;
              ga.mutable_caller();
              ga.set_volume_id(vol_);
              ga.set_ino(1);
              return ga;
            }(), proxy->secret()),
            403);
  EXPECT_EQ(RawStatus("Mkdir", MkdirReq(1, "x"), proxy->secret()), 403);
  pb::MountRequest mr;
  mr.set_volume_name("v");
  EXPECT_EQ(RawStatus("Mount", mr, proxy->secret()), 403);
  EXPECT_EQ(RawStatus("ListVolumes", pb::ListVolumesRequest(), proxy->secret()), 403);
  EXPECT_EQ(RawStatus("ListTokens", pb::ListTokensRequest(), proxy->secret()), 403);
  pb::CreateTokenRequest mint;
  mint.set_volume("v");
  mint.set_access(pb::ACCESS_WRITE);
  EXPECT_EQ(RawStatus("CreateToken", mint, proxy->secret()), 403);
  pb::AllocBlockIdsRequest alloc;
  alloc.set_volume_id(vol_);
  alloc.set_count(1);
  EXPECT_EQ(RawStatus("AllocBlockIds", alloc, proxy->secret()), 403);

  // Volume tokens, read or write, of the very volume named: 403 for both proxy calls.
  for (const std::string& secret : {rw->secret(), ro->secret()}) {
    EXPECT_EQ(RawStatus("AuthorizeBlockAccess", auth, secret), 403);
    EXPECT_EQ(RawStatus("DeadBlocks", dead, secret), 403);
  }
  // No token at all: 401.
  EXPECT_EQ(RawStatus("DeadBlocks", dead, ""), 401);
  EXPECT_EQ(RawStatus("AuthorizeBlockAccess", auth, ""), 401);
  // The admin may call both.
  EXPECT_OK(client_->DeadBlocks(dead));
  EXPECT_OK(client_->AuthorizeBlockAccess(auth));

  // Revoked: the proxy token is refused (401) within the cache interval (1 s here).
  pb::RevokeTokenRequest rt;
  rt.set_id(proxy->token().id());
  ASSERT_OK(client_->RevokeToken(rt));
  EXPECT_TRUE(WaitFor([&] { return RawStatus("DeadBlocks", dead, proxy->secret()) == 401; },
                      absl::Seconds(5)));
  EXPECT_THAT(Names(1), ::testing::IsEmpty()) << "nothing was created";
}

TEST_F(MetaAuthTest, ProxyGroupsAreAdminOnlyAndRoutesAreScopedToTheVolume) {
  pb::CreateVolumeRequest cv;
  cv.set_name("w");
  cv.set_store_url(store_url_ + "/w");
  absl::StatusOr<pb::CreateVolumeResponse> w = client_->CreateVolume(cv);
  ASSERT_OK(w);
  pb::CreateProxyGroupRequest cg;
  cg.set_provider_code("onprem");
  cg.set_region_code("dc1");
  cg.add_addresses("127.0.0.1:7430");
  absl::StatusOr<pb::ProxyGroupResponse> g = client_->CreateProxyGroup(cg);
  ASSERT_OK(g);
  pb::CreateVolumeProxyGroupRequest assoc;
  assoc.set_volume("v");
  assoc.set_proxy_group_id(g->group().id());
  ASSERT_OK(client_->CreateVolumeProxyGroup(assoc));

  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE);
  absl::StatusOr<pb::CreateTokenResponse> ro = Token(pb::ACCESS_READ);
  ASSERT_OK(rw);
  ASSERT_OK(ro);
  pb::MkdirRequest md = MkdirReq(1, "sub");
  ASSERT_OK(client_->Mkdir(md));
  absl::StatusOr<pb::CreateTokenResponse> sub = Token(pb::ACCESS_READ, "/sub");
  ASSERT_OK(sub);
  pb::CreateTokenRequest ct;
  ct.set_access(pb::ACCESS_PROXY);
  absl::StatusOr<pb::CreateTokenResponse> proxy = client_->CreateToken(ct);
  ASSERT_OK(proxy);
  secrets_.push_back(proxy->secret());

  pb::GetVolumeRoutesRequest mine;
  mine.set_volume_id(vol_);
  pb::GetVolumeRoutesRequest theirs;
  theirs.set_volume_id(w->volume().id());
  for (const std::string& secret : {rw->secret(), ro->secret(), sub->secret()}) {
    EXPECT_EQ(RawStatus("GetVolumeRoutes", mine, secret), 200);
    EXPECT_EQ(RawStatus("GetVolumeRoutes", theirs, secret), 403);
  }
  absl::StatusOr<pb::GetVolumeRoutesResponse> routes = Client(ro->secret())->GetVolumeRoutes(mine);
  ASSERT_OK(routes);
  ASSERT_EQ(routes->groups_size(), 1);
  EXPECT_EQ(routes->groups(0).addresses(0), "127.0.0.1:7430");
  EXPECT_OK(client_->GetVolumeRoutes(theirs));
  EXPECT_EQ(RawStatus("GetVolumeRoutes", mine, proxy->secret()), 403);
  EXPECT_EQ(RawStatus("GetVolumeRoutes", mine, ""), 401);

  // Configuration: the admin only; volume and proxy tokens get 403 and change nothing.
  pb::UpdateProxyGroupRequest ug;
  ug.set_id(g->group().id());
  ug.add_addresses("attacker.example:443");
  pb::DeleteProxyGroupRequest dg;
  dg.set_id(g->group().id());
  pb::ListVolumeProxyGroupsRequest lv;
  lv.set_volume("v");
  pb::DeleteVolumeProxyGroupRequest dv;
  dv.set_volume("v");
  dv.set_proxy_group_id(g->group().id());
  for (const std::string& secret : {rw->secret(), ro->secret(), proxy->secret()}) {
    EXPECT_EQ(RawStatus("CreateProxyGroup", cg, secret), 403);
    EXPECT_EQ(RawStatus("UpdateProxyGroup", ug, secret), 403);
    EXPECT_EQ(RawStatus("ListProxyGroups", pb::ListProxyGroupsRequest(), secret), 403);
    EXPECT_EQ(RawStatus("DeleteProxyGroup", dg, secret), 403);
    EXPECT_EQ(RawStatus("CreateVolumeProxyGroup", assoc, secret), 403);
    EXPECT_EQ(RawStatus("ListVolumeProxyGroups", lv, secret), 403);
    EXPECT_EQ(RawStatus("DeleteVolumeProxyGroup", dv, secret), 403);
  }
  absl::StatusOr<pb::ListProxyGroupsResponse> groups = client_->ListProxyGroups({});
  ASSERT_OK(groups);
  ASSERT_EQ(groups->groups_size(), 1);
  EXPECT_EQ(groups->groups(0).addresses_size(), 1);
  EXPECT_EQ(groups->groups(0).addresses(0), "127.0.0.1:7430");
  absl::StatusOr<pb::ListVolumeProxyGroupsResponse> assocs = client_->ListVolumeProxyGroups(lv);
  ASSERT_OK(assocs);
  EXPECT_EQ(assocs->associations_size(), 1);
}

TEST_F(MetaAuthTest, SubtreeTokenCannotReachOutsideItsSubtree) {
  const pb::Attr a = Mkdir(1, "a");
  const pb::Attr in = Mkdir(a.ino(), "in");
  const pb::Attr b = Mkdir(1, "b");
  pb::MknodRequest mn;
  mn.mutable_caller();  // root: the server checks POSIX permissions for it
  mn.set_volume_id(vol_);
  mn.set_parent(b.ino());
  mn.set_name("secret");
  mn.set_mode(S_IFREG | 0600);
  absl::StatusOr<pb::EntryResponse> secret = client_->Mknod(mn);
  ASSERT_OK(secret);
  absl::StatusOr<pb::CreateTokenResponse> t = Token(pb::ACCESS_WRITE, "/a/");
  ASSERT_OK(t);
  EXPECT_EQ(t->token().path(), "/a");
  std::unique_ptr<MetaApi> c = Client(t->secret(), std::make_shared<MetaSessionKey>());
  pb::MountRequest mr;
  mr.set_volume_name("v");
  absl::StatusOr<pb::MountResponse> m = c->Mount(mr);
  ASSERT_OK(m);
  EXPECT_EQ(m->root().ino(), a.ino());
  EXPECT_EQ(m->root_path(), "/a");

  auto denied = [](const auto& r) {
    return !r.ok() && r.status().code() == absl::StatusCode::kPermissionDenied;
  };
  pb::GetAttrRequest ga;
  ga.mutable_caller();  // root: the server checks POSIX permissions for it
  ga.set_volume_id(vol_);
  ga.set_ino(in.ino());
  EXPECT_OK(c->GetAttr(ga));
  for (uint64_t outside : {uint64_t{1}, b.ino(), secret->attr().ino()}) {
    ga.set_ino(outside);
    EXPECT_TRUE(denied(c->GetAttr(ga))) << outside;
  }
  pb::LookupRequest lk;
  lk.mutable_caller();  // root: the server checks POSIX permissions for it
  lk.set_volume_id(vol_);
  lk.set_parent(1);
  lk.set_name("b");
  EXPECT_TRUE(denied(c->Lookup(lk)));
  // ".." is no name the server resolves, at the subtree root or anywhere.
  lk.set_parent(a.ino());
  lk.set_name("..");
  EXPECT_EQ(StatusToErrno(c->Lookup(lk).status()), EINVAL);
  // A hard link into the subtree of a file outside it.
  pb::LinkRequest ln;
  ln.mutable_caller();  // root: the server checks POSIX permissions for it
  ln.set_volume_id(vol_);
  ln.set_ino(secret->attr().ino());
  ln.set_new_parent(a.ino());
  ln.set_new_name("stolen");
  EXPECT_TRUE(denied(c->Link(ln)));
  // Renames out of it, into it from outside, and of its root.
  pb::RenameRequest rn;
  rn.mutable_caller();  // root: the server checks POSIX permissions for it
  rn.set_volume_id(vol_);
  rn.set_parent(a.ino());
  rn.set_name("in");
  rn.set_new_parent(b.ino());
  rn.set_new_name("in");
  EXPECT_TRUE(denied(c->Rename(rn)));
  rn.set_parent(b.ino());
  rn.set_name("secret");
  rn.set_new_parent(a.ino());
  rn.set_new_name("secret");
  EXPECT_TRUE(denied(c->Rename(rn)));
  rn.set_parent(1);
  rn.set_name("a");
  rn.set_new_parent(a.ino());
  rn.set_new_name("x");
  EXPECT_TRUE(denied(c->Rename(rn)));
  pb::RmdirRequest rd;
  rd.mutable_caller();  // root: the server checks POSIX permissions for it
  rd.set_volume_id(vol_);
  rd.set_parent(1);
  rd.set_name("a");
  EXPECT_TRUE(denied(c->Rmdir(rd)));
  // Inside it, all works: a symlink whose target is absolute is only text (the kernel of the
  // mount resolves it, in the client's namespace).
  pb::SymlinkRequest sl;
  sl.mutable_caller();  // root: the server checks POSIX permissions for it
  sl.set_volume_id(vol_);
  sl.set_parent(a.ino());
  sl.set_name("abs");
  sl.set_target("/b/secret");
  absl::StatusOr<pb::EntryResponse> link = c->Symlink(sl);
  ASSERT_OK(link);
  pb::ReadlinkRequest rl;
  rl.mutable_caller();  // root: the server checks POSIX permissions for it
  rl.set_volume_id(vol_);
  rl.set_ino(link->attr().ino());
  absl::StatusOr<pb::ReadlinkResponse> target = c->Readlink(rl);
  ASSERT_OK(target);
  EXPECT_EQ(target->target(), "/b/secret");
  // Nothing outside changed.
  EXPECT_THAT(Names(1), ::testing::UnorderedElementsAre("a", "b"));
  EXPECT_THAT(Names(b.ino()), ::testing::ElementsAre("secret"));
  EXPECT_THAT(Names(a.ino()), ::testing::UnorderedElementsAre("in", "abs"));
}

TEST_F(MetaAuthTest, SessionsAreBoundToTheirTokenAndKey) {
  absl::StatusOr<pb::CreateTokenResponse> t1 = Token(pb::ACCESS_WRITE);
  absl::StatusOr<pb::CreateTokenResponse> t2 = Token(pb::ACCESS_WRITE);
  ASSERT_OK(t1);
  ASSERT_OK(t2);
  auto key1 = std::make_shared<MetaSessionKey>();
  auto key2 = std::make_shared<MetaSessionKey>();
  std::unique_ptr<MetaApi> c1 = Client(t1->secret(), key1);
  std::unique_ptr<MetaApi> c2 = Client(t2->secret(), key2);
  pb::MountRequest mr;
  mr.set_volume_name("v");
  absl::StatusOr<pb::MountResponse> m1 = c1->Mount(mr);
  absl::StatusOr<pb::MountResponse> m2 = c2->Mount(mr);
  ASSERT_OK(m1);
  ASSERT_OK(m2);
  EXPECT_NE(m1->session_key(), m2->session_key());
  secrets_.push_back(absl::BytesToHexString(m1->session_key()));
  secrets_.push_back(absl::BytesToHexString(m2->session_key()));
  pb::HeartbeatRequest hb;
  hb.set_session_id(m1->session_id());
  pb::UnmountRequest um;
  um.set_session_id(m1->session_id());
  // No key yet: refused.
  EXPECT_THAT(c1->Heartbeat(hb), StatusIs(absl::StatusCode::kPermissionDenied));
  key1->Set(m1->session_key());
  key2->Set(m2->session_key());
  EXPECT_OK(c1->Heartbeat(hb));
  // Another token with its own valid key, and the right token with a wrong key: refused.
  EXPECT_THAT(c2->Heartbeat(hb), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(c2->Unmount(um), StatusIs(absl::StatusCode::kPermissionDenied));
  auto wrong = std::make_shared<MetaSessionKey>();
  wrong->Set(std::string(16, 'k'));
  EXPECT_THAT(Client(t1->secret(), wrong)->Unmount(um),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // The same key with another token (stolen key): refused.
  EXPECT_THAT(Client(t2->secret(), key1)->Unmount(um),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // AllocBlockIds and Release name a session too.
  pb::AllocBlockIdsRequest ab;
  ab.set_volume_id(vol_);
  ab.set_count(1);
  ab.set_session_id(m1->session_id());
  EXPECT_THAT(c2->AllocBlockIds(ab), StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_OK(c1->AllocBlockIds(ab));
  // The session survived all that; its owner ends it.
  EXPECT_OK(c1->Heartbeat(hb));
  EXPECT_OK(c1->Unmount(um));
  EXPECT_THAT(c1->Heartbeat(hb), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MetaAuthTest, CreateVolumeWithoutTheAdminTokenContactsNoStore) {
  absl::StatusOr<std::unique_ptr<testing::FaultProxy>> store =
      testing::FaultProxy::Start(absl::StrCat("http://127.0.0.1:", testing::FreeLoopbackPort()));
  ASSERT_OK(store);
  pb::CreateVolumeRequest cv;
  cv.set_name("s3");
  cv.set_store_url("s3://bucket/p?region=us-east-1&endpoint=" + (*store)->url());
  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE);
  ASSERT_OK(rw);
  EXPECT_EQ(RawStatus("CreateVolume", cv, ""), 401);
  EXPECT_EQ(RawStatus("CreateVolume", cv, rw->secret()), 403);
  EXPECT_EQ((*store)->requests_seen(), 0);
  // The control: the admin's request does reach the store (and fails there).
  EXPECT_FALSE(client_->CreateVolume(cv).ok());
  EXPECT_GT((*store)->requests_seen(), 0);

  // file:// outside every --allow-file-root: one message whether the path exists or not, and
  // nothing is created.
  const std::string missing = dir_.path() + "-outside/new";
  absl::Status s1, s2;
  cv.set_store_url("file://" + missing);
  s1 = client_->CreateVolume(cv).status();
  cv.set_store_url("file:///etc");
  s2 = client_->CreateVolume(cv).status();
  EXPECT_THAT(s1, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(s2, StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_EQ(absl::StrReplaceAll(s1.message(), {{missing, "P"}}),
            absl::StrReplaceAll(s2.message(), {{"/etc", "P"}}));
  struct stat st;
  EXPECT_NE(::stat((dir_.path() + "-outside").c_str(), &st), 0);
  // A link inside an allowed root pointing out of it is outside too.
  ASSERT_EQ(::symlink("/etc", (dir_.path() + "/escape").c_str()), 0);
  cv.set_store_url("file://" + dir_.path() + "/escape/nighfs");
  EXPECT_THAT(client_->CreateVolume(cv).status(), StatusIs(absl::StatusCode::kPermissionDenied));
}

// Server-side POSIX checks over HTTP, under a valid write token: the token does not make its
// holder root. An unprivileged caller cannot chmod, chown or open for reading another user's
// 0600 file; the owner can; the file is unchanged after the refusals.
TEST_F(MetaAuthTest, ValidTokenDoesNotLetACallerPastPosixPermissions) {
  pb::MknodRequest mn;
  mn.set_volume_id(vol_);
  mn.set_parent(1);
  mn.set_name("alice-only");
  mn.set_mode(S_IFREG | 0600);
  mn.set_uid(1001);
  mn.set_gid(1001);
  absl::StatusOr<pb::EntryResponse> file = client_->Mknod(mn);
  ASSERT_OK(file);
  const uint64_t ino = file->attr().ino();
  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE);
  ASSERT_OK(rw);
  std::unique_ptr<MetaApi> c = Client(rw->secret());
  auto as = [](uint32_t uid, auto* req) {
    req->mutable_caller()->set_uid(uid);
    req->mutable_caller()->set_gid(uid);
  };
  pb::SetAttrRequest chmod;
  chmod.set_volume_id(vol_);
  chmod.set_ino(ino);
  chmod.set_valid(pb::SETATTR_MODE);
  chmod.set_mode(0644);
  as(1002, &chmod);
  EXPECT_EQ(StatusToErrno(c->SetAttr(chmod).status()), EPERM);
  pb::SetAttrRequest chown = chmod;
  chown.set_valid(pb::SETATTR_UID | pb::SETATTR_GID);
  chown.set_uid(1002);
  chown.set_gid(1002);
  EXPECT_EQ(StatusToErrno(c->SetAttr(chown).status()), EPERM);
  pb::GetBlocksRequest read;
  read.set_volume_id(vol_);
  read.set_ino(ino);
  read.set_open_access(4);
  as(1002, &read);
  EXPECT_EQ(StatusToErrno(c->GetBlocks(read).status()), EACCES);
  // Unchanged, and the owner may do it all.
  pb::GetAttrRequest ga;
  ga.set_volume_id(vol_);
  ga.set_ino(ino);
  absl::StatusOr<pb::AttrResponse> attr = client_->GetAttr(ga);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->attr().mode() & 07777, 0600u);
  EXPECT_EQ(attr->attr().uid(), 1001u);
  as(1001, &read);
  EXPECT_OK(c->GetBlocks(read));
  as(1001, &chmod);
  EXPECT_OK(c->SetAttr(chmod));
}

// EntryResponse.parent_unchanged speaks for the session named in changer_session_id only when
// that session's key came with the request; a session that fails the check is "nobody", and
// the call itself goes through (an expired session must not fail a create).
TEST_F(MetaAuthTest, ParentUnchangedSpeaksOnlyForASessionWhoseKeyCame) {
  absl::StatusOr<pb::CreateTokenResponse> t = Token(pb::ACCESS_WRITE);
  ASSERT_OK(t);
  auto key = std::make_shared<MetaSessionKey>();
  std::unique_ptr<MetaApi> c = Client(t->secret(), key);
  pb::MountRequest mr;
  mr.set_volume_name("v");
  absl::StatusOr<pb::MountResponse> m = c->Mount(mr);
  ASSERT_OK(m);
  secrets_.push_back(absl::BytesToHexString(m->session_key()));
  key->Set(m->session_key());
  auto mkdir = [&](MetaApi* api, const std::string& name, uint64_t session) {
    pb::MkdirRequest r;
    r.set_volume_id(vol_);
    r.set_parent(1);
    r.set_name(name);
    r.set_mode(0755);
    r.mutable_caller();  // root
    r.set_changer_session_id(session);
    return api->Mkdir(r);
  };
  auto mknod = [&](MetaApi* api, uint64_t parent, const std::string& name, uint64_t session) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_mode(S_IFREG | 0644);
    r.mutable_caller();
    r.set_changer_session_id(session);
    return api->Mknod(r);
  };
  absl::StatusOr<pb::EntryResponse> d = mkdir(c.get(), "d", m->session_id());
  ASSERT_OK(d);
  absl::StatusOr<pb::EntryResponse> f = mknod(c.get(), d->attr().ino(), "a", m->session_id());
  ASSERT_OK(f);
  EXPECT_TRUE(f->parent_unchanged());
  f = mknod(c.get(), d->attr().ino(), "b", m->session_id());
  ASSERT_OK(f);
  EXPECT_TRUE(f->parent_unchanged());
  // The same session named with a wrong key (or none): the call is made, by nobody.
  auto wrong = std::make_shared<MetaSessionKey>();
  wrong->Set(std::string(16, 'k'));
  f = mknod(Client(t->secret(), wrong).get(), d->attr().ino(), "c", m->session_id());
  ASSERT_OK(f);
  EXPECT_FALSE(f->parent_unchanged());
  f = mknod(c.get(), d->attr().ino(), "e", m->session_id());
  ASSERT_OK(f);
  EXPECT_FALSE(f->parent_unchanged());  // "nobody" changed it in between
  f = mknod(Client(t->secret()).get(), d->attr().ino(), "g", m->session_id());
  ASSERT_OK(f);
  EXPECT_FALSE(f->parent_unchanged());
}

}  // namespace
}  // namespace nighfs::meta_testing
