// Attribute changes deferred to a file's next commit (mount/fs_deferred_attrs.cc): what
// `tar x` does to each file (write, futimens, GetAttr, fchown, fchmod, close) costs one
// CommitBlocks, every reply in between is what the server ends up with, and everything the
// server judges by the attributes sees them first.
#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "status.pb.h"
#include "tests/mount/fs_fixture.h"

namespace nighfs::fs {
namespace {

constexpr int64_t kOld = 1'500'000'000'123'456'789;  // an archive's mtime
constexpr int64_t kOlder = 1'400'000'000'000'000'000;
constexpr Caller kUser{1000, 1000};

class FsDeferredAttrsTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    CountMetaCalls();
  }

  // A folder everyone may create in.
  uint64_t PublicFolder() {
    auto d = fs_->Mkdir(kRoot, 1, "pub", 0777);
    EXPECT_OK(d);
    return d.ok() ? d->ino() : 0;
  }

  uint64_t Deferred(FileSystem* fs) {
    status::v1::MountStats s;
    fs->FillStats(&s);
    return s.deferred_attrs();
  }

  static SetAttrArgs Times(int64_t atime, int64_t mtime) {
    return {.valid = pb::SETATTR_ATIME | pb::SETATTR_MTIME, .atime_ns = atime, .mtime_ns = mtime};
  }
  static SetAttrArgs Chown(uint32_t uid, uint32_t gid) {
    return {.valid = pb::SETATTR_UID | pb::SETATTR_GID, .uid = uid, .gid = gid};
  }
  static SetAttrArgs Chmod(uint32_t mode) { return {.valid = pb::SETATTR_MODE, .mode = mode}; }
};

TEST_F(FsDeferredAttrsTest, TarsSequenceCostsOneCommit) {
  auto made = fs_->Create(kRoot, 1, "f", 0600, O_WRONLY | O_EXCL);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  const uint64_t fh = made->second;
  ASSERT_OK(fs_->Write(fh, 0, "contents"));
  const int before = faulty_meta_->AllCalls();

  auto t = fs_->SetAttr(ino, Times(kOlder, kOld));
  ASSERT_OK(t);
  EXPECT_EQ(t->mtime_ns(), kOld);
  EXPECT_EQ(t->atime_ns(), kOlder);
  EXPECT_EQ(t->size(), 8u);
  auto g = fs_->GetAttr(ino);  // the kernel refreshes the mode before fchown
  ASSERT_OK(g);
  EXPECT_EQ(g->mtime_ns(), kOld);
  auto o = fs_->SetAttr(ino, Chown(1234, 5678));
  ASSERT_OK(o);
  EXPECT_EQ(o->uid(), 1234u);
  EXPECT_EQ(o->gid(), 5678u);
  auto m = fs_->SetAttr(ino, Chmod(04755));
  ASSERT_OK(m);
  EXPECT_EQ(m->mode(), S_IFREG | 04755u);
  EXPECT_EQ(faulty_meta_->AllCalls(), before) << "nothing is sent before the close";
  EXPECT_EQ(Deferred(fs_.get()), 3u);
  // Other names of the file, listings and lookups show the changes too.
  auto l = fs_->Lookup(1, "f");
  ASSERT_OK(l);
  EXPECT_EQ(l->mode(), S_IFREG | 04755u);
  EXPECT_EQ(l->uid(), 1234u);

  ASSERT_OK(fs_->Flush(fh));
  ASSERT_OK(fs_->Release(fh));
  EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 1);
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 0);
  EXPECT_EQ(faulty_meta_->Calls("GetAttr"), 0);

  // What the server keeps is what the mount answered.
  const pb::Attr s = ServerAttr(ino);
  EXPECT_EQ(s.mode(), S_IFREG | 04755u);
  EXPECT_EQ(s.uid(), 1234u);
  EXPECT_EQ(s.gid(), 5678u);
  EXPECT_EQ(s.mtime_ns(), kOld);
  EXPECT_EQ(s.atime_ns(), kOlder);
  EXPECT_EQ(s.size(), 8u);
  EXPECT_GE(s.ctime_ns(), m->ctime_ns());
  auto fresh = NewMount();
  EXPECT_EQ(ReadAll(fresh.get(), ino), "contents");
}

TEST_F(FsDeferredAttrsTest, AWriteAfterUtimesKeepsItsOwnTime) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_WRONLY);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  ASSERT_OK(fs_->Write(made->second, 0, "a"));
  ASSERT_OK(fs_->SetAttr(ino, Times(kOld, kOld)).status());
  const int64_t before_write = absl::ToUnixNanos(absl::Now());
  ASSERT_OK(fs_->Write(made->second, 1, "b"));
  auto g = fs_->GetAttr(ino);
  ASSERT_OK(g);
  EXPECT_GE(g->mtime_ns(), before_write);
  EXPECT_EQ(g->atime_ns(), kOld);
  ASSERT_OK(fs_->Release(made->second));
  EXPECT_GE(ServerAttr(ino).mtime_ns(), before_write);
  EXPECT_EQ(ServerAttr(ino).atime_ns(), kOld);
}

TEST_F(FsDeferredAttrsTest, SentAtOnceWhenNothingIsUnsaved) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_WRONLY);
  ASSERT_OK(made);
  ASSERT_OK(fs_->SetAttr(made->first.ino(), Chmod(0600)).status());
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 1);
  EXPECT_EQ(ServerAttr(made->first.ino()).mode(), S_IFREG | 0600u);
  EXPECT_EQ(Deferred(fs_.get()), 0u);
  ASSERT_OK(fs_->Release(made->second));
}

TEST_F(FsDeferredAttrsTest, OnlyChangesWithAKnownOutcomeWait) {
  const uint64_t pub = PublicFolder();
  std::shared_ptr<FileSystem> fs = NewMount();
  ScopedCaller as(kUser);
  auto made = fs->Create(kUser, pub, "mine", 0644, O_WRONLY);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  ASSERT_OK(fs->Write(made->second, 0, "x"));
  // The owner's chmod and utimes wait.
  ASSERT_OK(fs->SetAttr(ino, Chmod(0640)).status());
  ASSERT_OK(fs->SetAttr(ino, Times(kOld, kOld)).status());
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 0);
  // S_ISGID from a caller the server may drop it for, and chown by a user: sent at once,
  // after the data and the waiting changes.
  auto sgid = fs->SetAttr(ino, Chmod(02755));
  ASSERT_OK(sgid);
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 1);
  EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 1);
  EXPECT_EQ(sgid->mode(), ServerAttr(ino).mode());
  EXPECT_EQ(ServerAttr(ino).mtime_ns(), kOld);
  ASSERT_OK(fs->Write(made->second, 1, "y"));
  EXPECT_EQ(StatusToErrno(fs->SetAttr(ino, Chown(1000, 4321)).status()), EPERM);
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 2);
  ASSERT_OK(fs->Release(made->second));
  EXPECT_EQ(Deferred(fs.get()), 2u);
}

TEST_F(FsDeferredAttrsTest, AnOpenIsCheckedAgainstTheDeferredOwner) {
  // root writes a 0600 file and gives it to a user before closing it; the user opens it
  // meanwhile. The server checks that open: it must see the new owner.
  auto made = fs_->Create(kRoot, 1, "f", 0600, O_WRONLY);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  ASSERT_OK(fs_->Write(made->second, 0, "for the user"));
  ASSERT_OK(fs_->SetAttr(ino, Chown(1000, 1000)).status());
  EXPECT_EQ(faulty_meta_->Calls("SetAttr") + faulty_meta_->Calls("CommitBlocks"), 0);
  {
    ScopedCaller as(kUser);
    auto fh = fs_->Open(ino, O_RDONLY);
    ASSERT_OK(fh);
    EXPECT_EQ(faulty_meta_->Calls("CommitBlocks"), 1);
    auto got = fs_->Read(*fh, 0, 100);
    ASSERT_OK(got);
    EXPECT_EQ(*got, "for the user");
    ASSERT_OK(fs_->Release(*fh));
  }
  EXPECT_EQ(ServerAttr(ino).uid(), 1000u);
  ASSERT_OK(fs_->Release(made->second));
}

TEST_F(FsDeferredAttrsTest, NeverAnsweredFromAttributesALinkMadeStale) {
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_WRONLY);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  ASSERT_OK(fs_->Write(made->second, 0, "x"));
  ASSERT_OK(fs_->Link(ino, 1, "g").status());
  auto m = fs_->SetAttr(ino, Chmod(0600));
  ASSERT_OK(m);
  EXPECT_EQ(m->nlink(), 2u);
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 1) << "attributes older than the link: sent";
  // The reply refreshed them: the next change waits, with the right nlink.
  ASSERT_OK(fs_->Write(made->second, 1, "y"));
  auto t = fs_->SetAttr(ino, Times(kOld, kOld));
  ASSERT_OK(t);
  EXPECT_EQ(t->nlink(), 2u);
  EXPECT_EQ(faulty_meta_->Calls("SetAttr"), 1);
  // An unlink commits what waits first (a sticky folder's rule reads the owner).
  ASSERT_OK(fs_->Unlink(1, "g"));
  EXPECT_EQ(ServerAttr(ino).mtime_ns(), kOld);
  auto g = fs_->GetAttr(ino);
  ASSERT_OK(g);
  EXPECT_EQ(g->nlink(), 1u);
  ASSERT_OK(fs_->Release(made->second));
}

TEST_F(FsDeferredAttrsTest, ARefusedChangeDoesNotHoldTheDataBack) {
  const uint64_t pub = PublicFolder();
  std::shared_ptr<FileSystem> user_mount = NewMount();
  uint64_t ino = 0, fh = 0;
  {
    ScopedCaller as(kUser);
    auto made = user_mount->Create(kUser, pub, "f", 0644, O_WRONLY);
    ASSERT_OK(made);
    ino = made->first.ino();
    fh = made->second;
    ASSERT_OK(user_mount->Write(fh, 0, "data"));
    ASSERT_OK(user_mount->SetAttr(ino, Chmod(0600)).status());
  }
  // Meanwhile another mount gives the file away: the user may no longer chmod it.
  ASSERT_OK(fs_->SetAttr(ino, Chown(2000, 2000)).status());
  ASSERT_OK(user_mount->Flush(fh));
  ASSERT_OK(user_mount->Release(fh));
  const pb::Attr s = ServerAttr(ino);
  EXPECT_EQ(s.mode(), S_IFREG | 0644u) << "the refused chmod is not applied";
  EXPECT_EQ(s.uid(), 2000u);
  EXPECT_EQ(s.size(), 4u);
  auto fresh = NewMount();
  EXPECT_EQ(ReadAll(fresh.get(), ino), "data");
}

TEST_F(FsDeferredAttrsTest, AStoreOutageDoesNotBlockOtherCalls) {
  // A file too large to be inline, whose commit cannot upload: its deferred chmod waits with
  // its data, and other calls that would commit it first go on.
  faulty_->FailNext(FaultInjectingStore::Op::kPut, absl::UnavailableError("store down"), 1 << 30);
  auto made = fs_->Create(kRoot, 1, "big", 0644, O_WRONLY);  // the read open asks the server
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  const std::string data(3 * kBs + 5, 'b');
  ASSERT_OK(fs_->Write(made->second, 0, data));
  ASSERT_OK(fs_->SetAttr(ino, Chmod(0600)).status());
  EXPECT_EQ(StatusToErrno(fs_->Flush(made->second)), EIO);
  // Unlink and rename elsewhere, and a new open of the file, work during the outage.
  ASSERT_OK(fs_->Mknod(kRoot, 1, "other", S_IFREG | 0644, 0).status());
  ASSERT_OK(fs_->Rename(1, "other", 1, "other2", 0));
  ASSERT_OK(fs_->Unlink(1, "other2"));
  auto again = fs_->Open(ino, O_RDONLY);
  ASSERT_OK(again);
  auto got = fs_->Read(*again, 0, 10);
  ASSERT_OK(got);
  EXPECT_EQ(*got, std::string(10, 'b'));
  auto g = fs_->GetAttr(ino);
  ASSERT_OK(g);
  EXPECT_EQ(g->mode(), S_IFREG | 0600u);
  // Back: the commit carries the data and the chmod.
  faulty_->ClearFaults();
  ASSERT_OK(fs_->Flush(made->second));
  EXPECT_EQ(ServerAttr(ino).mode(), S_IFREG | 0600u);
  EXPECT_EQ(ServerAttr(ino).size(), data.size());
  ASSERT_OK(fs_->Release(*again));
  ASSERT_OK(fs_->Release(made->second));
}

}  // namespace
}  // namespace nighfs::fs
