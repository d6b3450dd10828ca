// The metadata server's semantics, driven directly through MetaService with a temporary SQLite
// file, an injected clock and an in-memory fake block store.
#include "meta/meta_service.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crc32c.h"
#include "common/errno_status.h"
#include "common/retry.h"
#include "meta/schema.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/meta/fake_store.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta {
namespace {

using ::nighfs::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kRoot = 1;
constexpr uint32_t kBs = 64 * 1024;
constexpr int64_t kStart = int64_t{1'700'000'000} * 1'000'000'000;

// An inode's attributes as text, without Attr.no_xattrs (which only some replies carry).
std::string AttrFields(pb::Attr a) {
  a.clear_no_xattrs();
  return a.DebugString();
}

// Undoes every migration after version 1 (to test upgrading an old database).
constexpr char kDowngradeToV1[] =
    "ALTER TABLE blocks DROP COLUMN inline_data;"
    "ALTER TABLE blocks DROP COLUMN range_crc32c;"
    "ALTER TABLE blocks DROP COLUMN range_size;"
    "DROP TABLE proxy_groups;"
    "DROP TABLE proxy_group_members;"
    "DROP TABLE volume_proxy_groups;"
    "ALTER TABLE volumes DROP COLUMN routes_version;"
    "DROP TABLE gc_tombstones;"
    "ALTER TABLE blocks DROP COLUMN holder_id;"
    "DROP TABLE known_proxies;"
    "DROP TABLE tokens;"
    "ALTER TABLE sessions DROP COLUMN key_hash;"
    "ALTER TABLE sessions DROP COLUMN token_id;"
    "DROP TABLE block_id_ranges;"
    "DROP TABLE request_replies;"
    "ALTER TABLE inodes DROP COLUMN stored_bytes;"
    "UPDATE meta SET value = '1' WHERE key = 'schema_version';";

template <class T>
int Errno(const T& s) {
  return StatusToErrno(::nighfs::testing::GetStatus(s));
}

pb::Block MakeBlock(uint64_t index, uint64_t id, uint32_t length, uint32_t object_size = 0,
                    uint32_t crc = 0) {
  pb::Block b;
  b.set_index(index);
  b.set_id(id);
  b.set_length(length);
  b.set_object_size(object_size == 0 ? length : object_size);
  b.set_crc32c(crc);
  return b;
}

class MetaServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_path_ = dir_.path() + "/meta.db";
    Open();
    ASSERT_TRUE(svc_);
    absl::StatusOr<pb::Volume> v = CreateVolume("vol", "mem://vol-a", kBs);
    ASSERT_OK(v);
    vol_ = v->id();
    store_ = stores_.State("mem://vol-a");
    absl::StatusOr<pb::MountResponse> m = MountVolume("vol");
    ASSERT_OK(m);
    session_ = m->session_id();
  }

  MetaServiceOptions Options() {
    MetaServiceOptions o;
    o.db_path = db_path_;
    o.run_background = false;
    o.gc_grace = absl::Seconds(30);
    o.session_timeout = absl::Seconds(300);
    o.now_ns = [this] { return now_.load(); };
    o.open_store = [this](const std::string& url) { return stores_.Open(url); };
    o.allow_test_stores = true;
    o.inline_max_bytes = inline_max_bytes_;
    return o;
  }

  void Open() {
    svc_.reset();
    absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(Options());
    ASSERT_OK(s);
    svc_ = std::move(*s);
  }

  void Advance(absl::Duration d) { now_ += absl::ToInt64Nanoseconds(d); }
  int64_t Now() const { return now_.load(); }

  // Runs SQL on the database file behind the service's back (to set up rare states).
  void RawSql(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }

  // The first column of the first row of `sql` on the database file (-1 without a row).
  int64_t RawInt(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* st = nullptr;
    int64_t v = -1;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr), SQLITE_OK) << sql;
    if (st != nullptr && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  }

  absl::StatusOr<pb::Volume> CreateVolume(const std::string& name, const std::string& url,
                                          uint32_t bs = 0) {
    pb::CreateVolumeRequest r;
    r.set_name(name);
    r.set_store_url(url);
    r.set_block_size(bs);
    absl::StatusOr<pb::CreateVolumeResponse> resp = svc_->CreateVolume(r);
    if (!resp.ok()) return resp.status();
    return resp->volume();
  }

  absl::StatusOr<pb::MountResponse> MountVolume(const std::string& name) {
    pb::MountRequest r;
    r.set_volume_name(name);
    r.set_hostname("host");
    r.set_mount_point("/mnt");
    r.set_pid(42);
    return svc_->Mount(r);
  }

  absl::Status Heartbeat(uint64_t session) {
    pb::HeartbeatRequest r;
    r.set_session_id(session);
    return svc_->Heartbeat(r).status();
  }

  absl::Status Unmount(uint64_t session) {
    pb::UnmountRequest r;
    r.set_session_id(session);
    return svc_->Unmount(r).status();
  }

  static absl::StatusOr<pb::Attr> AttrOf(const absl::StatusOr<pb::EntryResponse>& r) {
    if (!r.ok()) return r.status();
    return r->attr();
  }

  absl::StatusOr<pb::Attr> Mknod(uint64_t parent, const std::string& name,
                                 uint32_t mode = S_IFREG | 0644, uint64_t rdev = 0,
                                 uint32_t uid = 1000, uint32_t gid = 1000) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_mode(mode);
    r.set_rdev(rdev);
    r.set_uid(uid);
    r.set_gid(gid);
    return AttrOf(svc_->Mknod(r));
  }

  absl::StatusOr<pb::Attr> Mkdir(uint64_t parent, const std::string& name, uint32_t mode = 0755,
                                 uint32_t uid = 1000, uint32_t gid = 1000) {
    pb::MkdirRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_mode(mode);
    r.set_uid(uid);
    r.set_gid(gid);
    return AttrOf(svc_->Mkdir(r));
  }

  absl::StatusOr<pb::Attr> Symlink(uint64_t parent, const std::string& name,
                                   const std::string& target) {
    pb::SymlinkRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_target(target);
    r.set_uid(1000);
    r.set_gid(1000);
    return AttrOf(svc_->Symlink(r));
  }

  absl::StatusOr<pb::Attr> Link(uint64_t ino, uint64_t parent, const std::string& name) {
    pb::LinkRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_new_parent(parent);
    r.set_new_name(name);
    return AttrOf(svc_->Link(r));
  }

  absl::StatusOr<pb::Attr> Unlink(uint64_t parent, const std::string& name, bool sustain = false,
                                  uint64_t session = 0) {
    pb::UnlinkRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_sustain(sustain);
    r.set_session_id(session != 0 ? session : session_);
    absl::StatusOr<pb::UnlinkResponse> resp = svc_->Unlink(r);
    if (!resp.ok()) return resp.status();
    return resp->attr();
  }

  absl::Status Rmdir(uint64_t parent, const std::string& name) {
    pb::RmdirRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    return svc_->Rmdir(r).status();
  }

  absl::StatusOr<pb::RenameResponse> Rename(uint64_t parent, const std::string& name,
                                            uint64_t new_parent, const std::string& new_name,
                                            uint32_t flags = 0, bool sustain = false) {
    pb::RenameRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_new_parent(new_parent);
    r.set_new_name(new_name);
    r.set_flags(flags);
    r.set_session_id(session_);
    r.set_sustain(sustain);
    return svc_->Rename(r);
  }

  absl::StatusOr<pb::Attr> Lookup(uint64_t parent, const std::string& name) {
    pb::LookupRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    return AttrOf(svc_->Lookup(r));
  }

  absl::StatusOr<pb::Attr> GetAttr(uint64_t ino) {
    pb::GetAttrRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    absl::StatusOr<pb::AttrResponse> resp = svc_->GetAttr(r);
    if (!resp.ok()) return resp.status();
    return resp->attr();
  }

  absl::StatusOr<pb::Attr> SetAttr(pb::SetAttrRequest r) {
    r.set_volume_id(vol_);
    absl::StatusOr<pb::AttrResponse> resp = svc_->SetAttr(r);
    if (!resp.ok()) return resp.status();
    return resp->attr();
  }

  absl::StatusOr<pb::Attr> Truncate(uint64_t ino, uint64_t size) {
    pb::SetAttrRequest r;
    r.set_ino(ino);
    r.set_valid(pb::SETATTR_SIZE);
    r.set_size(size);
    return SetAttr(r);
  }

  absl::StatusOr<pb::ReadDirResponse> ReadDir(uint64_t ino, uint64_t cookie = 0,
                                              uint32_t limit = 0, bool plus = false) {
    pb::ReadDirRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_cookie(cookie);
    r.set_limit(limit);
    r.set_plus(plus);
    return svc_->ReadDir(r);
  }

  // Every name in a directory, reading in pages of `page`.
  std::vector<std::string> Names(uint64_t ino, uint32_t page = 0) {
    std::vector<std::string> out;
    uint64_t cookie = 0;
    for (int i = 0; i < 100000; ++i) {
      absl::StatusOr<pb::ReadDirResponse> r = ReadDir(ino, cookie, page);
      EXPECT_OK(r);
      if (!r.ok()) break;
      for (const auto& e : r->entries()) {
        out.push_back(e.name());
        cookie = e.cookie();
      }
      if (r->eof()) break;
    }
    return out;
  }

  uint64_t Alloc(uint32_t count = 1) {
    pb::AllocBlockIdsRequest r;
    r.set_volume_id(vol_);
    r.set_count(count);
    absl::StatusOr<pb::AllocBlockIdsResponse> resp = svc_->AllocBlockIds(r);
    EXPECT_OK(resp);
    return resp.ok() ? resp->first_id() : 0;
  }

  absl::StatusOr<pb::Attr> Commit(uint64_t ino, const std::vector<pb::Block>& blocks,
                                  uint64_t min_size = 0, int64_t mtime_ns = 0,
                                  bool clear_suid = false) {
    pb::CommitBlocksRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    for (const auto& b : blocks) *r.add_blocks() = b;
    r.set_min_size(min_size);
    r.set_mtime_ns(mtime_ns);
    r.set_clear_suid(clear_suid);
    absl::StatusOr<pb::CommitBlocksResponse> resp = svc_->CommitBlocks(r);
    if (!resp.ok()) return resp.status();
    return resp->attr();
  }

  // Allocates an id, "uploads" an object of `length` bytes and commits it at `index`.
  uint64_t WriteBlock(uint64_t ino, uint64_t index, uint32_t length, uint64_t min_size = 0) {
    uint64_t id = Alloc();
    store_->Put(blockstore::BlockKey(id), std::string(length, 'x'));
    EXPECT_OK(Commit(ino, {MakeBlock(index, id, length)}, min_size));
    return id;
  }

  absl::StatusOr<pb::GetBlocksResponse> GetBlocks(uint64_t ino, uint64_t first = 0,
                                                  uint64_t count = 0) {
    pb::GetBlocksRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_first_index(first);
    r.set_count(count);
    return svc_->GetBlocks(r);
  }

  std::vector<uint64_t> BlockIds(uint64_t ino) {
    std::vector<uint64_t> ids;
    absl::StatusOr<pb::GetBlocksResponse> r = GetBlocks(ino);
    EXPECT_OK(r);
    if (r.ok()) {
      for (const auto& b : r->blocks()) ids.push_back(b.id());
    }
    return ids;
  }

  bool Stored(uint64_t block_id) { return store_->Has(blockstore::BlockKey(block_id)); }

  // Runs GC after the grace period has passed.
  int64_t CollectGarbage() {
    Advance(absl::Seconds(31));
    absl::StatusOr<int64_t> n = svc_->RunGcOnce();
    EXPECT_OK(n);
    return n.ok() ? *n : -1;
  }

  absl::Status SetXattr(uint64_t ino, const std::string& name, const std::string& value,
                        uint32_t flags = 0) {
    pb::SetXattrRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_name(name);
    r.set_value(value);
    r.set_flags(flags);
    return svc_->SetXattr(r).status();
  }

  absl::StatusOr<std::string> GetXattr(uint64_t ino, const std::string& name) {
    pb::GetXattrRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_name(name);
    absl::StatusOr<pb::GetXattrResponse> resp = svc_->GetXattr(r);
    if (!resp.ok()) return resp.status();
    return resp->value();
  }

  absl::Status RemoveXattr(uint64_t ino, const std::string& name) {
    pb::RemoveXattrRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    r.set_name(name);
    return svc_->RemoveXattr(r).status();
  }

  std::vector<std::string> ListXattr(uint64_t ino) {
    pb::ListXattrRequest r;
    r.set_volume_id(vol_);
    r.set_ino(ino);
    absl::StatusOr<pb::ListXattrResponse> resp = svc_->ListXattr(r);
    EXPECT_OK(resp);
    if (!resp.ok()) return {};
    return {resp->names().begin(), resp->names().end()};
  }

  absl::Status Release(uint64_t ino, uint64_t session = 0) {
    pb::ReleaseRequest r;
    r.set_volume_id(vol_);
    r.set_session_id(session != 0 ? session : session_);
    r.set_ino(ino);
    return svc_->Release(r).status();
  }

  TempDir dir_;
  std::string db_path_;
  std::atomic<int64_t> now_{kStart};
  fake::FakeStores stores_;
  std::shared_ptr<fake::FakeStoreState> store_;
  std::unique_ptr<MetaService> svc_;
  uint64_t vol_ = 0;
  uint64_t session_ = 0;
  uint32_t inline_max_bytes_ = MetaServiceOptions().inline_max_bytes;  // for Open()
};

// ---- volumes and sessions ----

TEST_F(MetaServiceTest, CreateVolumeValidatesItsArguments) {
  for (const std::string& name :
       std::vector<std::string>{"", "a b", "a/b", std::string(65, 'a'), "caf\xc3\xa9"}) {
    EXPECT_THAT(CreateVolume(name, "mem://x"), StatusIs(absl::StatusCode::kInvalidArgument))
        << name;
  }
  EXPECT_OK(CreateVolume(std::string(64, 'a'), "mem://x64"));
  EXPECT_OK(CreateVolume("A-z_0.9", "mem://xchars"));
  for (uint32_t bs : {1000u, 32u << 10, 128u << 20, 3u * (64u << 10), 1u}) {
    EXPECT_THAT(CreateVolume("bs", "mem://bs", bs), StatusIs(absl::StatusCode::kInvalidArgument))
        << bs;
  }
  EXPECT_OK(CreateVolume("small", "mem://small", 64u << 10));
  EXPECT_OK(CreateVolume("big", "mem://big", 64u << 20));
  absl::StatusOr<pb::Volume> d = CreateVolume("default", "mem://default");
  ASSERT_OK(d);
  EXPECT_EQ(d->block_size(), 4u << 20);
  EXPECT_EQ(d->created_ns(), Now());
  EXPECT_EQ(d->store_url(), "mem://default");

  EXPECT_THAT(CreateVolume("badurl", "no-scheme-here"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(CreateVolume("vol", "mem://other"), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(MetaServiceTest, CreateVolumeMakesTheRootDirectory) {
  Advance(absl::Seconds(5));
  absl::StatusOr<pb::Volume> v = CreateVolume("v2", "mem://v2");
  ASSERT_OK(v);
  absl::StatusOr<pb::MountResponse> m = MountVolume("v2");
  ASSERT_OK(m);
  EXPECT_EQ(m->volume().id(), v->id());
  EXPECT_EQ(m->volume().name(), "v2");
  const pb::Attr& root = m->root();
  EXPECT_EQ(root.ino(), kRoot);
  EXPECT_EQ(root.mode(), static_cast<uint32_t>(S_IFDIR | 0755));
  EXPECT_EQ(root.uid(), 0u);
  EXPECT_EQ(root.gid(), 0u);
  EXPECT_EQ(root.nlink(), 2u);
  EXPECT_EQ(root.mtime_ns(), Now());
  EXPECT_NE(m->session_id(), session_);
}

TEST_F(MetaServiceTest, CreateVolumeChecksTheStore) {
  stores_.State("mem://broken")->SetFailCheck(true);
  absl::StatusOr<pb::Volume> v = CreateVolume("broken", "mem://broken");
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("fake:mem://broken"));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("access denied"));
  EXPECT_THAT(MountVolume("broken"), StatusIs(absl::StatusCode::kNotFound));

  stores_.SetFailOpen(true);
  EXPECT_THAT(CreateVolume("unopenable", "mem://unopenable"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  stores_.SetFailOpen(false);
  EXPECT_OK(CreateVolume("unopenable", "mem://unopenable"));
}

TEST_F(MetaServiceTest, TwoVolumesCannotShareAStore) {
  absl::StatusOr<pb::Volume> v = CreateVolume("other", "mem://vol-a");
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("vol"));
}

TEST_F(MetaServiceTest, ListVolumes) {
  ASSERT_OK(CreateVolume("second", "mem://second"));
  absl::StatusOr<pb::ListVolumesResponse> r = svc_->ListVolumes(pb::ListVolumesRequest());
  ASSERT_OK(r);
  ASSERT_EQ(r->volumes_size(), 2);
  EXPECT_EQ(r->volumes(0).name(), "vol");
  EXPECT_EQ(r->volumes(0).block_size(), kBs);
  EXPECT_EQ(r->volumes(1).name(), "second");
}

TEST_F(MetaServiceTest, MountUnknownVolume) {
  absl::StatusOr<pb::MountResponse> m = MountVolume("nope");
  EXPECT_THAT(m, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("no volume named nope"));
}

TEST_F(MetaServiceTest, HeartbeatAndUnmount) {
  EXPECT_OK(Heartbeat(session_));
  EXPECT_THAT(Heartbeat(999999), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(Unmount(session_));
  EXPECT_THAT(Heartbeat(session_), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_OK(Unmount(session_));  // idempotent
}

TEST_F(MetaServiceTest, HeartbeatKeepsASessionAlive) {
  Advance(absl::Seconds(200));
  EXPECT_OK(Heartbeat(session_));
  Advance(absl::Seconds(200));
  absl::StatusOr<int64_t> n = svc_->ExpireSessionsOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  EXPECT_OK(Heartbeat(session_));
}

TEST_F(MetaServiceTest, SilentSessionsExpireAndReleaseTheirFiles) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "open-file");
  ASSERT_OK(f);
  uint64_t block = WriteBlock(f->ino(), 0, 100, 100);
  ASSERT_OK(Unlink(kRoot, "open-file", /*sustain=*/true));
  EXPECT_OK(GetAttr(f->ino()));

  Advance(absl::Seconds(299));
  absl::StatusOr<int64_t> n = svc_->ExpireSessionsOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  EXPECT_OK(GetAttr(f->ino()));

  Advance(absl::Seconds(2));
  n = svc_->ExpireSessionsOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(Errno(GetAttr(f->ino())), ENOENT);
  EXPECT_THAT(Heartbeat(session_), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_TRUE(Stored(block));
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(block));
}

TEST_F(MetaServiceTest, AStaleHeartbeatDoesNotReviveTheSession) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Unlink(kRoot, "f", /*sustain=*/true));
  Advance(absl::Seconds(301));
  EXPECT_THAT(Heartbeat(session_), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Errno(GetAttr(f->ino())), ENOENT);  // released at once
  EXPECT_THAT(Heartbeat(session_), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MetaServiceTest, UnmountReleasesSustainedInodes) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Unlink(kRoot, "f", /*sustain=*/true));
  EXPECT_OK(GetAttr(f->ino()));
  EXPECT_OK(Unmount(session_));
  EXPECT_EQ(Errno(GetAttr(f->ino())), ENOENT);
}

TEST_F(MetaServiceTest, DeleteVolume) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b1 = WriteBlock(f->ino(), 0, 10, 10);
  uint64_t b2 = WriteBlock(f->ino(), 1, 10, kBs + 10);
  ASSERT_OK(SetXattr(f->ino(), "user.a", "1"));

  pb::DeleteVolumeRequest del;
  del.set_name("vol");
  absl::StatusOr<pb::DeleteVolumeResponse> r = svc_->DeleteVolume(del);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("mounted"));

  ASSERT_OK(Unmount(session_));
  ASSERT_OK(svc_->DeleteVolume(del));
  EXPECT_THAT(MountVolume("vol"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(svc_->DeleteVolume(del), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Errno(GetAttr(kRoot)), ENOENT);

  // The name and the store can be used again; new block ids stay above the old ones, whose
  // objects are still waiting for garbage collection in the same store.
  absl::StatusOr<pb::Volume> again = CreateVolume("vol", "mem://vol-a", kBs);
  ASSERT_OK(again);
  EXPECT_NE(again->id(), vol_);
  vol_ = again->id();
  EXPECT_GT(Alloc(), b2);

  EXPECT_EQ(CollectGarbage(), 2);
  EXPECT_FALSE(Stored(b1));
  EXPECT_FALSE(Stored(b2));
}

TEST_F(MetaServiceTest, DeleteVolumeIgnoresExpiredSessions) {
  Advance(absl::Seconds(301));
  pb::DeleteVolumeRequest del;
  del.set_name("vol");
  EXPECT_OK(svc_->DeleteVolume(del));
}

// ---- names ----

TEST_F(MetaServiceTest, InvalidNames) {
  for (const std::string& name : {std::string(""), std::string("."), std::string(".."),
                                  std::string("a/b"), std::string("/"), std::string("a\0b", 3)}) {
    EXPECT_EQ(Errno(Mknod(kRoot, name)), EINVAL) << name;
    EXPECT_EQ(Errno(Mkdir(kRoot, name)), EINVAL) << name;
    EXPECT_EQ(Errno(Lookup(kRoot, name)), EINVAL) << name;
    EXPECT_EQ(Errno(Unlink(kRoot, name)), EINVAL) << name;
    EXPECT_EQ(Errno(Rmdir(kRoot, name)), EINVAL) << name;
    EXPECT_EQ(Errno(Symlink(kRoot, name, "t")), EINVAL) << name;
  }
  const std::string long_name(256, 'n');
  EXPECT_EQ(Errno(Mknod(kRoot, long_name)), ENAMETOOLONG);
  EXPECT_EQ(Errno(Lookup(kRoot, long_name)), ENAMETOOLONG);
  EXPECT_EQ(Errno(Rename(kRoot, "x", kRoot, long_name)), ENAMETOOLONG);
  const std::string max_name(255, 'n');
  ASSERT_OK(Mknod(kRoot, max_name));
  EXPECT_OK(Lookup(kRoot, max_name));
  // Any other byte is fine, including ones that are not UTF-8.
  ASSERT_OK(Mknod(kRoot, "\xff\xfe weird \t name"));
  EXPECT_OK(Lookup(kRoot, "\xff\xfe weird \t name"));
}

TEST_F(MetaServiceTest, LookupAndGetAttrErrors) {
  EXPECT_EQ(Errno(Lookup(kRoot, "missing")), ENOENT);
  EXPECT_EQ(Errno(Lookup(12345, "x")), ENOENT);
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "file");
  ASSERT_OK(f);
  EXPECT_EQ(Errno(Lookup(f->ino(), "x")), ENOTDIR);
  EXPECT_EQ(Errno(Mknod(f->ino(), "x")), ENOTDIR);
  EXPECT_EQ(Errno(Mkdir(f->ino(), "x")), ENOTDIR);
  EXPECT_EQ(Errno(Mknod(777, "x")), ENOENT);
  EXPECT_EQ(Errno(GetAttr(777)), ENOENT);
  absl::StatusOr<pb::Attr> l = Lookup(kRoot, "file");
  ASSERT_OK(l);
  EXPECT_EQ(l->ino(), f->ino());
  EXPECT_EQ(AttrFields(*l), AttrFields(*f));
}

// ---- creation ----

TEST_F(MetaServiceTest, MknodCreatesFilesAndSpecialFiles) {
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "plain", 0640, 0, 1001, 1002);  // no type: regular
  ASSERT_OK(f);
  EXPECT_EQ(f->mode(), static_cast<uint32_t>(S_IFREG | 0640));
  EXPECT_EQ(f->uid(), 1001u);
  EXPECT_EQ(f->gid(), 1002u);
  EXPECT_EQ(f->nlink(), 1u);
  EXPECT_EQ(f->size(), 0u);
  EXPECT_EQ(f->atime_ns(), Now());
  EXPECT_EQ(f->mtime_ns(), Now());
  EXPECT_EQ(f->ctime_ns(), Now());
  EXPECT_GE(f->ino(), 2u);

  absl::StatusOr<pb::Attr> fifo = Mknod(kRoot, "fifo", S_IFIFO | 0600);
  ASSERT_OK(fifo);
  EXPECT_EQ(fifo->mode(), static_cast<uint32_t>(S_IFIFO | 0600));
  EXPECT_NE(fifo->ino(), f->ino());
  absl::StatusOr<pb::Attr> chr = Mknod(kRoot, "chr", S_IFCHR | 0600, 0x0501);
  ASSERT_OK(chr);
  EXPECT_EQ(chr->rdev(), 0x0501u);
  absl::StatusOr<pb::Attr> sock = Mknod(kRoot, "sock", S_IFSOCK | 0755);
  ASSERT_OK(sock);
  // Setuid/setgid/sticky bits are kept.
  absl::StatusOr<pb::Attr> suid = Mknod(kRoot, "suid", S_IFREG | 06755);
  ASSERT_OK(suid);
  EXPECT_EQ(suid->mode(), static_cast<uint32_t>(S_IFREG | 06755));

  EXPECT_EQ(Errno(Mknod(kRoot, "dir", S_IFDIR | 0755)), EINVAL);
  EXPECT_EQ(Errno(Mknod(kRoot, "lnk", S_IFLNK | 0777)), EINVAL);
  EXPECT_EQ(Errno(Mknod(kRoot, "bad", 0110000 | 0644)), EINVAL);
  EXPECT_EQ(Errno(Mknod(kRoot, "plain")), EEXIST);
  EXPECT_EQ(Errno(Mkdir(kRoot, "plain")), EEXIST);
  EXPECT_EQ(Errno(Symlink(kRoot, "plain", "x")), EEXIST);

  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 2u);  // files do not link the parent
  EXPECT_EQ(root->mtime_ns(), Now());
  EXPECT_EQ(root->ctime_ns(), Now());
}

TEST_F(MetaServiceTest, MkdirLinksTheParent) {
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d", S_IFREG | 01777);  // type bits are ignored
  ASSERT_OK(d);
  EXPECT_EQ(d->mode(), static_cast<uint32_t>(S_IFDIR | 01777));
  EXPECT_EQ(d->nlink(), 2u);
  EXPECT_EQ(d->uid(), 1000u);
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 3u);
  EXPECT_EQ(root->mtime_ns(), Now());
  ASSERT_OK(Mkdir(d->ino(), "sub"));
  absl::StatusOr<pb::Attr> d2 = GetAttr(d->ino());
  ASSERT_OK(d2);
  EXPECT_EQ(d2->nlink(), 3u);
  EXPECT_EQ(Errno(Mkdir(kRoot, "d")), EEXIST);
}

TEST_F(MetaServiceTest, SetgidDirectoriesPassOnTheirGroup) {
  absl::StatusOr<pb::Attr> shared = Mkdir(kRoot, "shared", 02775, 0, 50);
  ASSERT_OK(shared);
  EXPECT_EQ(shared->mode(), static_cast<uint32_t>(S_IFDIR | 02775));
  absl::StatusOr<pb::Attr> f = Mknod(shared->ino(), "f", S_IFREG | 0644, 0, 1000, 1000);
  ASSERT_OK(f);
  EXPECT_EQ(f->gid(), 50u);
  EXPECT_EQ(f->uid(), 1000u);
  EXPECT_EQ(f->mode(), static_cast<uint32_t>(S_IFREG | 0644));  // files do not get S_ISGID
  absl::StatusOr<pb::Attr> d = Mkdir(shared->ino(), "d", 0755, 1000, 1000);
  ASSERT_OK(d);
  EXPECT_EQ(d->gid(), 50u);
  EXPECT_EQ(d->mode(), static_cast<uint32_t>(S_IFDIR | S_ISGID | 0755));
  absl::StatusOr<pb::Attr> l = Symlink(shared->ino(), "l", "f");
  ASSERT_OK(l);
  EXPECT_EQ(l->gid(), 50u);
  // Without the bit, the caller's group.
  absl::StatusOr<pb::Attr> plain = Mkdir(kRoot, "plain", 0775, 0, 50);
  ASSERT_OK(plain);
  absl::StatusOr<pb::Attr> g = Mknod(plain->ino(), "g", S_IFREG | 0644, 0, 1000, 1000);
  ASSERT_OK(g);
  EXPECT_EQ(g->gid(), 1000u);
}

TEST_F(MetaServiceTest, Symlinks) {
  absl::StatusOr<pb::Attr> l = Symlink(kRoot, "l", "../some/where");
  ASSERT_OK(l);
  EXPECT_EQ(l->mode(), static_cast<uint32_t>(S_IFLNK | 0777));
  EXPECT_EQ(l->size(), 13u);
  EXPECT_EQ(l->nlink(), 1u);
  pb::ReadlinkRequest rl;
  rl.set_volume_id(vol_);
  rl.set_ino(l->ino());
  absl::StatusOr<pb::ReadlinkResponse> t = svc_->Readlink(rl);
  ASSERT_OK(t);
  EXPECT_EQ(t->target(), "../some/where");

  EXPECT_EQ(Errno(Symlink(kRoot, "empty", "")), ENOENT);
  EXPECT_EQ(Errno(Symlink(kRoot, "long", std::string(4096, 't'))), ENAMETOOLONG);
  absl::StatusOr<pb::Attr> max = Symlink(kRoot, "max", std::string(4095, 't'));
  ASSERT_OK(max);
  EXPECT_EQ(max->size(), 4095u);

  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  rl.set_ino(f->ino());
  EXPECT_EQ(Errno(svc_->Readlink(rl)), EINVAL);
  rl.set_ino(kRoot);
  EXPECT_EQ(Errno(svc_->Readlink(rl)), EINVAL);
  rl.set_ino(9999);
  EXPECT_EQ(Errno(svc_->Readlink(rl)), ENOENT);
}

// ---- links ----

TEST_F(MetaServiceTest, HardLinks) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::Attr> l = Link(f->ino(), d->ino(), "g");
  ASSERT_OK(l);
  EXPECT_EQ(l->ino(), f->ino());
  EXPECT_EQ(l->nlink(), 2u);
  EXPECT_EQ(l->ctime_ns(), Now());
  EXPECT_EQ(l->mtime_ns(), f->mtime_ns());
  absl::StatusOr<pb::Attr> dd = GetAttr(d->ino());
  ASSERT_OK(dd);
  EXPECT_EQ(dd->mtime_ns(), Now());
  EXPECT_EQ(dd->nlink(), 2u);
  absl::StatusOr<pb::Attr> via = Lookup(d->ino(), "g");
  ASSERT_OK(via);
  EXPECT_EQ(via->ino(), f->ino());

  EXPECT_EQ(Errno(Link(d->ino(), kRoot, "dirlink")), EPERM);
  EXPECT_EQ(Errno(Link(f->ino(), kRoot, "f")), EEXIST);
  EXPECT_EQ(Errno(Link(f->ino(), kRoot, "d")), EEXIST);
  EXPECT_EQ(Errno(Link(4242, kRoot, "x")), ENOENT);
  EXPECT_EQ(Errno(Link(f->ino(), f->ino(), "x")), ENOTDIR);
  EXPECT_EQ(Errno(Link(f->ino(), kRoot, "")), EINVAL);
}

TEST_F(MetaServiceTest, LinkCountLimit) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  RawSql(absl::StrCat("UPDATE inodes SET nlink = 64999 WHERE ino = ", f->ino()));
  absl::StatusOr<pb::Attr> l = Link(f->ino(), kRoot, "g");
  ASSERT_OK(l);
  EXPECT_EQ(l->nlink(), 65000u);
  absl::StatusOr<pb::Attr> over = Link(f->ino(), kRoot, "h");
  EXPECT_EQ(Errno(over), EMLINK);
  // Final answers must not look retryable to the RPC client.
  EXPECT_FALSE(IsRetryable(over.status()));
}

TEST_F(MetaServiceTest, UnlinkedOpenFileCannotBeLinkedAgain) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Unlink(kRoot, "f", /*sustain=*/true));
  EXPECT_EQ(Errno(Link(f->ino(), kRoot, "back")), ENOENT);
}

// ---- removal ----

TEST_F(MetaServiceTest, UnlinkDropsOneLink) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Link(f->ino(), kRoot, "g"));
  uint64_t block = WriteBlock(f->ino(), 0, 100, 100);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::Attr> a = Unlink(kRoot, "f");
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink(), 1u);
  EXPECT_EQ(a->ctime_ns(), Now());
  EXPECT_EQ(Errno(Lookup(kRoot, "f")), ENOENT);
  EXPECT_OK(Lookup(kRoot, "g"));
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->mtime_ns(), Now());
  EXPECT_EQ(root->ctime_ns(), Now());

  a = Unlink(kRoot, "g");
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink(), 0u);
  EXPECT_EQ(a->ino(), f->ino());
  EXPECT_EQ(Errno(GetAttr(f->ino())), ENOENT);
  EXPECT_EQ(Errno(GetBlocks(f->ino())), ENOENT);
  // The object stays for the grace period (readers elsewhere may hold the old block map).
  Advance(absl::Seconds(29));
  absl::StatusOr<int64_t> n = svc_->RunGcOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  EXPECT_TRUE(Stored(block));
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(block));
}

TEST_F(MetaServiceTest, UnlinkErrors) {
  EXPECT_EQ(Errno(Unlink(kRoot, "missing")), ENOENT);
  ASSERT_OK(Mkdir(kRoot, "d"));
  EXPECT_EQ(Errno(Unlink(kRoot, "d")), EISDIR);
  EXPECT_EQ(Errno(Unlink(999, "x")), ENOENT);
}

TEST_F(MetaServiceTest, UnlinkRemovesXattrsOfTheFreedInode) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(SetXattr(f->ino(), "user.k", "v"));
  ASSERT_OK(Unlink(kRoot, "f"));
  EXPECT_EQ(Errno(GetXattr(f->ino(), "user.k")), ENOENT);
}

TEST_F(MetaServiceTest, SustainedInodeLivesUntilReleased) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, 100, 100);
  absl::StatusOr<pb::Attr> a = Unlink(kRoot, "f", /*sustain=*/true);
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink(), 0u);
  EXPECT_EQ(Errno(Lookup(kRoot, "f")), ENOENT);
  // Still fully usable by the session holding it open.
  absl::StatusOr<pb::Attr> g = GetAttr(f->ino());
  ASSERT_OK(g);
  EXPECT_EQ(g->nlink(), 0u);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(b0));
  uint64_t b1 = WriteBlock(f->ino(), 1, 50, kBs + 50);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(b0, b1));
  ASSERT_OK(SetXattr(f->ino(), "user.x", "y"));
  EXPECT_EQ(CollectGarbage(), 0);
  EXPECT_TRUE(Stored(b0));

  // Another session releasing the inode does not free it.
  absl::StatusOr<pb::MountResponse> other = MountVolume("vol");
  ASSERT_OK(other);
  ASSERT_OK(Release(f->ino(), other->session_id()));
  EXPECT_OK(GetAttr(f->ino()));

  ASSERT_OK(Release(f->ino()));
  EXPECT_EQ(Errno(GetAttr(f->ino())), ENOENT);
  EXPECT_OK(Release(f->ino()));  // idempotent
  EXPECT_EQ(CollectGarbage(), 2);
  EXPECT_FALSE(Stored(b0));
  EXPECT_FALSE(Stored(b1));
}

TEST_F(MetaServiceTest, ReleaseOfALinkedFileKeepsIt) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Release(f->ino()));
  EXPECT_OK(GetAttr(f->ino()));
}

TEST_F(MetaServiceTest, SustainNeedsALiveSession) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  absl::StatusOr<pb::Attr> a = Unlink(kRoot, "f", /*sustain=*/true, /*session=*/987654);
  EXPECT_EQ(Errno(a), ESTALE);
  EXPECT_FALSE(IsRetryable(a.status()));
  EXPECT_OK(Lookup(kRoot, "f"));  // nothing happened
  // Sustain is only consulted for the last link.
  ASSERT_OK(Link(f->ino(), kRoot, "g"));
  EXPECT_OK(Unlink(kRoot, "f", /*sustain=*/true, /*session=*/987654));
}

TEST_F(MetaServiceTest, Rmdir) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  ASSERT_OK(Mknod(d->ino(), "f"));
  ASSERT_OK(Mknod(kRoot, "file"));
  EXPECT_EQ(Errno(Rmdir(kRoot, "missing")), ENOENT);
  EXPECT_EQ(Errno(Rmdir(kRoot, "file")), ENOTDIR);
  EXPECT_EQ(Errno(Rmdir(kRoot, "d")), ENOTEMPTY);
  ASSERT_OK(Unlink(d->ino(), "f"));
  ASSERT_OK(SetXattr(d->ino(), "user.k", "v"));
  Advance(absl::Seconds(1));
  ASSERT_OK(Rmdir(kRoot, "d"));
  EXPECT_EQ(Errno(Lookup(kRoot, "d")), ENOENT);
  EXPECT_EQ(Errno(GetAttr(d->ino())), ENOENT);
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 2u);
  EXPECT_EQ(root->mtime_ns(), Now());
  EXPECT_EQ(root->ctime_ns(), Now());
}

// ---- rename ----

TEST_F(MetaServiceTest, RenameWithinADirectory) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "a");
  ASSERT_OK(f);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> r = Rename(kRoot, "a", kRoot, "b");
  ASSERT_OK(r);
  EXPECT_EQ(r->moved().ino(), f->ino());
  EXPECT_EQ(r->moved().ctime_ns(), Now());
  EXPECT_EQ(r->moved().mtime_ns(), f->mtime_ns());
  EXPECT_EQ(r->replaced().ino(), 0u);
  EXPECT_EQ(Errno(Lookup(kRoot, "a")), ENOENT);
  absl::StatusOr<pb::Attr> b = Lookup(kRoot, "b");
  ASSERT_OK(b);
  EXPECT_EQ(b->ino(), f->ino());
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->mtime_ns(), Now());
  EXPECT_EQ(root->nlink(), 2u);
  EXPECT_EQ(Errno(Rename(kRoot, "a", kRoot, "c")), ENOENT);
  EXPECT_EQ(Errno(Rename(kRoot, "b", 999, "c")), ENOENT);
}

TEST_F(MetaServiceTest, RenameADirectoryAcrossParents) {
  absl::StatusOr<pb::Attr> a = Mkdir(kRoot, "a");
  absl::StatusOr<pb::Attr> b = Mkdir(kRoot, "b");
  ASSERT_OK(a);
  ASSERT_OK(b);
  absl::StatusOr<pb::Attr> sub = Mkdir(a->ino(), "sub");
  ASSERT_OK(sub);
  ASSERT_OK(Mknod(sub->ino(), "leaf"));
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> r = Rename(a->ino(), "sub", b->ino(), "moved");
  ASSERT_OK(r);
  EXPECT_EQ(r->moved().ino(), sub->ino());
  EXPECT_EQ(r->moved().nlink(), 2u);
  absl::StatusOr<pb::Attr> a2 = GetAttr(a->ino());
  absl::StatusOr<pb::Attr> b2 = GetAttr(b->ino());
  ASSERT_OK(a2);
  ASSERT_OK(b2);
  EXPECT_EQ(a2->nlink(), 2u);
  EXPECT_EQ(b2->nlink(), 3u);
  EXPECT_EQ(a2->mtime_ns(), Now());
  EXPECT_EQ(b2->ctime_ns(), Now());
  absl::StatusOr<pb::Attr> moved = Lookup(b->ino(), "moved");
  ASSERT_OK(moved);
  EXPECT_OK(Lookup(moved->ino(), "leaf"));
  EXPECT_EQ(Errno(Lookup(a->ino(), "sub")), ENOENT);
  // And a file across parents leaves the link counts alone.
  ASSERT_OK(Mknod(a->ino(), "file"));
  ASSERT_OK(Rename(a->ino(), "file", b->ino(), "file"));
  a2 = GetAttr(a->ino());
  b2 = GetAttr(b->ino());
  ASSERT_OK(a2);
  ASSERT_OK(b2);
  EXPECT_EQ(a2->nlink(), 2u);
  EXPECT_EQ(b2->nlink(), 3u);
}

// Issue 14: each reply that changes a directory carries the directory as its transaction left
// it, equal to a GetAttr right after (a mount answers the kernel's GetAttr from it).
TEST_F(MetaServiceTest, RepliesSayWhetherTheParentsLastChangeWasTheSameSessions) {
  // Sessions 7 and 8 stand for two mounts (in-process callers are trusted with the session
  // they name); 0 is a caller without one.
  auto mknod = [&](uint64_t parent, const std::string& name, uint64_t session) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(parent);
    r.set_name(name);
    r.set_mode(S_IFREG | 0644);
    r.set_changer_session_id(session);
    return svc_->Mknod(r);
  };
  auto unchanged = [&](uint64_t parent, const std::string& name, uint64_t session) {
    absl::StatusOr<pb::EntryResponse> r = mknod(parent, name, session);
    EXPECT_OK(r) << name;
    return r.ok() && r->parent_unchanged();
  };
  pb::MkdirRequest md;
  md.set_volume_id(vol_);
  md.set_parent(kRoot);
  md.set_name("d");
  md.set_mode(0755);
  md.set_changer_session_id(7);
  absl::StatusOr<pb::EntryResponse> d = svc_->Mkdir(md);
  ASSERT_OK(d);
  const uint64_t dir = d->attr().ino();
  EXPECT_TRUE(unchanged(dir, "a", 7));  // the folder's first change was 7's mkdir
  EXPECT_FALSE(unchanged(dir, "b", 8));
  EXPECT_FALSE(unchanged(dir, "c", 7));  // 8 changed it in between
  EXPECT_TRUE(unchanged(dir, "e", 7));
  // A call that fails changes nothing.
  EXPECT_THAT(mknod(dir, "e", 8), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_TRUE(unchanged(dir, "f", 7));
  // A caller without a session is nobody's.
  EXPECT_FALSE(unchanged(dir, "g", 0));
  EXPECT_FALSE(unchanged(dir, "h", 7));

  pb::SymlinkRequest sl;
  sl.set_volume_id(vol_);
  sl.set_parent(dir);
  sl.set_name("ln");
  sl.set_target("a");
  sl.set_changer_session_id(7);
  absl::StatusOr<pb::EntryResponse> sym = svc_->Symlink(sl);
  ASSERT_OK(sym);
  EXPECT_TRUE(sym->parent_unchanged());
  md.set_parent(dir);
  md.set_name("sub");
  absl::StatusOr<pb::EntryResponse> sub = svc_->Mkdir(md);
  ASSERT_OK(sub);
  EXPECT_TRUE(sub->parent_unchanged());
  pb::LinkRequest ln;
  ln.set_volume_id(vol_);
  ln.set_ino(sym->attr().ino());
  ln.set_new_parent(sub->attr().ino());
  ln.set_new_name("ln2");
  ln.set_changer_session_id(7);
  absl::StatusOr<pb::EntryResponse> linked = svc_->Link(ln);
  ASSERT_OK(linked);
  EXPECT_TRUE(linked->parent_unchanged());  // the new folder's first change was 7's mkdir

  pb::RenameRequest rn;
  rn.set_volume_id(vol_);
  rn.set_parent(dir);
  rn.set_name("a");
  rn.set_new_parent(sub->attr().ino());
  rn.set_new_name("a2");
  rn.set_session_id(7);
  absl::StatusOr<pb::RenameResponse> mv = svc_->Rename(rn);
  ASSERT_OK(mv);
  EXPECT_TRUE(mv->parent_unchanged());
  EXPECT_TRUE(mv->new_parent_unchanged());
  rn.set_parent(sub->attr().ino());
  rn.set_name("a2");
  rn.set_new_name("a3");
  rn.set_session_id(8);
  mv = svc_->Rename(rn);
  ASSERT_OK(mv);
  EXPECT_FALSE(mv->parent_unchanged());
  EXPECT_EQ(mv->new_parent_unchanged(), mv->parent_unchanged());

  pb::UnlinkRequest ul;
  ul.set_volume_id(vol_);
  ul.set_parent(sub->attr().ino());
  ul.set_name("a3");
  ul.set_session_id(7);
  absl::StatusOr<pb::UnlinkResponse> gone = svc_->Unlink(ul);
  ASSERT_OK(gone);
  EXPECT_FALSE(gone->parent_unchanged());  // 8 renamed in it last
  ul.set_name("ln2");
  gone = svc_->Unlink(ul);
  ASSERT_OK(gone);
  EXPECT_TRUE(gone->parent_unchanged());
  pb::RmdirRequest rd;
  rd.set_volume_id(vol_);
  rd.set_parent(dir);
  rd.set_name("sub");
  rd.set_changer_session_id(8);
  absl::StatusOr<pb::RmdirResponse> rm = svc_->Rmdir(rd);
  ASSERT_OK(rm);
  EXPECT_FALSE(rm->parent_unchanged());
}

TEST_F(MetaServiceTest, NamespaceRepliesCarryTheParentsAttributes) {
  auto expect_current = [&](const pb::Attr& got, uint64_t ino, const std::string& what) {
    absl::StatusOr<pb::Attr> now = GetAttr(ino);
    ASSERT_OK(now);
    EXPECT_EQ(got.ino(), ino) << what;
    EXPECT_EQ(AttrFields(got), AttrFields(*now)) << what;
  };
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  Advance(absl::Seconds(1));
  pb::MknodRequest mk;
  mk.set_volume_id(vol_);
  mk.set_parent(d->ino());
  mk.set_name("f");
  mk.set_mode(S_IFREG | 0644);
  absl::StatusOr<pb::EntryResponse> made = svc_->Mknod(mk);
  ASSERT_OK(made);
  expect_current(made->parent_attr(), d->ino(), "mknod");
  EXPECT_EQ(made->parent_attr().mtime_ns(), Now());

  Advance(absl::Seconds(1));
  pb::MkdirRequest md;
  md.set_volume_id(vol_);
  md.set_parent(d->ino());
  md.set_name("sub");
  md.set_mode(0755);
  absl::StatusOr<pb::EntryResponse> sub = svc_->Mkdir(md);
  ASSERT_OK(sub);
  expect_current(sub->parent_attr(), d->ino(), "mkdir");
  EXPECT_EQ(sub->parent_attr().nlink(), 3u);

  pb::SymlinkRequest sl;
  sl.set_volume_id(vol_);
  sl.set_parent(d->ino());
  sl.set_name("ln");
  sl.set_target("f");
  absl::StatusOr<pb::EntryResponse> sym = svc_->Symlink(sl);
  ASSERT_OK(sym);
  expect_current(sym->parent_attr(), d->ino(), "symlink");

  pb::LinkRequest ln;
  ln.set_volume_id(vol_);
  ln.set_ino(made->attr().ino());
  ln.set_new_parent(sub->attr().ino());
  ln.set_new_name("hard");
  absl::StatusOr<pb::EntryResponse> linked = svc_->Link(ln);
  ASSERT_OK(linked);
  expect_current(linked->parent_attr(), sub->attr().ino(), "link");

  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> mv = Rename(d->ino(), "f", sub->attr().ino(), "g");
  ASSERT_OK(mv);
  expect_current(mv->parent_attr(), d->ino(), "rename (from)");
  expect_current(mv->new_parent_attr(), sub->attr().ino(), "rename (to)");
  mv = Rename(sub->attr().ino(), "g", sub->attr().ino(), "h");
  ASSERT_OK(mv);
  expect_current(mv->parent_attr(), sub->attr().ino(), "rename in one folder");
  expect_current(mv->new_parent_attr(), sub->attr().ino(), "rename in one folder");
  mv = Rename(sub->attr().ino(), "h", sub->attr().ino(), "hard");  // another name of it
  ASSERT_OK(mv);
  expect_current(mv->parent_attr(), sub->attr().ino(), "rename onto another link");

  pb::UnlinkRequest ul;
  ul.set_volume_id(vol_);
  ul.set_parent(sub->attr().ino());
  ul.set_name("h");
  ul.set_session_id(session_);
  absl::StatusOr<pb::UnlinkResponse> gone = svc_->Unlink(ul);
  ASSERT_OK(gone);
  expect_current(gone->parent_attr(), sub->attr().ino(), "unlink");
  ul.set_name("hard");
  ASSERT_OK(svc_->Unlink(ul));

  Advance(absl::Seconds(1));
  pb::RmdirRequest rd;
  rd.set_volume_id(vol_);
  rd.set_parent(d->ino());
  rd.set_name("sub");
  absl::StatusOr<pb::RmdirResponse> rm = svc_->Rmdir(rd);
  ASSERT_OK(rm);
  expect_current(rm->parent_attr(), d->ino(), "rmdir");
  EXPECT_EQ(rm->parent_attr().nlink(), 2u);
  EXPECT_EQ(rm->removed().ino(), sub->attr().ino());
  EXPECT_EQ(rm->removed().nlink(), 0u);
  EXPECT_EQ(Errno(GetAttr(sub->attr().ino())), ENOENT);
}

TEST_F(MetaServiceTest, RenameOntoItselfChangesNothing) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Link(f->ino(), kRoot, "g"));
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> r = Rename(kRoot, "f", kRoot, "f");
  ASSERT_OK(r);
  EXPECT_EQ(r->moved().ino(), f->ino());
  EXPECT_EQ(r->replaced().ino(), 0u);
  // Two names of one inode: POSIX says success, nothing changes.
  r = Rename(kRoot, "f", kRoot, "g");
  ASSERT_OK(r);
  EXPECT_OK(Lookup(kRoot, "f"));
  EXPECT_OK(Lookup(kRoot, "g"));
  absl::StatusOr<pb::Attr> a = GetAttr(f->ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->nlink(), 2u);
  EXPECT_EQ(a->ctime_ns(), f->ctime_ns() + 0) << "ctime must not move";
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  EXPECT_OK(Rename(kRoot, "d", kRoot, "d"));
}

TEST_F(MetaServiceTest, RenameFlags) {
  ASSERT_OK(Mknod(kRoot, "a"));
  ASSERT_OK(Mknod(kRoot, "b"));
  EXPECT_EQ(Errno(Rename(kRoot, "a", kRoot, "c", 3)), EINVAL);
  EXPECT_EQ(Errno(Rename(kRoot, "a", kRoot, "c", 4)), EINVAL);  // RENAME_WHITEOUT
  EXPECT_EQ(Errno(Rename(kRoot, "a", kRoot, "b", 1)), EEXIST);
  EXPECT_OK(Lookup(kRoot, "a"));
  ASSERT_OK(Rename(kRoot, "a", kRoot, "c", 1));
  EXPECT_OK(Lookup(kRoot, "c"));
}

TEST_F(MetaServiceTest, RenameADirectoryBelowItself) {
  absl::StatusOr<pb::Attr> a = Mkdir(kRoot, "a");
  ASSERT_OK(a);
  absl::StatusOr<pb::Attr> b = Mkdir(a->ino(), "b");
  ASSERT_OK(b);
  absl::StatusOr<pb::Attr> c = Mkdir(b->ino(), "c");
  ASSERT_OK(c);
  EXPECT_EQ(Errno(Rename(kRoot, "a", c->ino(), "a")), EINVAL);
  EXPECT_EQ(Errno(Rename(kRoot, "a", a->ino(), "x")), EINVAL);
  EXPECT_EQ(Errno(Rename(a->ino(), "b", c->ino(), "x")), EINVAL);
  // Upwards is fine.
  ASSERT_OK(Rename(b->ino(), "c", kRoot, "c"));
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 4u);
  // Target an ancestor of the source: it is not empty.
  EXPECT_EQ(Errno(Rename(a->ino(), "b", kRoot, "a")), ENOTEMPTY);
}

TEST_F(MetaServiceTest, RenameOverExistingTargets) {
  absl::StatusOr<pb::Attr> d1 = Mkdir(kRoot, "d1");
  absl::StatusOr<pb::Attr> d2 = Mkdir(kRoot, "d2");
  absl::StatusOr<pb::Attr> full = Mkdir(kRoot, "full");
  ASSERT_OK(d1);
  ASSERT_OK(d2);
  ASSERT_OK(full);
  ASSERT_OK(Mknod(full->ino(), "x"));
  absl::StatusOr<pb::Attr> f1 = Mknod(kRoot, "f1");
  ASSERT_OK(f1);
  ASSERT_OK(Mknod(kRoot, "f2"));

  EXPECT_EQ(Errno(Rename(kRoot, "d1", kRoot, "f1")), ENOTDIR);
  EXPECT_EQ(Errno(Rename(kRoot, "f1", kRoot, "d1")), EISDIR);
  EXPECT_EQ(Errno(Rename(kRoot, "d1", kRoot, "full")), ENOTEMPTY);

  // Directory over an empty directory in the same parent: one directory fewer.
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 5u);
  absl::StatusOr<pb::RenameResponse> r = Rename(kRoot, "d1", kRoot, "d2");
  ASSERT_OK(r);
  EXPECT_EQ(r->moved().ino(), d1->ino());
  EXPECT_EQ(r->replaced().ino(), d2->ino());
  EXPECT_EQ(r->replaced().nlink(), 0u);
  EXPECT_EQ(Errno(GetAttr(d2->ino())), ENOENT);
  root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 4u);
  absl::StatusOr<pb::Attr> now_d2 = Lookup(kRoot, "d2");
  ASSERT_OK(now_d2);
  EXPECT_EQ(now_d2->ino(), d1->ino());

  // Directory over an empty directory in another parent: old parent -1, new parent net 0.
  absl::StatusOr<pb::Attr> p = Mkdir(kRoot, "p");
  ASSERT_OK(p);
  ASSERT_OK(Mkdir(p->ino(), "victim"));
  ASSERT_OK(Mkdir(kRoot, "mover"));
  root = GetAttr(kRoot);
  ASSERT_OK(root);
  uint32_t root_links = root->nlink();
  ASSERT_OK(Rename(kRoot, "mover", p->ino(), "victim"));
  root = GetAttr(kRoot);
  absl::StatusOr<pb::Attr> p2 = GetAttr(p->ino());
  ASSERT_OK(root);
  ASSERT_OK(p2);
  EXPECT_EQ(root->nlink(), root_links - 1);
  EXPECT_EQ(p2->nlink(), 3u);

  // File over file: the replaced inode is freed with its blocks.
  uint64_t block = WriteBlock(f1->ino(), 0, 10, 10);
  absl::StatusOr<pb::Attr> f3 = Mknod(kRoot, "f3");
  ASSERT_OK(f3);
  r = Rename(kRoot, "f3", kRoot, "f1");
  ASSERT_OK(r);
  EXPECT_EQ(r->replaced().ino(), f1->ino());
  EXPECT_EQ(r->replaced().nlink(), 0u);
  EXPECT_EQ(Errno(GetAttr(f1->ino())), ENOENT);
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(block));
}

TEST_F(MetaServiceTest, RenameOverAFileWithOtherLinksOrOpen) {
  absl::StatusOr<pb::Attr> t = Mknod(kRoot, "target");
  ASSERT_OK(t);
  ASSERT_OK(Link(t->ino(), kRoot, "target2"));
  ASSERT_OK(Mknod(kRoot, "src"));
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> r = Rename(kRoot, "src", kRoot, "target");
  ASSERT_OK(r);
  EXPECT_EQ(r->replaced().ino(), t->ino());
  EXPECT_EQ(r->replaced().nlink(), 1u);
  EXPECT_EQ(r->replaced().ctime_ns(), Now());
  EXPECT_OK(Lookup(kRoot, "target2"));

  ASSERT_OK(Mknod(kRoot, "src2"));
  r = Rename(kRoot, "src2", kRoot, "target2", 0, /*sustain=*/true);
  ASSERT_OK(r);
  EXPECT_EQ(r->replaced().nlink(), 0u);
  EXPECT_OK(GetAttr(t->ino()));  // kept for the session that has it open
  ASSERT_OK(Release(t->ino()));
  EXPECT_EQ(Errno(GetAttr(t->ino())), ENOENT);
}

TEST_F(MetaServiceTest, RenameExchange) {
  absl::StatusOr<pb::Attr> a = Mkdir(kRoot, "a");
  absl::StatusOr<pb::Attr> b = Mkdir(kRoot, "b");
  ASSERT_OK(a);
  ASSERT_OK(b);
  absl::StatusOr<pb::Attr> f = Mknod(a->ino(), "f");
  absl::StatusOr<pb::Attr> d = Mkdir(b->ino(), "d");
  ASSERT_OK(f);
  ASSERT_OK(d);
  EXPECT_EQ(Errno(Rename(a->ino(), "f", b->ino(), "missing", 2)), ENOENT);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::RenameResponse> r = Rename(a->ino(), "f", b->ino(), "d", 2);
  ASSERT_OK(r);
  EXPECT_EQ(r->moved().ino(), f->ino());
  EXPECT_EQ(r->replaced().ino(), d->ino());
  EXPECT_EQ(r->moved().ctime_ns(), Now());
  EXPECT_EQ(r->replaced().ctime_ns(), Now());
  EXPECT_EQ(r->replaced().nlink(), 2u);
  absl::StatusOr<pb::Attr> in_a = Lookup(a->ino(), "f");
  absl::StatusOr<pb::Attr> in_b = Lookup(b->ino(), "d");
  ASSERT_OK(in_a);
  ASSERT_OK(in_b);
  EXPECT_EQ(in_a->ino(), d->ino());
  EXPECT_EQ(in_b->ino(), f->ino());
  // The directory moved from b to a.
  absl::StatusOr<pb::Attr> a2 = GetAttr(a->ino());
  absl::StatusOr<pb::Attr> b2 = GetAttr(b->ino());
  ASSERT_OK(a2);
  ASSERT_OK(b2);
  EXPECT_EQ(a2->nlink(), 3u);
  EXPECT_EQ(b2->nlink(), 2u);
  EXPECT_EQ(a2->mtime_ns(), Now());
  EXPECT_EQ(b2->mtime_ns(), Now());

  // A directory cannot be exchanged with something inside it.
  absl::StatusOr<pb::Attr> inner = Mkdir(a->ino(), "inner");
  ASSERT_OK(inner);
  EXPECT_EQ(Errno(Rename(kRoot, "a", a->ino(), "inner", 2)), EINVAL);
  EXPECT_EQ(Errno(Rename(a->ino(), "inner", kRoot, "a", 2)), EINVAL);
  // Two directories in one parent swap names; link counts stay.
  ASSERT_OK(Rename(kRoot, "a", kRoot, "b", 2));
  absl::StatusOr<pb::Attr> now_a = Lookup(kRoot, "a");
  ASSERT_OK(now_a);
  EXPECT_EQ(now_a->ino(), b->ino());
  absl::StatusOr<pb::Attr> root = GetAttr(kRoot);
  ASSERT_OK(root);
  EXPECT_EQ(root->nlink(), 4u);
}

// ---- setattr ----

TEST_F(MetaServiceTest, SetAttrModeOwnerTimes) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f", S_IFREG | 0644);
  ASSERT_OK(f);
  Advance(absl::Seconds(1));
  pb::SetAttrRequest r;
  r.set_ino(f->ino());
  r.set_valid(pb::SETATTR_MODE | pb::SETATTR_UID | pb::SETATTR_GID);
  r.set_mode(S_IFDIR | 04700);  // type bits in the request are ignored
  r.set_uid(7);
  r.set_gid(8);
  absl::StatusOr<pb::Attr> a = SetAttr(r);
  ASSERT_OK(a);
  EXPECT_EQ(a->mode(), static_cast<uint32_t>(S_IFREG | 04700));
  EXPECT_EQ(a->uid(), 7u);
  EXPECT_EQ(a->gid(), 8u);
  EXPECT_EQ(a->ctime_ns(), Now());
  EXPECT_EQ(a->mtime_ns(), f->mtime_ns());

  Advance(absl::Seconds(1));
  r.Clear();
  r.set_ino(f->ino());
  r.set_valid(pb::SETATTR_ATIME | pb::SETATTR_MTIME | pb::SETATTR_CTIME);
  r.set_atime_ns(111);
  r.set_mtime_ns(222);
  r.set_ctime_ns(333);
  a = SetAttr(r);
  ASSERT_OK(a);
  EXPECT_EQ(a->atime_ns(), 111);
  EXPECT_EQ(a->mtime_ns(), 222);
  EXPECT_EQ(a->ctime_ns(), 333);

  Advance(absl::Seconds(1));
  r.Clear();
  r.set_ino(f->ino());
  r.set_valid(pb::SETATTR_ATIME_NOW | pb::SETATTR_MTIME_NOW);
  a = SetAttr(r);
  ASSERT_OK(a);
  EXPECT_EQ(a->atime_ns(), Now());
  EXPECT_EQ(a->mtime_ns(), Now());
  EXPECT_EQ(a->ctime_ns(), Now());

  // Nothing valid still touches ctime.
  Advance(absl::Seconds(1));
  r.Clear();
  r.set_ino(f->ino());
  a = SetAttr(r);
  ASSERT_OK(a);
  EXPECT_EQ(a->ctime_ns(), Now());
  absl::StatusOr<pb::Attr> stored = GetAttr(f->ino());
  ASSERT_OK(stored);
  EXPECT_EQ(AttrFields(*stored), AttrFields(*a));

  r.set_ino(4321);
  EXPECT_EQ(Errno(SetAttr(r)), ENOENT);
}

TEST_F(MetaServiceTest, SetAttrSizeOnlyForRegularFiles) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  absl::StatusOr<pb::Attr> l = Symlink(kRoot, "l", "t");
  absl::StatusOr<pb::Attr> p = Mknod(kRoot, "p", S_IFIFO | 0644);
  ASSERT_OK(d);
  ASSERT_OK(l);
  ASSERT_OK(p);
  EXPECT_EQ(Errno(Truncate(d->ino(), 0)), EISDIR);
  EXPECT_EQ(Errno(Truncate(l->ino(), 0)), EINVAL);
  EXPECT_EQ(Errno(Truncate(p->ino(), 0)), EINVAL);
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  EXPECT_EQ(Errno(Truncate(f->ino(), uint64_t{1} << 63)), EFBIG);
}

TEST_F(MetaServiceTest, TruncateDropsAndTrimsBlocks) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, kBs);
  uint64_t b1 = WriteBlock(f->ino(), 1, kBs);
  uint64_t b2 = WriteBlock(f->ino(), 2, 1000, 2 * kBs + 1000);
  absl::StatusOr<pb::Attr> a = GetAttr(f->ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 2u * kBs + 1000);

  Advance(absl::Seconds(1));
  a = Truncate(f->ino(), kBs + 100);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), kBs + 100u);
  EXPECT_EQ(a->mtime_ns(), Now());
  EXPECT_EQ(a->ctime_ns(), Now());
  absl::StatusOr<pb::GetBlocksResponse> blocks = GetBlocks(f->ino());
  ASSERT_OK(blocks);
  ASSERT_EQ(blocks->blocks_size(), 2);
  EXPECT_EQ(blocks->blocks(0).id(), b0);
  EXPECT_EQ(blocks->blocks(0).length(), kBs);
  EXPECT_EQ(blocks->blocks(1).id(), b1);
  EXPECT_EQ(blocks->blocks(1).length(), 100u);
  EXPECT_EQ(blocks->blocks(1).object_size(), kBs);  // the object itself is unchanged

  // Growing makes a hole: nothing in the map changes.
  a = Truncate(f->ino(), 10u * kBs);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 10u * kBs);
  blocks = GetBlocks(f->ino());
  ASSERT_OK(blocks);
  ASSERT_EQ(blocks->blocks_size(), 2);
  EXPECT_EQ(blocks->blocks(1).length(), 100u);

  // Cutting at a block boundary drops that block entirely.
  a = Truncate(f->ino(), kBs);
  ASSERT_OK(a);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(b0));
  EXPECT_EQ(CollectGarbage(), 2);
  EXPECT_TRUE(Stored(b0));
  EXPECT_FALSE(Stored(b1));
  EXPECT_FALSE(Stored(b2));

  ASSERT_OK(Truncate(f->ino(), 0));
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre());
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(b0));
}

TEST_F(MetaServiceTest, TruncateTimes) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  Advance(absl::Seconds(1));
  pb::SetAttrRequest r;
  r.set_ino(f->ino());
  r.set_valid(pb::SETATTR_SIZE | pb::SETATTR_MTIME);
  r.set_size(5);
  r.set_mtime_ns(77);
  absl::StatusOr<pb::Attr> a = SetAttr(r);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 5u);
  EXPECT_EQ(a->mtime_ns(), 77);
  EXPECT_EQ(a->ctime_ns(), Now());
  // Same size: no change, mtime stays.
  Advance(absl::Seconds(1));
  a = Truncate(f->ino(), 5);
  ASSERT_OK(a);
  EXPECT_EQ(a->mtime_ns(), 77);
  EXPECT_EQ(a->ctime_ns(), Now());
}

// ---- readdir ----

TEST_F(MetaServiceTest, ReadDirPagesWithStableCookies) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  for (int i = 0; i < 10; ++i) ASSERT_OK(Mknod(d->ino(), absl::StrCat("f", i)));
  absl::StatusOr<pb::ReadDirResponse> all = ReadDir(d->ino());
  ASSERT_OK(all);
  EXPECT_TRUE(all->eof());
  ASSERT_EQ(all->entries_size(), 10);
  EXPECT_EQ(all->entries(0).name(), "f0");
  EXPECT_FALSE(all->entries(0).has_attr());
  EXPECT_TRUE(S_ISREG(all->entries(0).mode()));

  absl::StatusOr<pb::ReadDirResponse> p1 = ReadDir(d->ino(), 0, 4);
  ASSERT_OK(p1);
  ASSERT_EQ(p1->entries_size(), 4);
  EXPECT_FALSE(p1->eof());
  // Concurrent changes: remove one already listed and one not yet listed, add one.
  ASSERT_OK(Unlink(d->ino(), "f1"));
  ASSERT_OK(Unlink(d->ino(), "f6"));
  ASSERT_OK(Mknod(d->ino(), "new"));
  std::vector<std::string> names;
  for (const auto& e : p1->entries()) names.push_back(e.name());
  uint64_t cookie = p1->entries(3).cookie();
  while (true) {
    absl::StatusOr<pb::ReadDirResponse> p = ReadDir(d->ino(), cookie, 4);
    ASSERT_OK(p);
    for (const auto& e : p->entries()) {
      names.push_back(e.name());
      cookie = e.cookie();
    }
    if (p->eof()) break;
  }
  EXPECT_THAT(names, ElementsAre("f0", "f1", "f2", "f3", "f4", "f5", "f7", "f8", "f9", "new"));

  // An exact multiple of the page size ends with eof on the last full page or an empty one.
  EXPECT_EQ(Names(d->ino(), 3).size(), 9u);
  EXPECT_EQ(Names(d->ino(), 9).size(), 9u);
}

TEST_F(MetaServiceTest, ReadDirPlus) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f", S_IFREG | 0600);
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(f);
  ASSERT_OK(d);
  absl::StatusOr<pb::ReadDirResponse> r = ReadDir(kRoot, 0, 0, /*plus=*/true);
  ASSERT_OK(r);
  ASSERT_EQ(r->entries_size(), 2);
  EXPECT_EQ(AttrFields(r->entries(0).attr()), AttrFields(*f));
  EXPECT_EQ(r->entries(1).name(), "d");
  EXPECT_EQ(r->entries(1).ino(), d->ino());
  EXPECT_EQ(r->entries(1).attr().nlink(), 2u);
  EXPECT_EQ(Errno(ReadDir(f->ino())), ENOTDIR);
  EXPECT_EQ(Errno(ReadDir(5555)), ENOENT);
  // An empty directory, and a cookie past everything.
  absl::StatusOr<pb::ReadDirResponse> e = ReadDir(d->ino());
  ASSERT_OK(e);
  EXPECT_TRUE(e->eof());
  EXPECT_EQ(e->entries_size(), 0);
  e = ReadDir(kRoot, ~uint64_t{0});
  ASSERT_OK(e);
  EXPECT_TRUE(e->eof());
  EXPECT_EQ(e->entries_size(), 0);
}

TEST_F(MetaServiceTest, ReadDirCapsThePageSize) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "big");
  ASSERT_OK(d);
  // 5100 entries, inserted behind the service's back in one transaction for speed.
  std::string sql = "BEGIN;";
  for (int i = 0; i < 5100; ++i) {
    uint64_t ino = 100000 + i;
    absl::StrAppend(&sql, "INSERT INTO inodes (volume_id, ino, mode, uid, gid, size, nlink, "
                    "rdev, atime_ns, mtime_ns, ctime_ns, target) VALUES (", vol_, ",", ino, ",", S_IFREG | 0644,
                    ",0,0,0,1,0,0,0,0,NULL);", "INSERT INTO dentries (volume_id, parent, name, ino) "
                    "VALUES (", vol_, ",", d->ino(), ",CAST('n", i, "' AS BLOB),", ino, ");");
  }
  sql += "COMMIT;";
  RawSql(sql);
  absl::StatusOr<pb::ReadDirResponse> r = ReadDir(d->ino(), 0, 100000);
  ASSERT_OK(r);
  EXPECT_EQ(r->entries_size(), 5000);
  EXPECT_FALSE(r->eof());
  r = ReadDir(d->ino());
  ASSERT_OK(r);
  EXPECT_EQ(r->entries_size(), 1000);
  EXPECT_EQ(Names(d->ino(), 100000).size(), 5100u);
  EXPECT_OK(Lookup(d->ino(), "n5099"));
}

// ---- blocks ----

TEST_F(MetaServiceTest, AllocBlockIds) {
  pb::AllocBlockIdsRequest r;
  r.set_volume_id(vol_);
  r.set_count(0);
  EXPECT_EQ(Errno(svc_->AllocBlockIds(r)), EINVAL);
  r.set_count(4097);
  EXPECT_EQ(Errno(svc_->AllocBlockIds(r)), EINVAL);
  uint64_t a = Alloc(4096);
  uint64_t b = Alloc(1);
  uint64_t c = Alloc(10);
  EXPECT_GE(a, 1u);
  EXPECT_EQ(b, a + 4096);
  EXPECT_EQ(c, b + 1);
  r.set_volume_id(9999);
  r.set_count(1);
  EXPECT_THAT(svc_->AllocBlockIds(r), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MetaServiceTest, CommitBlocksAndGetBlocks) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t id = Alloc(4);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::Attr> a =
      Commit(f->ino(), {MakeBlock(0, id, kBs, kBs, 11), MakeBlock(2, id + 1, 10, 20, 22)},
             2 * kBs + 10);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 2u * kBs + 10);
  EXPECT_EQ(a->mtime_ns(), Now());
  EXPECT_EQ(a->ctime_ns(), Now());
  absl::StatusOr<pb::GetBlocksResponse> g = GetBlocks(f->ino());
  ASSERT_OK(g);
  EXPECT_EQ(g->attr().DebugString(), a->DebugString());
  ASSERT_EQ(g->blocks_size(), 2);
  EXPECT_EQ(g->blocks(0).index(), 0u);
  EXPECT_EQ(g->blocks(0).crc32c(), 11u);
  EXPECT_EQ(g->blocks(1).index(), 2u);
  EXPECT_EQ(g->blocks(1).id(), id + 1);
  EXPECT_EQ(g->blocks(1).length(), 10u);
  EXPECT_EQ(g->blocks(1).object_size(), 20u);
  EXPECT_EQ(g->blocks(1).crc32c(), 22u);

  // Ranges.
  g = GetBlocks(f->ino(), 1, 1);
  ASSERT_OK(g);
  EXPECT_EQ(g->blocks_size(), 0);
  g = GetBlocks(f->ino(), 1, 0);
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 1);
  EXPECT_EQ(g->blocks(0).index(), 2u);
  g = GetBlocks(f->ino(), 0, 1);
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 1);
  EXPECT_EQ(g->blocks(0).index(), 0u);
  g = GetBlocks(f->ino(), ~uint64_t{0}, ~uint64_t{0});
  ASSERT_OK(g);
  EXPECT_EQ(g->blocks_size(), 0);

  // Size never shrinks through a commit; an explicit mtime is kept.
  a = Commit(f->ino(), {MakeBlock(1, id + 2, 5)}, 5, 12345);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 2u * kBs + 10);
  EXPECT_EQ(a->mtime_ns(), 12345);
  EXPECT_EQ(a->ctime_ns(), Now());

  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  EXPECT_EQ(Errno(GetBlocks(d->ino())), EISDIR);
  EXPECT_EQ(Errno(GetBlocks(8888)), ENOENT);
  EXPECT_EQ(Errno(Commit(d->ino(), {MakeBlock(0, id + 3, 1)})), EISDIR);
}

TEST_F(MetaServiceTest, CommitBlocksReplacesAndFreesTheOldObject) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t old_id = WriteBlock(f->ino(), 0, 100, 100);
  uint64_t new_id = WriteBlock(f->ino(), 0, 200, 200);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(new_id));
  // A retried commit of the same block is harmless.
  ASSERT_OK(Commit(f->ino(), {MakeBlock(0, new_id, 200)}, 200));
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(new_id));
  // Committing a freed id again is refused: GC may be deleting its object right now.
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(1, old_id, 1)})), EINVAL);
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(old_id));
  EXPECT_TRUE(Stored(new_id));
}

TEST_F(MetaServiceTest, CommitBlocksValidates) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  absl::StatusOr<pb::Attr> g = Mknod(kRoot, "g");
  ASSERT_OK(f);
  ASSERT_OK(g);
  uint64_t id = Alloc(3);
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(0, id, 10, 5)})), EINVAL);        // length > size
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(0, id, 10, kBs + 1)})), EINVAL);  // > block size
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(0, id + 100, 10)})), EINVAL);     // not allocated
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(0, 0, 10)})), EINVAL);
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(uint64_t{1} << 62, id, 10)})), EFBIG);
  pb::CommitBlocksRequest big;
  big.set_volume_id(vol_);
  big.set_ino(f->ino());
  big.set_min_size(~uint64_t{0});
  EXPECT_EQ(Errno(svc_->CommitBlocks(big)), EFBIG);
  ASSERT_OK(Commit(f->ino(), {MakeBlock(0, id, 10)}, 10));
  // One id, one map entry.
  EXPECT_EQ(Errno(Commit(g->ino(), {MakeBlock(0, id, 10)})), EINVAL);
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(1, id, 10)})), EINVAL);
  // A failed commit changes nothing, even its valid blocks.
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(1, id + 1, 10), MakeBlock(2, id + 99, 10)})),
            EINVAL);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(id));
  absl::StatusOr<pb::Attr> l = Symlink(kRoot, "l", "x");
  ASSERT_OK(l);
  EXPECT_EQ(Errno(Commit(l->ino(), {MakeBlock(0, id + 2, 1)})), EINVAL);
}

TEST_F(MetaServiceTest, CommitToAVanishedFileFreesTheNewObjects) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t id = Alloc();
  store_->Put(blockstore::BlockKey(id), "data");
  ASSERT_OK(Unlink(kRoot, "f"));
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(0, id, 4)}, 4)), ENOENT);
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(id));
}

TEST_F(MetaServiceTest, StoredBytesFollowTheBlockMap) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  EXPECT_EQ(f->stored_bytes(), 0u);
  uint64_t id = Alloc(8);
  // A sparse file: blocks 0 and 3 only.
  absl::StatusOr<pb::Attr> a =
      Commit(f->ino(), {MakeBlock(0, id, kBs), MakeBlock(3, id + 1, 100, 200)}, 3 * kBs + 100);
  ASSERT_OK(a);
  EXPECT_EQ(a->size(), 3u * kBs + 100);
  EXPECT_EQ(a->stored_bytes(), kBs + 100u);
  // Replacing a block counts the new length only; a retried commit counts once.
  a = Commit(f->ino(), {MakeBlock(3, id + 2, 150)});
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), kBs + 150u);
  a = Commit(f->ino(), {MakeBlock(3, id + 2, 150)});
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), kBs + 150u);
  // Every Attr carries it: GetAttr, Lookup, ReadDirPlus, GetBlocks.
  EXPECT_EQ(GetAttr(f->ino())->stored_bytes(), kBs + 150u);
  EXPECT_EQ(Lookup(kRoot, "f")->stored_bytes(), kBs + 150u);
  absl::StatusOr<pb::ReadDirResponse> rd = ReadDir(kRoot, 0, 0, /*plus=*/true);
  ASSERT_OK(rd);
  ASSERT_EQ(rd->entries_size(), 1);
  EXPECT_EQ(rd->entries(0).attr().stored_bytes(), kBs + 150u);
  EXPECT_EQ(GetBlocks(f->ino())->attr().stored_bytes(), kBs + 150u);
  // Truncate into block 0 drops block 3 and trims block 0.
  a = Truncate(f->ino(), 1000);
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), 1000u);
  // Growing leaves a hole: nothing more stored.
  a = Truncate(f->ino(), 10 * kBs);
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), 1000u);
  // Survives reopening.
  Open();
  EXPECT_EQ(GetAttr(f->ino())->stored_bytes(), 1000u);
  // Unlinking the last name frees the inode: nothing stored for it any more.
  absl::StatusOr<pb::Attr> u = Unlink(kRoot, "f");
  ASSERT_OK(u);
  EXPECT_EQ(u->stored_bytes(), 0u);
}

TEST_F(MetaServiceTest, DropIndexesPunchHoles) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, kBs);
  uint64_t b1 = WriteBlock(f->ino(), 1, kBs);
  uint64_t b2 = WriteBlock(f->ino(), 2, 10, 2 * kBs + 10);
  ASSERT_EQ(GetAttr(f->ino())->stored_bytes(), 2u * kBs + 10);
  Advance(absl::Seconds(1));
  // Drop block 1 and replace block 0 in one commit; an index without a block is no error.
  uint64_t b0_new = Alloc();
  pb::CommitBlocksRequest r;
  r.set_volume_id(vol_);
  r.set_ino(f->ino());
  r.add_drop_indexes(1);
  r.add_drop_indexes(7);
  *r.add_blocks() = MakeBlock(0, b0_new, 5);
  absl::StatusOr<pb::CommitBlocksResponse> resp = svc_->CommitBlocks(r);
  ASSERT_OK(resp);
  EXPECT_EQ(resp->attr().size(), 2u * kBs + 10);  // size unchanged
  EXPECT_EQ(resp->attr().stored_bytes(), 15u);
  EXPECT_EQ(resp->attr().mtime_ns(), Now());
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(b0_new, b2));
  // Drops apply before blocks: dropping and writing one index keeps the new block.
  uint64_t b2_new = Alloc();
  pb::CommitBlocksRequest r2;
  r2.set_volume_id(vol_);
  r2.set_ino(f->ino());
  r2.add_drop_indexes(2);
  *r2.add_blocks() = MakeBlock(2, b2_new, 7);
  resp = svc_->CommitBlocks(r2);
  ASSERT_OK(resp);
  EXPECT_EQ(resp->attr().stored_bytes(), 12u);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(b0_new, b2_new));
  // A dropped block's id cannot come back: GC may be deleting its object.
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(1, b1, 1)})), EINVAL);
  // Dropped and replaced blocks are garbage.
  store_->Put(blockstore::BlockKey(b0_new), "x");
  store_->Put(blockstore::BlockKey(b2_new), "x");
  EXPECT_EQ(CollectGarbage(), 3);
  EXPECT_FALSE(Stored(b0));
  EXPECT_FALSE(Stored(b1));
  EXPECT_FALSE(Stored(b2));
  EXPECT_TRUE(Stored(b0_new));
}

TEST_F(MetaServiceTest, SchemaV1DatabaseGetsStoredBytes) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  WriteBlock(f->ino(), 0, kBs);
  WriteBlock(f->ino(), 4, 33, 4 * kBs + 33);
  svc_.reset();
  // What a version-1 database looks like.
  RawSql(kDowngradeToV1);
  Open();
  EXPECT_EQ(GetAttr(f->ino())->stored_bytes(), kBs + 33u);
  EXPECT_EQ(GetAttr(kRoot)->stored_bytes(), 0u);
}

// Range checksums (issue 14): kept as written, returned with the map, checked for shape.
TEST_F(MetaServiceTest, CommitBlocksKeepsRangeChecksums) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  const uint64_t id = Alloc(8);
  pb::Block ranged = MakeBlock(0, id, 9000, 9000, 7);
  ranged.set_range_size(4096);
  ranged.set_range_crc32c(std::string("\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00", 12));
  pb::Block plain = MakeBlock(1, id + 1, 10);
  ASSERT_OK(Commit(f->ino(), {ranged, plain}, kBs + 10));
  absl::StatusOr<pb::GetBlocksResponse> g = GetBlocks(f->ino());
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 2);
  EXPECT_EQ(g->blocks(0).range_size(), 4096u);
  EXPECT_EQ(g->blocks(0).range_crc32c(), ranged.range_crc32c());
  EXPECT_EQ(g->blocks(1).range_size(), 0u);
  EXPECT_EQ(g->blocks(1).range_crc32c(), "");
  // A rewrite of the block without ranges clears them.
  ASSERT_OK(Commit(f->ino(), {MakeBlock(0, id + 2, 9000)}));
  g = GetBlocks(f->ino());
  ASSERT_OK(g);
  EXPECT_EQ(g->blocks(0).range_size(), 0u);
  EXPECT_EQ(g->blocks(0).range_crc32c(), "");

  auto with = [&](uint64_t bid, uint32_t size, uint32_t range, size_t crc_bytes) {
    pb::Block b = MakeBlock(2, bid, size);
    b.set_range_size(range);
    b.set_range_crc32c(std::string(crc_bytes, 'c'));
    return Errno(Commit(f->ino(), {b}));
  };
  EXPECT_EQ(with(id + 3, 9000, 4096, 8), EINVAL);     // 3 ranges, 2 checksums
  EXPECT_EQ(with(id + 3, 9000, 4096, 16), EINVAL);    // 4 checksums
  EXPECT_EQ(with(id + 3, 9000, 0, 12), EINVAL);       // checksums without a range size
  EXPECT_EQ(with(id + 3, 9000, 256, 4 * 36), EINVAL); // ranges too small
  EXPECT_EQ(with(id + 3, 9000, kBs * 2, 4), EINVAL);  // larger than a block
  EXPECT_EQ(with(id + 3, 8192, 4096, 8), 0);
}

TEST_F(MetaServiceTest, SchemaV7DatabaseMigratesToV8) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  const uint64_t id = WriteBlock(f->ino(), 0, 100, 100);
  svc_.reset();
  // What a version-7 database looks like.
  RawSql(
      "ALTER TABLE blocks DROP COLUMN range_crc32c;"
      "ALTER TABLE blocks DROP COLUMN range_size;"
      "UPDATE meta SET value = '7' WHERE key = 'schema_version';");
  Open();
  ASSERT_TRUE(svc_);
  EXPECT_GE(kSchemaVersion, 8);
  absl::StatusOr<pb::GetBlocksResponse> g = GetBlocks(f->ino());
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 1);
  EXPECT_EQ(g->blocks(0).id(), id);
  EXPECT_EQ(g->blocks(0).range_size(), 0u) << "blocks written before have no range checksums";
  // New blocks keep theirs.
  pb::Block b = MakeBlock(1, Alloc(), 512);
  b.set_range_size(512);
  b.set_range_crc32c("abcd");
  ASSERT_OK(Commit(f->ino(), {b}));
  g = GetBlocks(f->ino());
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 2);
  EXPECT_EQ(g->blocks(1).range_crc32c(), "abcd");
}

pb::Block InlineBlock(const std::string& data, uint64_t index = 0) {
  pb::Block b;
  b.set_index(index);
  b.set_length(static_cast<uint32_t>(data.size()));
  b.set_object_size(static_cast<uint32_t>(data.size()));
  b.set_crc32c(Crc32c(data));
  b.set_inline_data(data);
  return b;
}

TEST_F(MetaServiceTest, InlineBlockIsStoredAndReturned) {
  absl::StatusOr<pb::MountResponse> m = MountVolume("vol");
  ASSERT_OK(m);
  EXPECT_EQ(m->inline_max_bytes(), 4096u) << "the default limit, within the block size";
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  absl::StatusOr<pb::Attr> g = Mknod(kRoot, "g");
  ASSERT_OK(f);
  ASSERT_OK(g);
  const std::string a = "hello, inline world";
  const std::string b(4096, 'b');  // exactly the limit
  absl::StatusOr<pb::Attr> after = Commit(f->ino(), {InlineBlock(a)}, a.size());
  ASSERT_OK(after);
  EXPECT_EQ(after->size(), a.size());
  EXPECT_EQ(after->stored_bytes(), a.size()) << "st_blocks counts inline bytes (du, tar -S)";
  // A second inline file: inline rows share no id (UNIQUE (volume_id, block_id) holds).
  ASSERT_OK(Commit(g->ino(), {InlineBlock(b)}, b.size()));
  Open();  // from the database file, not from memory
  absl::StatusOr<pb::GetBlocksResponse> got = GetBlocks(f->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).id(), 0u);
  EXPECT_EQ(got->blocks(0).inline_data(), a);
  EXPECT_EQ(got->blocks(0).length(), a.size());
  EXPECT_EQ(got->blocks(0).object_size(), a.size());
  EXPECT_EQ(got->blocks(0).crc32c(), Crc32c(a));
  EXPECT_EQ(got->blocks(0).holder(), "");
  got = GetBlocks(g->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).inline_data(), b);
  // An object block keeps carrying no inline bytes.
  const uint64_t id = WriteBlock(f->ino(), 1, 100);
  got = GetBlocks(f->ino(), 1);
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).id(), id);
  EXPECT_EQ(got->blocks(0).inline_data(), "");
}

TEST_F(MetaServiceTest, InlineBlocksOutsideTheRulesAreRefused) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  EXPECT_EQ(Errno(Commit(f->ino(), {InlineBlock(std::string(4097, 'x'))})), EINVAL)
      << "over the limit";
  EXPECT_EQ(Errno(Commit(f->ino(), {InlineBlock("abc", 1)})), EINVAL) << "not block 0";
  pb::Block bad_crc = InlineBlock("abc");
  bad_crc.set_crc32c(bad_crc.crc32c() ^ 1);
  EXPECT_EQ(Errno(Commit(f->ino(), {bad_crc})), EINVAL) << "bytes that fail their CRC";
  pb::Block short_length = InlineBlock("abcdef");
  short_length.set_length(3);
  EXPECT_EQ(Errno(Commit(f->ino(), {short_length})), EINVAL) << "length != bytes";
  pb::Block big_object = InlineBlock("abcdef");
  big_object.set_object_size(100);
  EXPECT_EQ(Errno(Commit(f->ino(), {big_object})), EINVAL) << "object size != bytes";
  pb::Block with_ranges = InlineBlock(std::string(1024, 'r'));
  with_ranges.set_range_size(512);
  with_ranges.set_range_crc32c(std::string(8, 'c'));
  EXPECT_EQ(Errno(Commit(f->ino(), {with_ranges})), EINVAL) << "ranges of no object";
  pb::Block both = MakeBlock(0, Alloc(), 3);
  both.set_inline_data("abc");
  EXPECT_EQ(Errno(Commit(f->ino(), {both})), EINVAL) << "an object id with inline bytes";
  absl::StatusOr<pb::GetBlocksResponse> got = GetBlocks(f->ino());
  ASSERT_OK(got);
  EXPECT_EQ(got->blocks_size(), 0) << "nothing refused was stored";
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM gc_blocks"), 0);

  // A server with the limit at 0 keeps no inline blocks, and says so at mount.
  inline_max_bytes_ = 0;
  Open();
  absl::StatusOr<pb::MountResponse> m = MountVolume("vol");
  ASSERT_OK(m);
  EXPECT_EQ(m->inline_max_bytes(), 0u);
  EXPECT_EQ(Errno(Commit(f->ino(), {InlineBlock("abc")})), EINVAL);
  // The largest limit (blocks are at least that large).
  inline_max_bytes_ = kMaxInlineBytes;
  Open();
  m = MountVolume("vol");
  ASSERT_OK(m);
  EXPECT_EQ(m->inline_max_bytes(), kMaxInlineBytes);
  ASSERT_OK(Commit(f->ino(), {InlineBlock(std::string(kMaxInlineBytes, 'm'))}, kMaxInlineBytes));
}

// The file grew past the limit (object replaces inline: nothing to collect), then was cut
// small and rewritten (inline replaces object: the object is collected).
TEST_F(MetaServiceTest, InlineAndObjectBlocksReplaceEachOther) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Commit(f->ino(), {InlineBlock("small")}, 5));
  const uint64_t id = WriteBlock(f->ino(), 0, 9000, 9000);
  absl::StatusOr<pb::GetBlocksResponse> got = GetBlocks(f->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).id(), id);
  EXPECT_EQ(got->blocks(0).inline_data(), "");
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM gc_blocks"), 0) << "the inline bytes named no object";

  ASSERT_OK(Truncate(f->ino(), 0));
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM gc_blocks"), 1);
  const uint64_t id2 = WriteBlock(f->ino(), 0, 3000, 3000);
  absl::StatusOr<pb::Attr> a = Commit(f->ino(), {InlineBlock("rewritten")}, 9);
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), 9u);
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM gc_blocks WHERE block_id = ", id2)), 1)
      << "the object the inline block replaced goes to garbage collection";
  got = GetBlocks(f->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).inline_data(), "rewritten");
  EXPECT_EQ(CollectGarbage(), 2);
  EXPECT_FALSE(Stored(id));
  EXPECT_FALSE(Stored(id2));
  {
    absl::MutexLock l(&store_->mu);
    for (const std::string& k : store_->deleted_keys) {
      EXPECT_NE(k, blockstore::BlockKey(0)) << "id 0 is no object";
    }
  }
  // An inline id 0 also stays out of the id reclaimer: the session ends, its allocations are
  // reclaimed, and the inline block is still there.
  ASSERT_OK(Unmount(session_));
  Advance(absl::Seconds(31));
  ASSERT_OK(svc_->RunGcOnce());
  got = GetBlocks(f->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).inline_data(), "rewritten");
}

// Truncation, a punched hole, unlink and volume deletion of inline files queue nothing.
TEST_F(MetaServiceTest, InlineBlocksLeaveNothingToCollect) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Commit(f->ino(), {InlineBlock("0123456789")}, 10));
  absl::StatusOr<pb::Attr> cut = Truncate(f->ino(), 4);
  ASSERT_OK(cut);
  EXPECT_EQ(cut->stored_bytes(), 4u);
  absl::StatusOr<pb::GetBlocksResponse> got = GetBlocks(f->ino());
  ASSERT_OK(got);
  ASSERT_EQ(got->blocks_size(), 1);
  EXPECT_EQ(got->blocks(0).length(), 4u) << "bytes past the new end read as zeros";
  EXPECT_EQ(got->blocks(0).inline_data(), "0123456789") << "kept whole: its CRC still holds";
  EXPECT_EQ(got->blocks(0).crc32c(), Crc32c("0123456789"));

  pb::CommitBlocksRequest punch;
  punch.set_volume_id(vol_);
  punch.set_ino(f->ino());
  punch.add_drop_indexes(0);
  ASSERT_OK(svc_->CommitBlocks(punch));
  got = GetBlocks(f->ino());
  ASSERT_OK(got);
  EXPECT_EQ(got->blocks_size(), 0);

  ASSERT_OK(Commit(f->ino(), {InlineBlock("again")}, 5));
  ASSERT_OK(Truncate(f->ino(), 0));
  ASSERT_OK(Commit(f->ino(), {InlineBlock("and again")}, 9));
  ASSERT_OK(Unlink(kRoot, "f"));
  absl::StatusOr<pb::Attr> g = Mknod(kRoot, "g");
  ASSERT_OK(g);
  ASSERT_OK(Commit(g->ino(), {InlineBlock("in a volume about to go")}, 23));
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM gc_blocks"), 0);
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM blocks WHERE ino = " + std::to_string(f->ino())), 0);
  ASSERT_OK(Unmount(session_));
  pb::DeleteVolumeRequest dv;
  dv.set_name("vol");
  ASSERT_OK(svc_->DeleteVolume(dv));
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM gc_blocks"), 0);
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM blocks"), 0);
}

TEST_F(MetaServiceTest, SchemaV8DatabaseMigratesToV9) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  const uint64_t id = WriteBlock(f->ino(), 0, 100, 100);
  pb::Block ranged = MakeBlock(1, Alloc(), 1024);
  ranged.set_range_size(512);
  ranged.set_range_crc32c("abcdefgh");
  ASSERT_OK(Commit(f->ino(), {ranged}, 2 * kBs));
  svc_.reset();
  // What a version-8 database looks like: block_id NOT NULL, no inline_data.
  RawSql(
      "CREATE TABLE blocks_v8 (volume_id INTEGER NOT NULL, ino INTEGER NOT NULL, "
      "idx INTEGER NOT NULL, block_id INTEGER NOT NULL, length INTEGER NOT NULL, "
      "object_size INTEGER NOT NULL, crc32c INTEGER NOT NULL, holder_id INTEGER, "
      "range_size INTEGER, range_crc32c BLOB, PRIMARY KEY (volume_id, ino, idx), "
      "UNIQUE (volume_id, block_id), "
      "FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino));"
      "INSERT INTO blocks_v8 SELECT volume_id, ino, idx, block_id, length, object_size, crc32c, "
      "holder_id, range_size, range_crc32c FROM blocks;"
      "DROP TABLE blocks;"
      "ALTER TABLE blocks_v8 RENAME TO blocks;"
      "UPDATE meta SET value = '8' WHERE key = 'schema_version';");
  Open();
  ASSERT_TRUE(svc_);
  EXPECT_EQ(RawInt("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"), 9);
  absl::StatusOr<pb::GetBlocksResponse> g = GetBlocks(f->ino());
  ASSERT_OK(g);
  ASSERT_EQ(g->blocks_size(), 2);
  EXPECT_EQ(g->blocks(0).id(), id);
  EXPECT_EQ(g->blocks(0).length(), 100u);
  EXPECT_EQ(g->blocks(1).id(), ranged.id());
  EXPECT_EQ(g->blocks(1).range_crc32c(), "abcdefgh");
  EXPECT_EQ(g->blocks(0).inline_data(), "");
  absl::StatusOr<pb::Attr> a = GetAttr(f->ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->stored_bytes(), 1124u);
  // The keys survived the rebuild: an id stays one entry's, and inline blocks go in.
  absl::StatusOr<pb::Attr> h = Mknod(kRoot, "h");
  ASSERT_OK(h);
  EXPECT_EQ(Errno(Commit(h->ino(), {MakeBlock(0, id, 100)})), EINVAL);
  ASSERT_OK(Commit(h->ino(), {InlineBlock("new")}, 3));
  ASSERT_OK(Commit(f->ino(), {InlineBlock("replaces")}, 8));
  EXPECT_EQ(RawInt(absl::StrCat("SELECT COUNT(*) FROM gc_blocks WHERE block_id = ", id)), 1);
  // A row with neither an id nor inline bytes (or both) is refused by the table itself.
  EXPECT_EQ(RawInt("SELECT COUNT(*) FROM blocks WHERE (block_id IS NULL) = "
                   "(inline_data IS NULL)"),
            0);
}

TEST_F(MetaServiceTest, CommitBlocksClearsSetuid) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f", S_IFREG | 06755);
  absl::StatusOr<pb::Attr> g = Mknod(kRoot, "g", S_IFREG | 06745);  // group cannot execute
  ASSERT_OK(f);
  ASSERT_OK(g);
  uint64_t id = Alloc(3);
  absl::StatusOr<pb::Attr> a = Commit(f->ino(), {MakeBlock(0, id, 1)}, 1);
  ASSERT_OK(a);
  EXPECT_EQ(a->mode(), static_cast<uint32_t>(S_IFREG | 06755));  // not asked to
  a = Commit(f->ino(), {MakeBlock(0, id + 1, 1)}, 1, 0, /*clear_suid=*/true);
  ASSERT_OK(a);
  EXPECT_EQ(a->mode(), static_cast<uint32_t>(S_IFREG | 0755));
  a = Commit(g->ino(), {MakeBlock(0, id + 2, 1)}, 1, 0, /*clear_suid=*/true);
  ASSERT_OK(a);
  EXPECT_EQ(a->mode(), static_cast<uint32_t>(S_IFREG | S_ISGID | 0745));  // mandatory locking bit
}

TEST_F(MetaServiceTest, StatFs) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Mkdir(kRoot, "d"));
  uint64_t id = Alloc(2);
  ASSERT_OK(Commit(f->ino(), {MakeBlock(0, id, 10, 100), MakeBlock(1, id + 1, 5, 7)}));
  pb::StatFsRequest r;
  r.set_volume_id(vol_);
  absl::StatusOr<pb::StatFsResponse> s = svc_->StatFs(r);
  ASSERT_OK(s);
  EXPECT_EQ(s->used_bytes(), 107u);
  EXPECT_EQ(s->inodes(), 3u);  // root, f, d
  EXPECT_EQ(s->block_size(), kBs);
  r.set_volume_id(4444);
  EXPECT_THAT(svc_->StatFs(r), StatusIs(absl::StatusCode::kNotFound));
}

// ---- xattrs ----

TEST_F(MetaServiceTest, Xattrs) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  Advance(absl::Seconds(1));
  ASSERT_OK(SetXattr(f->ino(), "user.b", std::string("v\0al", 4)));
  absl::StatusOr<pb::Attr> a = GetAttr(f->ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->ctime_ns(), Now());
  ASSERT_OK(SetXattr(f->ino(), "user.a", ""));
  absl::StatusOr<std::string> v = GetXattr(f->ino(), "user.b");
  ASSERT_OK(v);
  EXPECT_EQ(*v, std::string("v\0al", 4));
  v = GetXattr(f->ino(), "user.a");
  ASSERT_OK(v);
  EXPECT_EQ(*v, "");
  EXPECT_THAT(ListXattr(f->ino()), ElementsAre("user.a", "user.b"));

  EXPECT_EQ(Errno(SetXattr(f->ino(), "user.a", "x", 1)), EEXIST);
  EXPECT_EQ(Errno(SetXattr(f->ino(), "user.c", "x", 2)), ENODATA);
  EXPECT_EQ(Errno(SetXattr(f->ino(), "user.c", "x", 4)), EINVAL);
  ASSERT_OK(SetXattr(f->ino(), "user.a", "replaced", 2));
  ASSERT_OK(SetXattr(f->ino(), "user.c", "created", 1));
  EXPECT_EQ(*GetXattr(f->ino(), "user.a"), "replaced");
  absl::StatusOr<std::string> missing = GetXattr(f->ino(), "user.zzz");
  EXPECT_EQ(Errno(missing), ENODATA);
  EXPECT_FALSE(IsRetryable(missing.status()));

  Advance(absl::Seconds(1));
  ASSERT_OK(RemoveXattr(f->ino(), "user.a"));
  a = GetAttr(f->ino());
  ASSERT_OK(a);
  EXPECT_EQ(a->ctime_ns(), Now());
  EXPECT_EQ(Errno(RemoveXattr(f->ino(), "user.a")), ENODATA);
  EXPECT_THAT(ListXattr(f->ino()), ElementsAre("user.b", "user.c"));

  EXPECT_EQ(Errno(SetXattr(f->ino(), "", "x")), ERANGE);
  EXPECT_EQ(Errno(SetXattr(f->ino(), std::string(256, 'n'), "x")), ERANGE);
  EXPECT_EQ(Errno(GetXattr(f->ino(), std::string(256, 'n'))), ERANGE);
  EXPECT_OK(SetXattr(f->ino(), std::string(255, 'n'), "x"));
  EXPECT_EQ(Errno(SetXattr(f->ino(), "user.big", std::string(64 * 1024 + 1, 'v'))), E2BIG);
  EXPECT_OK(SetXattr(f->ino(), "user.big", std::string(64 * 1024, 'v')));
  EXPECT_EQ(Errno(SetXattr(9999, "user.a", "x")), ENOENT);
  EXPECT_EQ(Errno(GetXattr(9999, "user.a")), ENOENT);

  // Directories have xattrs too.
  ASSERT_OK(SetXattr(kRoot, "user.dir", "1"));
  EXPECT_THAT(ListXattr(kRoot), ElementsAre("user.dir"));
}

// Attr.no_xattrs, on the replies a mount answers stat and ls -l from.
TEST_F(MetaServiceTest, LookupGetAttrAndReadDirPlusSayWhetherAnInodeHasXattrs) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  auto no_xattrs = [&]() -> std::vector<bool> {
    std::vector<bool> out;
    absl::StatusOr<pb::Attr> a = GetAttr(f->ino());
    out.push_back(a.ok() && a->no_xattrs());
    pb::LookupRequest lr;
    lr.set_volume_id(vol_);
    lr.mutable_caller();
    lr.set_parent(kRoot);
    lr.set_name("f");
    absl::StatusOr<pb::EntryResponse> l = svc_->Lookup(lr);
    out.push_back(l.ok() && l->attr().no_xattrs());
    pb::ReadDirRequest rd;
    rd.set_volume_id(vol_);
    rd.mutable_caller();
    rd.set_ino(kRoot);
    rd.set_plus(true);
    absl::StatusOr<pb::ReadDirResponse> d = svc_->ReadDir(rd);
    out.push_back(d.ok() && d->entries_size() == 1 && d->entries(0).attr().no_xattrs());
    return out;
  };
  EXPECT_THAT(no_xattrs(), ElementsAre(true, true, true));
  ASSERT_OK(SetXattr(f->ino(), "security.selinux", "ctx"));
  EXPECT_THAT(no_xattrs(), ElementsAre(false, false, false));
  ASSERT_OK(RemoveXattr(f->ino(), "security.selinux"));
  EXPECT_THAT(no_xattrs(), ElementsAre(true, true, true));
}

// ---- exactly-once mutations ----

// A request of `vol_` with request id `id`.
template <class Req>
Req WithId(Req r, const std::string& id) {
  r.set_request_id(id);
  return r;
}

TEST_F(MetaServiceTest, RetriedCreateGetsItsOwnReply) {
  pb::MknodRequest r;
  r.set_volume_id(vol_);
  r.set_parent(kRoot);
  r.set_name("lock");
  r.set_mode(S_IFREG | 0644);
  r.set_request_id("id-mknod-0000001");
  absl::StatusOr<pb::EntryResponse> first = svc_->Mknod(r);
  ASSERT_OK(first);
  Advance(absl::Seconds(1));
  // The reply was "lost"; the retry, even after a restart, gets the same answer, not EEXIST.
  Open();
  absl::StatusOr<pb::EntryResponse> again = svc_->Mknod(r);
  ASSERT_OK(again);
  EXPECT_EQ(again->DebugString(), first->DebugString());
  EXPECT_THAT(Names(kRoot), ElementsAre("lock"));
  EXPECT_EQ(GetAttr(kRoot)->mtime_ns(), first->attr().mtime_ns());  // applied once
  // Another operation (another id) on the same name is a real conflict.
  r.set_request_id("id-mknod-0000002");
  EXPECT_EQ(Errno(svc_->Mknod(r)), EEXIST);
  // So is the same operation without an id.
  r.clear_request_id();
  EXPECT_EQ(Errno(svc_->Mknod(r)), EEXIST);

  pb::MkdirRequest m;
  m.set_volume_id(vol_);
  m.set_parent(kRoot);
  m.set_name("d");
  m.set_mode(0755);
  m.set_request_id("id-mkdir");
  absl::StatusOr<pb::EntryResponse> d1 = svc_->Mkdir(m);
  ASSERT_OK(d1);
  absl::StatusOr<pb::EntryResponse> d2 = svc_->Mkdir(m);
  ASSERT_OK(d2);
  EXPECT_EQ(d2->attr().ino(), d1->attr().ino());
  EXPECT_EQ(GetAttr(kRoot)->nlink(), 3u);
}

TEST_F(MetaServiceTest, RetriedRemovalsAndLinksAreAppliedOnce) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  ASSERT_OK(Mkdir(kRoot, "d"));
  ASSERT_OK(Mknod(kRoot, "g"));

  pb::LinkRequest l;
  l.set_volume_id(vol_);
  l.set_ino(f->ino());
  l.set_new_parent(kRoot);
  l.set_new_name("f2");
  l = WithId(l, "id-link");
  absl::StatusOr<pb::EntryResponse> l1 = svc_->Link(l);
  ASSERT_OK(l1);
  absl::StatusOr<pb::EntryResponse> l2 = svc_->Link(l);
  ASSERT_OK(l2);  // not EEXIST
  EXPECT_EQ(l2->attr().nlink(), 2u);
  EXPECT_EQ(GetAttr(f->ino())->nlink(), 2u);

  pb::RenameRequest rn;
  rn.set_volume_id(vol_);
  rn.set_parent(kRoot);
  rn.set_name("f2");
  rn.set_new_parent(kRoot);
  rn.set_new_name("f3");
  rn.set_session_id(session_);
  rn = WithId(rn, "id-rename");
  ASSERT_OK(svc_->Rename(rn));
  ASSERT_OK(svc_->Rename(rn));  // not ENOENT
  EXPECT_THAT(Names(kRoot), UnorderedElementsAre("f", "f3", "d", "g"));

  pb::UnlinkRequest u;
  u.set_volume_id(vol_);
  u.set_parent(kRoot);
  u.set_name("f3");
  u.set_session_id(session_);
  u = WithId(u, "id-unlink");
  absl::StatusOr<pb::UnlinkResponse> u1 = svc_->Unlink(u);
  ASSERT_OK(u1);
  Open();
  absl::StatusOr<pb::UnlinkResponse> u2 = svc_->Unlink(u);
  ASSERT_OK(u2);  // not ENOENT
  // The same reply, except that a replay says nothing of the directory's changes since.
  EXPECT_TRUE(u1->parent_unchanged());
  EXPECT_FALSE(u2->parent_unchanged());
  pb::UnlinkResponse want = *u1;
  want.clear_parent_unchanged();
  EXPECT_EQ(u2->DebugString(), want.DebugString());
  EXPECT_EQ(GetAttr(f->ino())->nlink(), 1u);  // one link dropped, not two

  pb::RmdirRequest rd;
  rd.set_volume_id(vol_);
  rd.set_parent(kRoot);
  rd.set_name("d");
  rd = WithId(rd, "id-rmdir");
  ASSERT_OK(svc_->Rmdir(rd));
  ASSERT_OK(svc_->Rmdir(rd));  // not ENOENT
  EXPECT_EQ(GetAttr(kRoot)->nlink(), 2u);
  EXPECT_THAT(Names(kRoot), UnorderedElementsAre("f", "g"));
}

TEST_F(MetaServiceTest, RetriedDataAndAttributeCallsAreAppliedOnce) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  pb::AllocBlockIdsRequest a;
  a.set_volume_id(vol_);
  a.set_count(4);
  a = WithId(a, "id-alloc");
  absl::StatusOr<pb::AllocBlockIdsResponse> a1 = svc_->AllocBlockIds(a);
  ASSERT_OK(a1);
  absl::StatusOr<pb::AllocBlockIdsResponse> a2 = svc_->AllocBlockIds(a);
  ASSERT_OK(a2);
  EXPECT_EQ(a2->first_id(), a1->first_id());
  EXPECT_EQ(Alloc(), a1->first_id() + 4);  // the retry allocated nothing

  Advance(absl::Seconds(1));
  pb::CommitBlocksRequest c;
  c.set_volume_id(vol_);
  c.set_ino(f->ino());
  *c.add_blocks() = MakeBlock(0, a1->first_id(), 10);
  c.set_min_size(10);
  c = WithId(c, "id-commit");
  absl::StatusOr<pb::CommitBlocksResponse> c1 = svc_->CommitBlocks(c);
  ASSERT_OK(c1);
  // Another writer's later commit replaces the block; the stale retry must not put it back.
  WriteBlock(f->ino(), 0, 20, 20);
  Advance(absl::Seconds(1));
  absl::StatusOr<pb::CommitBlocksResponse> c2 = svc_->CommitBlocks(c);
  ASSERT_OK(c2);
  EXPECT_EQ(c2->DebugString(), c1->DebugString());
  EXPECT_THAT(BlockIds(f->ino()), ::testing::Not(ElementsAre(a1->first_id())));
  EXPECT_EQ(GetAttr(f->ino())->stored_bytes(), 20u);

  pb::MountRequest m;
  m.set_volume_name("vol");
  m.set_hostname("h");
  m.set_mount_point("/m");
  m = WithId(m, "id-mount");
  absl::StatusOr<pb::MountResponse> m1 = svc_->Mount(m);
  ASSERT_OK(m1);
  absl::StatusOr<pb::MountResponse> m2 = svc_->Mount(m);
  ASSERT_OK(m2);
  EXPECT_EQ(m2->session_id(), m1->session_id());  // one session, not two
}

TEST_F(MetaServiceTest, FailedMutationsAreNotRecorded) {
  pb::MknodRequest r;
  r.set_volume_id(vol_);
  r.set_parent(kRoot);
  r.set_name("x");
  r.set_mode(S_IFREG | 0644);
  r.set_request_id("id-x");
  ASSERT_OK(Mknod(kRoot, "x"));
  EXPECT_EQ(Errno(svc_->Mknod(r)), EEXIST);
  ASSERT_OK(Unlink(kRoot, "x"));
  // The failure changed nothing; the retry runs afresh.
  EXPECT_OK(svc_->Mknod(r));
  // An id names one operation: reusing it for another method is refused.
  pb::RmdirRequest rd;
  rd.set_volume_id(vol_);
  rd.set_parent(kRoot);
  rd.set_name("x");
  rd.set_request_id("id-x");
  EXPECT_THAT(svc_->Rmdir(rd), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(MetaServiceTest, RecordedRepliesExpireAndAreBounded) {
  svc_.reset();
  MetaServiceOptions o = Options();
  o.request_reply_ttl = absl::Minutes(10);
  o.max_request_replies = 3;
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ASSERT_OK(s);
  svc_ = std::move(*s);
  auto mknod = [&](const std::string& name, const std::string& id) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(kRoot);
    r.set_name(name);
    r.set_mode(S_IFREG | 0644);
    r.set_request_id(id);
    return svc_->Mknod(r);
  };
  for (int i = 0; i < 5; ++i) ASSERT_OK(mknod(absl::StrCat("f", i), absl::StrCat("id", i)));
  absl::StatusOr<int64_t> n = svc_->ExpireRequestRepliesOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 2);  // the two oldest, over the bound
  EXPECT_EQ(Errno(mknod("f0", "id0")), EEXIST);
  EXPECT_OK(mknod("f4", "id4"));
  Advance(absl::Minutes(9));
  n = svc_->ExpireRequestRepliesOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  EXPECT_OK(mknod("f4", "id4"));
  Advance(absl::Minutes(2));
  n = svc_->ExpireRequestRepliesOnce();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(Errno(mknod("f4", "id4")), EEXIST);
}

TEST_F(MetaServiceTest, DeduplicationCanBeTurnedOff) {
  svc_.reset();
  MetaServiceOptions o = Options();
  o.request_reply_ttl = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ASSERT_OK(s);
  svc_ = std::move(*s);
  pb::MknodRequest r;
  r.set_volume_id(vol_);
  r.set_parent(kRoot);
  r.set_name("x");
  r.set_request_id("id-x");
  ASSERT_OK(svc_->Mknod(r));
  EXPECT_EQ(Errno(svc_->Mknod(r)), EEXIST);  // the failure exactly-once exists to prevent
}

TEST_F(MetaServiceTest, TestHookRunsAfterEachCommittedMutation) {
  svc_.reset();
  MetaServiceOptions o = Options();
  std::atomic<int> commits{0};
  o.test_after_commit = [&] { commits++; };
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ASSERT_OK(s);
  svc_ = std::move(*s);
  ASSERT_OK(Mknod(kRoot, "a"));
  ASSERT_OK(GetAttr(kRoot));                  // a read
  EXPECT_EQ(Errno(Mknod(kRoot, "a")), EEXIST);  // a failure
  ASSERT_OK(Heartbeat(session_));             // not a mutation of the namespace
  EXPECT_EQ(commits.load(), 1);
  svc_.reset();
}

// ---- garbage collection ----

TEST_F(MetaServiceTest, GcRetriesFailedDeletes) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, 10);
  uint64_t b1 = WriteBlock(f->ino(), 1, 10);
  ASSERT_OK(Unlink(kRoot, "f"));
  store_->SetFailDelete(true);
  EXPECT_EQ(CollectGarbage(), 0);
  EXPECT_TRUE(Stored(b0));
  store_->SetFailDelete(false);
  EXPECT_EQ(CollectGarbage(), 2);
  EXPECT_FALSE(Stored(b0));
  EXPECT_FALSE(Stored(b1));
  EXPECT_EQ(CollectGarbage(), 0);
}

TEST_F(MetaServiceTest, GcRetriesWhenTheStoreCannotBeOpened) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, 10);
  ASSERT_OK(Unlink(kRoot, "f"));
  // A fresh service has no store open yet.
  Open();
  stores_.SetFailOpen(true);
  EXPECT_EQ(CollectGarbage(), 0);
  EXPECT_TRUE(Stored(b0));
  stores_.SetFailOpen(false);
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(b0));
}

TEST_F(MetaServiceTest, GcHandlesManyPages) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  constexpr int kBlocks = 2500;
  uint64_t first = Alloc(kBlocks);
  std::vector<pb::Block> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    blocks.push_back(MakeBlock(i, first + i, 1));
    store_->Put(blockstore::BlockKey(first + i), "x");
  }
  ASSERT_OK(Commit(f->ino(), blocks, kBlocks));
  ASSERT_OK(Unlink(kRoot, "f"));
  EXPECT_EQ(CollectGarbage(), kBlocks);
  EXPECT_EQ(store_->Count(), 0u);
}

TEST_F(MetaServiceTest, BackgroundThreadCollects) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  uint64_t b0 = WriteBlock(f->ino(), 0, 10);
  ASSERT_OK(Unlink(kRoot, "f"));
  Advance(absl::Seconds(31));
  svc_.reset();
  MetaServiceOptions o = Options();
  o.run_background = true;
  o.gc_interval = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ASSERT_OK(s);
  svc_ = std::move(*s);
  EXPECT_TRUE(::nighfs::testing::WaitFor([&] { return !Stored(b0); }, absl::Seconds(10)));
}

// ---- ids allocated to sessions that never committed them ----

TEST_F(MetaServiceTest, UncommittedIdsOfAnEndedSessionAreCollected) {
  absl::StatusOr<pb::Attr> f = Mknod(kRoot, "f");
  ASSERT_OK(f);
  absl::StatusOr<pb::MountResponse> other = MountVolume("vol");
  ASSERT_OK(other);
  auto alloc = [&](uint64_t session, uint32_t count) {
    pb::AllocBlockIdsRequest r;
    r.set_volume_id(vol_);
    r.set_count(count);
    r.set_session_id(session);
    absl::StatusOr<pb::AllocBlockIdsResponse> resp = svc_->AllocBlockIds(r);
    EXPECT_OK(resp);
    return resp.ok() ? resp->first_id() : 0;
  };
  // Session 1 uploads four blocks and commits two; session 2 uploads one and stays mounted.
  const uint64_t first = alloc(session_, 8);
  const uint64_t live = alloc(other->session_id(), 2);
  for (uint64_t id : {first, first + 1, first + 2, first + 3, live}) {
    store_->Put(blockstore::BlockKey(id), "data");
  }
  ASSERT_OK(Commit(f->ino(), {MakeBlock(0, first, 4), MakeBlock(1, first + 2, 4)}, 2 * kBs));
  // A freed (queued) id of the range is handled by the queue, once.
  ASSERT_OK(Commit(f->ino(), {MakeBlock(1, first + 4, 4)}));  // frees first + 2
  ASSERT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(first + 2));
  store_->Put(blockstore::BlockKey(first + 4), "data");

  // While the session lives nothing of it is touched, however old.
  Advance(absl::Hours(1));
  EXPECT_EQ(CollectGarbage(), 0);
  EXPECT_TRUE(Stored(first + 1));

  ASSERT_OK(Unmount(session_));
  // Not before gc_grace has passed since the session ended.
  Advance(absl::Seconds(10));
  ASSERT_OK(svc_->RunGcOnce());
  EXPECT_TRUE(Stored(first + 1));
  // Then every id of its range that no block map names: 8 ids minus 2 committed, minus the
  // one that was freed and deleted already... which is no longer queued, so it is deleted
  // again (harmlessly).
  EXPECT_EQ(CollectGarbage(), 6);
  EXPECT_TRUE(Stored(first));       // committed
  EXPECT_TRUE(Stored(first + 4));   // committed
  EXPECT_FALSE(Stored(first + 1));  // uploaded, never committed
  EXPECT_FALSE(Stored(first + 3));
  EXPECT_TRUE(Stored(live));        // another, live session's
  EXPECT_EQ(CollectGarbage(), 0);

  // A late commit of a reclaimed id is refused with ESTALE (upload again, new id); one of a
  // live session's range is not.
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(2, first + 3, 4)})), ESTALE);
  EXPECT_EQ(Errno(Commit(f->ino(), {MakeBlock(2, first + 7, 4)})), ESTALE);
  EXPECT_OK(Commit(f->ino(), {MakeBlock(2, live, 4)}));
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(first, first + 4, live));
}

TEST_F(MetaServiceTest, ExpiredSessionsAndDeletedVolumesReclaimTheirIds) {
  auto alloc = [&](uint64_t session) {
    pb::AllocBlockIdsRequest r;
    r.set_volume_id(vol_);
    r.set_count(1);
    r.set_session_id(session);
    absl::StatusOr<pb::AllocBlockIdsResponse> resp = svc_->AllocBlockIds(r);
    EXPECT_OK(resp);
    return resp.ok() ? resp->first_id() : 0;
  };
  const uint64_t a = alloc(session_);
  store_->Put(blockstore::BlockKey(a), "a");
  Advance(absl::Seconds(301));
  ASSERT_OK(svc_->ExpireSessionsOnce());
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(a));

  absl::StatusOr<pb::MountResponse> m = MountVolume("vol");
  ASSERT_OK(m);
  const uint64_t b = alloc(m->session_id());
  store_->Put(blockstore::BlockKey(b), "b");
  ASSERT_OK(Unmount(m->session_id()));
  pb::DeleteVolumeRequest d;
  d.set_name("vol");
  ASSERT_OK(svc_->DeleteVolume(d));
  EXPECT_EQ(CollectGarbage(), 1);
  EXPECT_FALSE(Stored(b));
}

// ---- durability and robustness ----

TEST_F(MetaServiceTest, StateSurvivesReopening) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  absl::StatusOr<pb::Attr> f = Mknod(d->ino(), "f");
  ASSERT_OK(f);
  uint64_t id = WriteBlock(f->ino(), 0, 10, 10);
  ASSERT_OK(SetXattr(f->ino(), "user.k", "v"));
  Open();
  absl::StatusOr<pb::Attr> l = Lookup(d->ino(), "f");
  ASSERT_OK(l);
  EXPECT_EQ(l->DebugString(), GetAttr(f->ino())->DebugString());
  EXPECT_EQ(l->size(), 10u);
  EXPECT_THAT(BlockIds(f->ino()), ElementsAre(id));
  EXPECT_EQ(*GetXattr(f->ino(), "user.k"), "v");
  EXPECT_OK(Heartbeat(session_));
  absl::StatusOr<pb::Attr> g = Mknod(kRoot, "g");
  ASSERT_OK(g);
  EXPECT_GT(g->ino(), f->ino());
  EXPECT_GT(Alloc(), id);
}

TEST_F(MetaServiceTest, MemoryStoresOnlyForTests) {
  svc_.reset();
  MetaServiceOptions o = Options();
  o.allow_test_stores = false;
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ASSERT_OK(s);
  svc_ = std::move(*s);
  absl::StatusOr<pb::Volume> v = CreateVolume("mem", "mem://elsewhere");
  EXPECT_THAT(v, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("--allow-test-stores"));
  EXPECT_EQ(stores_.State("mem://elsewhere")->Count(), 0u);
}

TEST_F(MetaServiceTest, DatabaseFilesArePrivateWhateverTheUmask) {
  svc_.reset();
  // Files an older version left with the umask's mode.
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
    const std::string path = db_path_ + suffix;
    if (::access(path.c_str(), F_OK) == 0) {
      ASSERT_EQ(::chmod(path.c_str(), 0644), 0) << path;
    }
  }
  const mode_t old_mask = ::umask(022);
  Open();
  ASSERT_OK(Mknod(kRoot, "f"));  // the WAL exists now
  ::umask(old_mask);
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
    struct stat st;
    const std::string path = db_path_ + suffix;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
  // A fresh database too.
  TempDir other;
  MetaServiceOptions o = Options();
  o.db_path = other.path() + "/fresh.db";
  ::umask(022);
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  ::umask(old_mask);
  ASSERT_OK(s);
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) {
    struct stat st;
    const std::string path = o.db_path + suffix;
    if (::stat(path.c_str(), &st) != 0) continue;  // -wal/-shm appear with the first write
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
  }
}

TEST_F(MetaServiceTest, OneServerPerDatabase) {
  absl::StatusOr<std::unique_ptr<MetaService>> second = MetaService::Open(Options());
  EXPECT_THAT(second, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
}

TEST_F(MetaServiceTest, RefusesANewerSchema) {
  svc_.reset();
  RawSql("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(Options());
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("schema version 99"));
}

TEST_F(MetaServiceTest, RefusesAFileThatIsNotADatabase) {
  TempDir other;
  const std::string path = other.path() + "/junk.db";
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fputs("this is not an sqlite database, not even close, but long enough to look like one....",
        f);
  fclose(f);
  MetaServiceOptions o = Options();
  o.db_path = path;
  absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr(path));
}

TEST_F(MetaServiceTest, NonsenseIdsAreAnsweredNotCrashedOn) {
  const uint64_t huge = ~uint64_t{0};
  pb::GetAttrRequest g;
  g.set_volume_id(huge);
  g.set_ino(huge);
  EXPECT_EQ(Errno(svc_->GetAttr(g)), ENOENT);
  pb::LookupRequest l;
  l.set_volume_id(huge);
  l.set_parent(huge);
  l.set_name("x");
  EXPECT_EQ(Errno(svc_->Lookup(l)), ENOENT);
  pb::MknodRequest m;
  m.set_volume_id(huge);
  m.set_parent(1);
  m.set_name("x");
  EXPECT_EQ(Errno(svc_->Mknod(m)), ENOENT);
  pb::CommitBlocksRequest c;
  c.set_volume_id(huge);
  EXPECT_THAT(svc_->CommitBlocks(c), StatusIs(absl::StatusCode::kNotFound));
  pb::ReleaseRequest r;
  r.set_volume_id(huge);
  r.set_session_id(huge);
  r.set_ino(huge);
  EXPECT_OK(svc_->Release(r));
  pb::HeartbeatRequest h;
  h.set_session_id(huge);
  EXPECT_THAT(svc_->Heartbeat(h), StatusIs(absl::StatusCode::kNotFound));
  // Every call with an empty request.
#define NIGHFS_CALL_EMPTY(M, Req, Resp) (void)svc_->M(pb::Req());
  NIGHFS_META_METHODS(NIGHFS_CALL_EMPTY)
#undef NIGHFS_CALL_EMPTY
  EXPECT_OK(GetAttr(kRoot));
}

TEST_F(MetaServiceTest, ConcurrentCallers) {
  absl::StatusOr<pb::Attr> d = Mkdir(kRoot, "d");
  ASSERT_OK(d);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  std::vector<std::vector<uint64_t>> inos(kThreads);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<pb::Attr> a = Mknod(d->ino(), absl::StrCat("t", t, "-", i));
        if (!a.ok()) {
          failures++;
          continue;
        }
        inos[t].push_back(a->ino());
        if (!Lookup(d->ino(), absl::StrCat("t", t, "-", i)).ok()) failures++;
        if (!ReadDir(d->ino(), 0, 10).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::set<uint64_t> unique;
  for (const auto& v : inos) unique.insert(v.begin(), v.end());
  EXPECT_EQ(unique.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(Names(d->ino(), 7).size(), static_cast<size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace nighfs::meta
