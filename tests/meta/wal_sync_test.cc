// Batched durability of namespace changes (meta/wal_sync.h, nighfs-meta
// --namespace-sync=batched): which commits sync the metadata log, counted at the VFS SQLite
// writes through and at WalSync itself, against a real database.
#include "meta/wal_sync.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "tests/meta/fake_store.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta {
namespace {

using ::nighfs::testing::TempDir;

// While alive, the default SQLite VFS is one that counts xSync calls on write-ahead logs (and
// on every other file) of the connections opened meanwhile. One at a time per process.
class CountingVfs {
 public:
  CountingVfs() {
    base_ = sqlite3_vfs_find(nullptr);
    vfs_ = *base_;  // pAppData stays the base's: the unix VFS keeps its lock finder there
    vfs_.zName = "nighfs-sync-counting";
    vfs_.xOpen = &OpenFile;
    self_ = this;
    sqlite3_vfs_register(&vfs_, /*makeDflt=*/1);
  }
  ~CountingVfs() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(base_, 1);
    self_ = nullptr;
  }
  CountingVfs(const CountingVfs&) = delete;
  CountingVfs& operator=(const CountingVfs&) = delete;

  int wal_syncs() const { return wal_syncs_.load(); }
  int other_syncs() const { return other_syncs_.load(); }

 private:
  // A copy of a file's method table with xSync counting, per (original table, is WAL). The
  // copies are never freed: a connection may close after this object is gone.
  struct Tables {
    absl::Mutex mu;
    std::map<std::pair<const sqlite3_io_methods*, bool>, sqlite3_io_methods*> copies;
    std::map<const sqlite3_io_methods*, std::pair<const sqlite3_io_methods*, bool>> originals;
  };
  static Tables& tables() {
    static Tables* t = new Tables;
    return *t;
  }

  static int OpenFile(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out) {
    CountingVfs* self = self_;
    const int rc = self->base_->xOpen(self->base_, name, f, flags, out);
    if (rc != SQLITE_OK || f->pMethods == nullptr) return rc;
    const std::pair<const sqlite3_io_methods*, bool> key{f->pMethods,
                                                         (flags & SQLITE_OPEN_WAL) != 0};
    Tables& t = tables();
    absl::MutexLock lock(&t.mu);
    sqlite3_io_methods*& copy = t.copies[key];
    if (copy == nullptr) {
      copy = new sqlite3_io_methods(*f->pMethods);
      copy->xSync = &SyncFile;
      t.originals[copy] = key;
    }
    f->pMethods = copy;
    return rc;
  }

  static int SyncFile(sqlite3_file* f, int flags) {
    std::pair<const sqlite3_io_methods*, bool> original;
    {
      Tables& t = tables();
      absl::MutexLock lock(&t.mu);
      original = t.originals.at(f->pMethods);
    }
    if (CountingVfs* self = self_; self != nullptr) {
      (original.second ? self->wal_syncs_ : self->other_syncs_).fetch_add(1);
    }
    return original.first->xSync(f, flags);
  }

  static inline CountingVfs* self_ = nullptr;
  sqlite3_vfs* base_ = nullptr;
  sqlite3_vfs vfs_{};
  std::atomic<int> wal_syncs_{0};
  std::atomic<int> other_syncs_{0};
};

class BatchedSyncTest : public ::testing::Test {
 protected:
  // Opens the service (batched when `interval` > 0) with a volume and a session.
  void Open(absl::Duration interval) {
    MetaServiceOptions o;
    o.db_path = dir_.path() + "/meta.db";
    o.run_background = false;
    o.open_store = [this](const std::string& url) { return stores_.Open(url); };
    o.allow_test_stores = true;
    o.namespace_sync_interval = interval;
    o.test_on_wal_sync = [this] { wal_syncs_.fetch_add(1); };
    absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
    ASSERT_OK(s);
    svc_ = *std::move(s);
    pb::CreateVolumeRequest v;
    v.set_name("vol");
    v.set_store_url("mem://vol");
    absl::StatusOr<pb::CreateVolumeResponse> vr = svc_->CreateVolume(v);
    ASSERT_OK(vr);
    vol_ = vr->volume().id();
    pb::MountRequest m;
    m.set_volume_name("vol");
    absl::StatusOr<pb::MountResponse> mr = svc_->Mount(m);
    ASSERT_OK(mr);
    session_ = mr->session_id();
    EXPECT_EQ(mr->namespace_sync_ms(), absl::ToInt64Milliseconds(interval));
  }

  absl::Status Mknod(const std::string& name) {
    pb::MknodRequest r;
    r.set_volume_id(vol_);
    r.set_parent(1);
    r.set_name(name);
    r.set_mode(S_IFREG | 0644);
    return svc_->Mknod(r).status();
  }
  absl::Status Sync() {
    pb::SyncRequest r;
    r.set_volume_id(vol_);
    return svc_->Sync(r).status();
  }
  absl::Status AllocBlockIds() {
    pb::AllocBlockIdsRequest r;
    r.set_volume_id(vol_);
    r.set_session_id(session_);
    r.set_count(1);
    return svc_->AllocBlockIds(r).status();
  }

  CountingVfs vfs_;  // before the service: its connections open through it
  TempDir dir_;
  fake::FakeStores stores_;
  std::atomic<int> wal_syncs_{0};  // WalSync's fdatasyncs
  std::unique_ptr<MetaService> svc_;
  uint64_t vol_ = 0;
  uint64_t session_ = 0;

  void TearDown() override { svc_.reset(); }
};

TEST_F(BatchedSyncTest, ByDefaultEveryNamespaceChangeSyncsTheLog) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::ZeroDuration()));
  const int before = vfs_.wal_syncs();
  for (int i = 0; i < 5; ++i) ASSERT_OK(Mknod("f" + std::to_string(i)));
  EXPECT_GE(vfs_.wal_syncs() - before, 5);
  ASSERT_OK(Sync());  // nothing to do: each change was on disk at its reply
  EXPECT_EQ(wal_syncs_.load(), 0);
}

TEST_F(BatchedSyncTest, NamespaceChangesWaitForADurableCommitOrASync) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::Seconds(60)));  // the timer never fires in this test
  const int sqlite_before = vfs_.wal_syncs();
  const int ours_before = wal_syncs_.load();
  for (int i = 0; i < 20; ++i) ASSERT_OK(Mknod("f" + std::to_string(i)));
  EXPECT_EQ(vfs_.wal_syncs(), sqlite_before) << "SQLite synced a namespace commit itself";
  EXPECT_EQ(wal_syncs_.load(), ours_before);

  // A commit that must be durable (block ids) syncs once, covering the 20 creates too.
  ASSERT_OK(AllocBlockIds());
  EXPECT_EQ(wal_syncs_.load(), ours_before + 1);
  // Nothing new since: a Sync call costs no fdatasync.
  ASSERT_OK(Sync());
  EXPECT_EQ(wal_syncs_.load(), ours_before + 1);
  // A create, then a Sync call (a mount's fsyncdir): one fdatasync.
  ASSERT_OK(Mknod("g"));
  EXPECT_EQ(wal_syncs_.load(), ours_before + 1);
  ASSERT_OK(Sync());
  EXPECT_EQ(wal_syncs_.load(), ours_before + 2);
  EXPECT_EQ(vfs_.wal_syncs(), sqlite_before);
}

TEST_F(BatchedSyncTest, GarbageCollectionSyncsBeforeItDeletes) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::Seconds(60)));
  ASSERT_OK(Mknod("f"));
  const int before = wal_syncs_.load();
  ASSERT_OK(svc_->RunGcOnce());
  EXPECT_GT(wal_syncs_.load(), before);
}

TEST_F(BatchedSyncTest, TheTimerSyncsWithinTheInterval) {
  ASSERT_NO_FATAL_FAILURE(Open(absl::Milliseconds(50)));
  const int before = wal_syncs_.load();
  ASSERT_OK(Mknod("f"));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (wal_syncs_.load() == before && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(wal_syncs_.load(), before + 1);
  // With nothing committed since, the timer does not sync again.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(wal_syncs_.load(), before + 1);
}

TEST(WalSyncTest, NeedsAnExistingLogAndAPositiveInterval) {
  TempDir dir;
  EXPECT_FALSE(internal::WalSync::Open(dir.path() + "/missing-wal", absl::Seconds(1)).ok());
  EXPECT_FALSE(internal::WalSync::Open(dir.path(), absl::ZeroDuration()).ok());
}

}  // namespace
}  // namespace nighfs::meta
