// The metadata server's side of nighfs-proxy (issue 12), driven directly through MetaService
// with a temporary SQLite file, an injected clock and in-memory fake block stores: proxy
// tokens, AuthorizeBlockAccess, the known proxies a Block.holder must name, DeadBlocks with GC
// tombstones, and the schema v5 -> v6 migration. Who may call what over HTTP is
// meta_server_test.cc's (MetaAuthTest.ProxyTokenCallsOnlyTheProxyRpcsAndVolumeTokensNeither).
#include <sqlite3.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/errno_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "meta/principal.h"
#include "meta/schema.h"
#include "tests/meta/fake_store.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta {
namespace {

using ::nighfs::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kRoot = 1;
constexpr uint32_t kBs = 64 * 1024;
constexpr int64_t kStart = int64_t{1'700'000'000} * 1'000'000'000;
const std::string kAdminSecret = "nighfs-admin-" + std::string(64, 'a');
constexpr char kProxy[] = "http://127.0.0.1:7430";

template <class T>
int Errno(const T& s) {
  return StatusToErrno(::nighfs::testing::GetStatus(s));
}

template <class T>
absl::StatusCode Code(const T& s) {
  return ::nighfs::testing::GetStatus(s).code();
}

class ProxyOpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() + "/meta.db";
    Open();
    ASSERT_TRUE(svc_);
    vol_ = CreateVolume("vol", "mem://vol-a");
    other_ = CreateVolume("other", "mem://vol-b");
    ASSERT_NE(vol_, 0u);
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
    o.gc_grace = absl::Seconds(30);
    o.gc_tombstone_retention = absl::Hours(1);
    o.admin_token_sha256 = Sha256(kAdminSecret);
    o.now_ns = [this] { return now_.load(); };
    o.open_store = [this](const std::string& url) { return stores_.Open(url); };
    o.allow_test_stores = true;
    absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
    ASSERT_OK(s);
    svc_ = std::move(*s);
  }

  void Advance(absl::Duration d) { now_ += absl::ToInt64Nanoseconds(d); }

  // One integer from the database file, read behind the service's back.
  int64_t RawInt(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    int64_t v = -1;
    if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
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

  uint64_t CreateVolume(const std::string& name, const std::string& url) {
    pb::CreateVolumeRequest r;
    r.set_name(name);
    r.set_store_url(url);
    r.set_block_size(kBs);
    absl::StatusOr<pb::CreateVolumeResponse> v = svc_->CreateVolume(r);
    EXPECT_OK(v);
    return v.ok() ? v->volume().id() : 0;
  }

  absl::StatusOr<pb::CreateTokenResponse> Token(pb::Access access, const std::string& volume,
                                                const std::string& name = "",
                                                int64_t expires_ns = 0,
                                                const std::string& path = "") {
    pb::CreateTokenRequest r;
    r.set_volume(volume);
    r.set_access(access);
    r.set_name(name);
    r.set_expires_ns(expires_ns);
    r.set_path(path);
    return svc_->CreateToken(r);
  }

  absl::StatusOr<pb::AuthorizeBlockAccessResponse> Authorize(
      const std::string& volume, const std::string& secret,
      const std::string& proxy_address = kProxy) {
    pb::AuthorizeBlockAccessRequest r;
    r.set_volume(volume);
    r.set_token(secret);
    r.set_proxy_address(proxy_address);
    return svc_->AuthorizeBlockAccess(r);
  }

  absl::StatusOr<std::vector<uint64_t>> Dead(const std::vector<uint64_t>& ids,
                                             uint64_t vol = 0) {
    pb::DeadBlocksRequest r;
    r.set_volume_id(vol == 0 ? vol_ : vol);
    for (uint64_t id : ids) r.add_ids(id);
    absl::StatusOr<pb::DeadBlocksResponse> d = svc_->DeadBlocks(r);
    if (!d.ok()) return d.status();
    return std::vector<uint64_t>(d->dead_ids().begin(), d->dead_ids().end());
  }

  std::vector<uint64_t> DeadIds(const std::vector<uint64_t>& ids, uint64_t vol = 0) {
    absl::StatusOr<std::vector<uint64_t>> d = Dead(ids, vol);
    EXPECT_OK(d);
    return d.ok() ? *d : std::vector<uint64_t>{~uint64_t{0}};
  }

  uint64_t Mknod(const std::string& name) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(kRoot);
    r.set_name(name);
    r.set_mode(S_IFREG | 0644);
    absl::StatusOr<pb::EntryResponse> e = svc_->Mknod(r);
    EXPECT_OK(e);
    return e.ok() ? e->attr().ino() : 0;
  }

  uint64_t Alloc(uint32_t count, uint64_t session) {
    pb::AllocBlockIdsRequest r;
    r.set_volume_id(vol_);
    r.set_count(count);
    r.set_session_id(session);
    absl::StatusOr<pb::AllocBlockIdsResponse> a = svc_->AllocBlockIds(r);
    EXPECT_OK(a);
    return a.ok() ? a->first_id() : 0;
  }

  static pb::Block MakeBlock(uint64_t index, uint64_t id, const std::string& holder = "") {
    pb::Block b;
    b.set_index(index);
    b.set_id(id);
    b.set_length(10);
    b.set_object_size(10);
    b.set_holder(holder);
    return b;
  }

  absl::Status Commit(uint64_t ino, const std::vector<pb::Block>& blocks) {
    pb::CommitBlocksRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    for (const pb::Block& b : blocks) *r.add_blocks() = b;
    return svc_->CommitBlocks(r).status();
  }

  std::vector<pb::Block> Blocks(uint64_t ino) {
    pb::GetBlocksRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    absl::StatusOr<pb::GetBlocksResponse> b = svc_->GetBlocks(r);
    EXPECT_OK(b);
    if (!b.ok()) return {};
    return std::vector<pb::Block>(b->blocks().begin(), b->blocks().end());
  }

  int64_t CollectGarbage() {
    absl::StatusOr<int64_t> n = svc_->RunGcOnce();
    EXPECT_OK(n);
    return n.ok() ? *n : -1;
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

// ---- proxy tokens ----

TEST_F(ProxyOpsTest, ProxyTokensAreBoundToNoVolume) {
  EXPECT_EQ(Code(Token(pb::ACCESS_PROXY, "vol")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Token(pb::ACCESS_PROXY, "", "", 0, "/d")), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Code(Token(pb::ACCESS_UNSPECIFIED, "vol")), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<pb::CreateTokenResponse> p = Token(pb::ACCESS_PROXY, "", "edge");
  ASSERT_OK(p);
  EXPECT_EQ(p->token().volume(), "");
  EXPECT_EQ(p->token().access(), pb::ACCESS_PROXY);
  EXPECT_EQ(p->token().path(), "/");
  EXPECT_EQ(Code(Token(pb::ACCESS_PROXY, "", "edge")), absl::StatusCode::kAlreadyExists);
  // A volume token may share the name: names are unique per volume, proxies are none.
  ASSERT_OK(Token(pb::ACCESS_WRITE, "vol", "edge"));

  absl::StatusOr<std::optional<TokenGrant>> g = svc_->FindToken(p->secret());
  ASSERT_OK(g);
  ASSERT_TRUE(g->has_value());
  EXPECT_TRUE((*g)->proxy);
  EXPECT_FALSE((*g)->can_write);
  EXPECT_EQ((*g)->volume_id, 0u);

  pb::ListTokensRequest all;
  absl::StatusOr<pb::ListTokensResponse> l = svc_->ListTokens(all);
  ASSERT_OK(l);
  ASSERT_EQ(l->tokens_size(), 2);
  EXPECT_EQ(l->tokens(0).id(), p->token().id());
  EXPECT_EQ(l->tokens(0).volume(), "");
  pb::ListTokensRequest of_vol;
  of_vol.set_volume("vol");
  l = svc_->ListTokens(of_vol);
  ASSERT_OK(l);
  ASSERT_EQ(l->tokens_size(), 1);
  EXPECT_EQ(l->tokens(0).access(), pb::ACCESS_WRITE);

  // Deleting a volume leaves proxy tokens alone.
  pb::DeleteVolumeRequest dv;
  dv.set_name("other");
  ASSERT_OK(svc_->DeleteVolume(dv));
  g = svc_->FindToken(p->secret());
  ASSERT_OK(g);
  EXPECT_TRUE(g->has_value());

  pb::RevokeTokenRequest rv;
  rv.set_id(p->token().id());
  ASSERT_OK(svc_->RevokeToken(rv));
  l = svc_->ListTokens(all);
  ASSERT_OK(l);
  ASSERT_EQ(l->tokens_size(), 1);
  // Revoked: the name is free again.
  EXPECT_OK(Token(pb::ACCESS_PROXY, "", "edge"));
}

// ---- AuthorizeBlockAccess ----

TEST_F(ProxyOpsTest, AuthorizeBlockAccessAnswersForEachKindOfSecret) {
  absl::StatusOr<pb::CreateTokenResponse> rw = Token(pb::ACCESS_WRITE, "vol");
  ASSERT_OK(rw);
  pb::MkdirRequest mk;
  mk.set_volume_id(vol_);
  mk.set_parent(kRoot);
  mk.set_name("d");
  mk.set_mode(0755);
  ASSERT_OK(svc_->Mkdir(mk));
  const int64_t expires = now_.load() + absl::ToInt64Nanoseconds(absl::Minutes(5));
  absl::StatusOr<pb::CreateTokenResponse> ro = Token(pb::ACCESS_READ, "vol", "", expires, "/d");
  ASSERT_OK(ro);

  absl::StatusOr<pb::AuthorizeBlockAccessResponse> a = Authorize("vol", rw->secret());
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_WRITE);
  EXPECT_EQ(a->volume().id(), vol_);
  EXPECT_EQ(a->volume().name(), "vol");
  EXPECT_EQ(a->volume().store_url(), "mem://vol-a");
  EXPECT_EQ(a->volume().block_size(), kBs);
  EXPECT_EQ(a->expires_ns(), 0);
  EXPECT_EQ(a->path(), "/");

  a = Authorize("vol", ro->secret());
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_READ);
  EXPECT_EQ(a->expires_ns(), expires);
  EXPECT_EQ(a->path(), "/d");

  // The admin secret: write on any volume; an unknown volume is NotFound for it.
  a = Authorize("other", kAdminSecret);
  ASSERT_OK(a);
  EXPECT_EQ(a->access(), pb::ACCESS_WRITE);
  EXPECT_EQ(a->volume().id(), other_);
  EXPECT_EQ(a->volume().store_url(), "mem://vol-b");
  EXPECT_EQ(Code(Authorize("nope", kAdminSecret)), absl::StatusCode::kNotFound);
  EXPECT_EQ(Code(Authorize("vol", "nighfs-admin-" + std::string(64, 'b'))),
            absl::StatusCode::kUnauthenticated);

  // Unknown, empty: 401.
  EXPECT_EQ(Code(Authorize("vol", "nighfs-token-" + std::string(64, '0'))),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Code(Authorize("vol", "")), absl::StatusCode::kUnauthenticated);
  // Another volume's token, or a proxy token as the client's: 403.
  EXPECT_EQ(Code(Authorize("other", rw->secret())), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(Code(Authorize("nope", rw->secret())), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<pb::CreateTokenResponse> px = Token(pb::ACCESS_PROXY, "");
  ASSERT_OK(px);
  EXPECT_EQ(Code(Authorize("vol", px->secret())), absl::StatusCode::kPermissionDenied);

  // Expired: 401 from its expiry on.
  Advance(absl::Minutes(5));
  EXPECT_EQ(Code(Authorize("vol", ro->secret())), absl::StatusCode::kUnauthenticated);
  // Revoked: 401 at once (no cache in the service; the proxy caches).
  pb::RevokeTokenRequest rv;
  rv.set_id(rw->token().id());
  ASSERT_OK(svc_->RevokeToken(rv));
  EXPECT_EQ(Code(Authorize("vol", rw->secret())), absl::StatusCode::kUnauthenticated);
}

TEST_F(ProxyOpsTest, ProxyAddressesAreCheckedAndRecordedCheaply) {
  for (const std::string& bad : std::vector<std::string>{"127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http", ":7430", "a b:1",
        "evil/../x:1", "[zz]:1", "[::1:1", "-x:1", "ftp://h:1", "h:1\n",
        std::string(251, 'h') + ":7430"}) {
    EXPECT_EQ(Code(Authorize("vol", kAdminSecret, bad)), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM known_proxies"), 0) << "nothing recorded for bad ones";
  for (const std::string good : {"proxy-1.example.com:7430", "http://127.0.0.1:7430",
                                 "https://p_2:1", "[::1]:7430", "http://[fe80::1]:65535"}) {
    EXPECT_OK(Authorize("vol", kAdminSecret, good)) << good;
  }
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM known_proxies"), 5);
  // Recorded even when the client's secret is refused: the proxy itself is authenticated.
  EXPECT_EQ(Code(Authorize("vol", "nighfs-token-x", "edge:7430")),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM known_proxies WHERE address = 'edge:7430'"), 1);
  // No proxy address (the admin asking for itself): nothing recorded.
  ASSERT_OK(Authorize("vol", kAdminSecret, ""));
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM known_proxies"), 6);

  // The hot path writes at most once a minute per address (and token).
  const std::string seen = "SELECT last_seen_ns FROM known_proxies WHERE address = 'edge:7430'";
  const int64_t first = RawInt(seen);
  Advance(absl::Seconds(30));
  ASSERT_OK(Authorize("vol", kAdminSecret, "edge:7430"));
  EXPECT_EQ(RawInt(seen), first);
  Advance(absl::Seconds(31));
  ASSERT_OK(Authorize("vol", kAdminSecret, "edge:7430"));
  EXPECT_EQ(RawInt(seen), now_.load());
  // Another proxy token claiming the address: written at once, with its token.
  absl::StatusOr<pb::CreateTokenResponse> px = Token(pb::ACCESS_PROXY, "");
  ASSERT_OK(px);
  Principal proxy;
  proxy.kind = Principal::Kind::kProxy;
  proxy.token_id = px->token().id();
  {
    ScopedPrincipal scope(proxy);
    ASSERT_OK(Authorize("vol", kAdminSecret, "edge:7430"));
  }
  EXPECT_EQ(RawInt("SELECT token_id FROM known_proxies WHERE address = 'edge:7430'"),
            static_cast<int64_t>(px->token().id()));
}

// ---- Block.holder ----

TEST_F(ProxyOpsTest, HolderRoundTripsAndMustBeAKnownProxy) {
  const uint64_t ino = Mknod("f");
  const uint64_t id = Alloc(8, session_);
  // Unknown holder: EINVAL, nothing committed.
  EXPECT_EQ(Errno(Commit(ino, {MakeBlock(0, id), MakeBlock(1, id + 1, kProxy)})), EINVAL);
  EXPECT_THAT(Blocks(ino), IsEmpty());

  ASSERT_OK(Authorize("vol", kAdminSecret, kProxy));
  ASSERT_OK(Commit(ino, {MakeBlock(0, id), MakeBlock(1, id + 1, kProxy),
                         MakeBlock(2, id + 2, kProxy)}));
  std::vector<pb::Block> b = Blocks(ino);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].holder(), "");
  EXPECT_EQ(b[1].holder(), kProxy);
  EXPECT_EQ(b[2].holder(), kProxy);
  // Stored as a small id, NULL when empty.
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM blocks WHERE holder_id IS NULL AND ino = ",
                                ino)),
            1);
  EXPECT_EQ(RawInt("SELECT typeof(holder_id) = 'integer' FROM blocks WHERE holder_id IS NOT "
                   "NULL LIMIT 1"),
            1);

  // A block rewritten without a holder (flushed, or put direct) loses it; kept across restart.
  ASSERT_OK(Commit(ino, {MakeBlock(1, id + 3)}));
  Open();
  b = Blocks(ino);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[1].holder(), "");
  EXPECT_EQ(b[2].holder(), kProxy);
  EXPECT_EQ(Errno(Commit(ino, {MakeBlock(3, id + 4, "attacker.example:443")})), EINVAL);
}

// ---- DeadBlocks ----

TEST_F(ProxyOpsTest, DeadBlocksBeforeAndAfterGcReclaimAndTombstoneExpiry) {
  const uint64_t ino = Mknod("f");
  // Ids of a session that stays (freed ones die by garbage collection only) and of one that
  // ends (its uncommitted ids die when reclaimed).
  pb::MountRequest m;
  m.set_volume_name("vol");
  absl::StatusOr<pb::MountResponse> live = svc_->Mount(m);
  ASSERT_OK(live);
  const uint64_t a = Alloc(3, live->session_id());  // a..a+2
  const uint64_t r = Alloc(2, session_);             // r, r+1
  ASSERT_OK(Commit(ino, {MakeBlock(0, a), MakeBlock(1, a + 1), MakeBlock(2, r)}));
  const std::vector<uint64_t> all = {a, a + 1, a + 2, r, r + 1};
  // Committed and live, or allocated and not committed yet (a proxy may hold it before the
  // mount commits): alive.
  EXPECT_THAT(DeadIds(all), IsEmpty());
  // Replaced: the old object is freed, dead at once (queued for GC).
  ASSERT_OK(Commit(ino, {MakeBlock(0, a + 2)}));
  EXPECT_THAT(DeadIds(all), ElementsAre(a));
  // GC deletes it; the tombstone keeps it dead.
  stores_.State("mem://vol-a")->Put(blockstore::BlockKey(a), "x");
  Advance(absl::Seconds(31));
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(stores_.State("mem://vol-a")->Has(blockstore::BlockKey(a)));
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM gc_blocks WHERE block_id = ", a)), 0);
  EXPECT_THAT(DeadIds(all), ElementsAre(a));
  // And it cannot come back into a block map.
  EXPECT_EQ(Errno(Commit(ino, {MakeBlock(5, a)})), EINVAL);

  // The session ends without committing r+1: once reclaimed, dead; r, committed, stays alive.
  pb::UnmountRequest um;
  um.set_session_id(session_);
  ASSERT_OK(svc_->Unmount(um));
  EXPECT_THAT(DeadIds(all), ElementsAre(a)) << "not reclaimed before the grace";
  Advance(absl::Seconds(31));
  CollectGarbage();
  EXPECT_THAT(DeadIds(all), ElementsAre(a, r + 1));
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM gc_tombstones WHERE block_id = ", r + 1)),
            1);

  // Monotonic within the retention (1 h here); after it a freed id's tombstone is gone, but a
  // reclaimed id stays dead (its range says so for good).
  Advance(absl::Minutes(58));
  CollectGarbage();
  EXPECT_THAT(DeadIds(all), ElementsAre(a, r + 1));
  Advance(absl::Minutes(2));
  CollectGarbage();
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM gc_tombstones WHERE block_id = ", a)), 0);
  EXPECT_THAT(DeadIds(all), ElementsAre(r + 1));
  EXPECT_THAT(DeadIds({r + 1, r + 1, a + 1}), ElementsAre(r + 1)) << "duplicates answered once";
}

TEST_F(ProxyOpsTest, DeadBlocksLimitsAndVolumes) {
  std::vector<uint64_t> many(10'000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = i + 1;
  // Freed ids spread over several batches of the query.
  const uint64_t ino = Mknod("f");
  const uint64_t first = Alloc(3000, session_);
  pb::CommitBlocksRequest commit;
  commit.set_volume_id(vol_);
  commit.set_ino(ino);
  commit.set_min_size(uint64_t{3000} * kBs);
  for (uint64_t i = 0; i < 3000; ++i) *commit.add_blocks() = MakeBlock(i, first + i);
  ASSERT_OK(svc_->CommitBlocks(commit));
  EXPECT_THAT(DeadIds(many), IsEmpty());
  pb::SetAttrRequest trunc;
  trunc.set_volume_id(vol_);
  trunc.set_ino(ino);
  trunc.set_valid(pb::SETATTR_SIZE);
  trunc.set_size(0);
  ASSERT_OK(svc_->SetAttr(trunc));
  absl::StatusOr<std::vector<uint64_t>> d = Dead(many);
  ASSERT_OK(d);
  EXPECT_EQ(d->size(), 3000u);
  EXPECT_EQ(d->front(), first);
  EXPECT_EQ(d->back(), first + 2999);
  many.push_back(10'001);
  EXPECT_EQ(Code(Dead(many)), absl::StatusCode::kInvalidArgument);

  // A volume that never existed: NotFound. A deleted one: every id is dead for good.
  EXPECT_EQ(Code(Dead({1}, 999)), absl::StatusCode::kNotFound);
  pb::DeleteVolumeRequest dv;
  dv.set_name("other");
  ASSERT_OK(svc_->DeleteVolume(dv));
  EXPECT_THAT(DeadIds({1, 7}, other_), ElementsAre(1, 7));
  Advance(absl::Seconds(31));
  CollectGarbage();  // forgets the deleted volume's row
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM deleted_volumes WHERE id = ", other_)), 0);
  EXPECT_THAT(DeadIds({1, 7}, other_), ElementsAre(1, 7));
}

// ---- schema ----

TEST_F(ProxyOpsTest, SchemaV5DatabaseMigratesToV6) {
  const uint64_t ino = Mknod("f");
  const uint64_t id = Alloc(2, session_);
  ASSERT_OK(Commit(ino, {MakeBlock(0, id)}));
  svc_.reset();
  // What a version-5 database looks like.
  RawSql(
      "DROP TABLE gc_tombstones;"
      "ALTER TABLE blocks DROP COLUMN holder_id;"
      "DROP TABLE known_proxies;"
      // and without what later versions added (v7: proxy groups, v8: range checksums)
      "ALTER TABLE blocks DROP COLUMN range_crc32c; ALTER TABLE blocks DROP COLUMN range_size;"
      "DROP TABLE proxy_groups; DROP TABLE proxy_group_members; DROP TABLE volume_proxy_groups;"
      "ALTER TABLE volumes DROP COLUMN routes_version;"
      "UPDATE meta SET value = '5' WHERE key = 'schema_version';");
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM sqlite_master WHERE name = 'known_proxies'"), 0);
  Open();
  EXPECT_EQ(RawInt("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"), kSchemaVersion);
  std::vector<pb::Block> b = Blocks(ino);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].id(), id);
  EXPECT_EQ(b[0].holder(), "");
  // The new tables work.
  ASSERT_OK(Authorize("vol", kAdminSecret, kProxy));
  ASSERT_OK(Commit(ino, {MakeBlock(1, id + 1, kProxy)}));
  b = Blocks(ino);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].holder(), kProxy);
  EXPECT_THAT(DeadIds({id, id + 1}), IsEmpty());
}

}  // namespace
}  // namespace nighfs::meta
