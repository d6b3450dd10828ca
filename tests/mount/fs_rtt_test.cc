// Metadata round trips of the namespace calls (issue 14), counted through the fixture's
// forwarding MetaApi: negative entries for missing names, and the parent's attributes taken
// from this mount's own create/unlink/rename replies instead of a GetAttr.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <thread>

#include "mount/dir_attr_cache.h"
#include "mount/dir_names.h"
#include "tests/mount/fs_fixture.h"

namespace nighfs::fs {
namespace {

class FsRttTest : public FsTest {
 protected:
  void SetUp() override {
    FsTest::SetUp();
    CountMetaCalls();
  }

  // GetAttr of `ino` through `fs`, which must match the server's attributes and make no
  // metadata call.
  void ExpectAnsweredLocally(FileSystem* fs, uint64_t ino, const std::string& after) {
    const int before = faulty_meta_->AllCalls();
    auto got = fs->GetAttr(ino);
    ASSERT_OK(got);
    EXPECT_EQ(faulty_meta_->AllCalls(), before) << "GetAttr went to the server after " << after;
    const pb::Attr want = ServerAttr(ino);
    EXPECT_EQ(got->nlink(), want.nlink()) << after;
    EXPECT_EQ(got->mtime_ns(), want.mtime_ns()) << after;
    EXPECT_EQ(got->ctime_ns(), want.ctime_ns()) << after;
    EXPECT_EQ(got->mode(), want.mode()) << after;
  }

  // What the kernel asks for `: > d/fN` (N < n) then `stat d/fN`, with its caches cold for
  // the new names: a lookup (which must find nothing), the create, close, the parent's
  // attributes (invalidated by the create). Returns the metadata calls they made.
  int CreateNewFiles(uint64_t d, int n, int flags) {
    const int before = faulty_meta_->AllCalls();
    for (int i = 0; i < n; ++i) {
      const std::string name = "f" + std::to_string(i);
      auto neg = fs_->LookupForKernel(d, name);
      EXPECT_TRUE(neg.ok() && neg->ino() == 0) << name;
      auto made = fs_->Create(kRoot, d, name, 0644, flags);
      EXPECT_OK(made);
      if (!made.ok()) return -1;
      EXPECT_OK(fs_->Flush(made->second));
      EXPECT_OK(fs_->Release(made->second));
      EXPECT_OK(fs_->GetAttr(d).status());
    }
    return faulty_meta_->AllCalls() - before;
  }

  uint64_t Mkdir(uint64_t parent, const std::string& name) {
    auto d = fs_->Mkdir(kRoot, parent, name, 0755);
    EXPECT_OK(d);
    return d.ok() ? d->ino() : 0;
  }
};

TEST_F(FsRttTest, MissingNameIsANegativeEntry) {
  auto neg = fs_->LookupForKernel(1, "missing");
  ASSERT_OK(neg);
  EXPECT_EQ(neg->ino(), 0u);
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 1);
  // Errors other than "no such name" stay errors.
  EXPECT_EQ(StatusToErrno(fs_->LookupForKernel(1, std::string(256, 'x')).status()),
            ENAMETOOLONG);
  ASSERT_OK(fs_->Create(kRoot, 1, "file", 0644, O_WRONLY).status());
  auto pos = fs_->LookupForKernel(1, "file");
  ASSERT_OK(pos);
  EXPECT_NE(pos->ino(), 0u);
  // The plain Lookup (used inside the mount) still says ENOENT.
  EXPECT_EQ(StatusToErrno(fs_->Lookup(1, "missing").status()), ENOENT);

  // With entry_timeout 0 the kernel would not keep the entry: plain ENOENT.
  FsOptions o;
  o.entry_timeout = absl::ZeroDuration();
  auto uncached = NewMount(o);
  EXPECT_EQ(StatusToErrno(uncached->LookupForKernel(1, "missing").status()), ENOENT);
}

TEST_F(FsRttTest, ParentAttributesComeWithEveryNamespaceReply) {
  const uint64_t d = Mkdir(1, "d");
  ExpectAnsweredLocally(fs_.get(), 1, "mkdir");

  auto made = fs_->Create(kRoot, d, "f", 0644, O_WRONLY);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Release(made->second));
  ExpectAnsweredLocally(fs_.get(), d, "create");

  ASSERT_OK(fs_->Mknod(kRoot, d, "fifo", S_IFIFO | 0644, 0).status());
  ExpectAnsweredLocally(fs_.get(), d, "mknod");

  const uint64_t sub = Mkdir(d, "sub");
  ExpectAnsweredLocally(fs_.get(), d, "mkdir in d (nlink + 1)");
  EXPECT_EQ(ServerAttr(d).nlink(), 3u);

  ASSERT_OK(fs_->Symlink(kRoot, d, "ln", "f").status());
  ExpectAnsweredLocally(fs_.get(), d, "symlink");

  ASSERT_OK(fs_->Link(made->first.ino(), sub, "hard").status());
  ExpectAnsweredLocally(fs_.get(), sub, "link");

  ASSERT_OK(fs_->Rename(d, "f", sub, "moved", 0));
  ExpectAnsweredLocally(fs_.get(), d, "rename (old parent)");
  ExpectAnsweredLocally(fs_.get(), sub, "rename (new parent)");

  ASSERT_OK(fs_->Rename(sub, "moved", sub, "again", 0));
  ExpectAnsweredLocally(fs_.get(), sub, "rename in one folder");

  ASSERT_OK(fs_->Unlink(sub, "again"));
  ExpectAnsweredLocally(fs_.get(), sub, "unlink");

  ASSERT_OK(fs_->Unlink(sub, "hard"));
  ASSERT_OK(fs_->Rmdir(d, "sub"));
  ExpectAnsweredLocally(fs_.get(), d, "rmdir (nlink - 1)");
  EXPECT_EQ(ServerAttr(d).nlink(), 2u);

  SetAttrArgs chmod;
  chmod.valid = pb::SETATTR_MODE;
  chmod.mode = 0700;
  ASSERT_OK(fs_->SetAttr(d, chmod).status());
  ExpectAnsweredLocally(fs_.get(), d, "chmod of the folder");
}

TEST_F(FsRttTest, KeptOnlyForAttrTimeout) {
  FsOptions o;
  o.attr_timeout = absl::Milliseconds(200);
  auto fs = NewMount(o);
  auto d = fs->Mkdir(kRoot, 1, "d", 0755);
  ASSERT_OK(d);
  ASSERT_OK(fs->Mknod(kRoot, d->ino(), "a", S_IFREG | 0644, 0).status());
  ExpectAnsweredLocally(fs.get(), d->ino(), "mknod");
  absl::SleepFor(absl::Milliseconds(250));
  const int before = faulty_meta_->Calls("GetAttr");
  ASSERT_OK(fs->GetAttr(d->ino()).status());
  EXPECT_EQ(faulty_meta_->Calls("GetAttr"), before + 1) << "expired: asked again";

  // attr_timeout 0: nothing kept.
  o.attr_timeout = absl::ZeroDuration();
  auto uncached = NewMount(o);
  ASSERT_OK(uncached->Mknod(kRoot, d->ino(), "b", S_IFREG | 0644, 0).status());
  ASSERT_OK(uncached->GetAttr(d->ino()).status());
  EXPECT_EQ(faulty_meta_->Calls("GetAttr"), before + 2);
}

TEST_F(FsRttTest, OtherMountsChangesAreSeenAfterAttrTimeout) {
  FsOptions o;
  o.attr_timeout = absl::Milliseconds(300);
  auto a = NewMount(o);
  auto b = NewMount(o);
  auto d = a->Mkdir(kRoot, 1, "d", 0755);
  ASSERT_OK(d);
  ASSERT_OK(a->Mknod(kRoot, d->ino(), "x", S_IFREG | 0644, 0).status());
  auto a_view = a->GetAttr(d->ino());
  ASSERT_OK(a_view);
  ASSERT_OK(b->Mkdir(kRoot, d->ino(), "y", 0755).status());  // nlink 3 on the server
  // Within attr_timeout mount A may still answer what its own reply said, never anything
  // else; after it, A sees B's change.
  auto early = a->GetAttr(d->ino());
  ASSERT_OK(early);
  EXPECT_TRUE(early->nlink() == 2 || early->nlink() == 3);
  absl::SleepFor(absl::Milliseconds(350));
  auto late = a->GetAttr(d->ino());
  ASSERT_OK(late);
  EXPECT_EQ(late->nlink(), 3u);
  EXPECT_EQ(late->mtime_ns(), ServerAttr(d->ino()).mtime_ns());
}

TEST_F(FsRttTest, ChangesWithoutAttributesInTheReplyDropWhatIsKept) {
  const uint64_t d = Mkdir(1, "d");
  ASSERT_OK(fs_->Mknod(kRoot, d, "a", S_IFREG | 0644, 0).status());
  ASSERT_OK(fs_->SetXattr(d, "user.k", "v", 0));  // the folder's ctime changes
  auto got = fs_->GetAttr(d);
  ASSERT_OK(got);
  EXPECT_EQ(got->ctime_ns(), ServerAttr(d).ctime_ns());

  // A moved folder: its ctime changed, and what was kept of it is dropped.
  const uint64_t e = Mkdir(d, "e");
  ASSERT_OK(fs_->Mknod(kRoot, e, "in_e", S_IFREG | 0644, 0).status());
  ExpectAnsweredLocally(fs_.get(), e, "mknod in e");
  ASSERT_OK(fs_->Rename(d, "e", 1, "e2", 0));
  got = fs_->GetAttr(e);
  ASSERT_OK(got);
  EXPECT_EQ(got->ctime_ns(), ServerAttr(e).ctime_ns());

  // A removed folder is not answered from memory.
  ASSERT_OK(fs_->Unlink(e, "in_e"));
  ASSERT_OK(fs_->Rmdir(1, "e2"));
  EXPECT_EQ(StatusToErrno(fs_->GetAttr(e).status()), ENOENT);

  // A failed change keeps nothing: the next GetAttr asks.
  ASSERT_OK(fs_->Mknod(kRoot, d, "b", S_IFREG | 0644, 0).status());
  faulty_meta_->FailNext("Mknod", EIO, 1);
  EXPECT_FALSE(fs_->Mknod(kRoot, d, "c", S_IFREG | 0644, 0).ok());
  const int before = faulty_meta_->Calls("GetAttr");
  ASSERT_OK(fs_->GetAttr(d).status());
  EXPECT_EQ(faulty_meta_->Calls("GetAttr"), before + 1);
}

TEST_F(FsRttTest, CreateAndStatCostOneRoundTripEach) {
  // What the kernel asks for `: > d/fN` then `stat d/fN`, with the kernel's caches cold for
  // the new name: Lookup (negative), Create, GetAttr of the parent (invalidated by the
  // create), and nothing more for the stat (the create's reply is in the kernel's cache).
  // The folder was made by another mount, so every lookup asks the server.
  auto other = NewMount(FsOptions());
  auto made_elsewhere = other->Mkdir(kRoot, 1, "d", 0755);
  ASSERT_OK(made_elsewhere);
  constexpr int kFiles = 50;
  EXPECT_EQ(CreateNewFiles(made_elsewhere->ino(), kFiles, O_WRONLY | O_CREAT),
            2 * kFiles);  // Lookup + Mknod
  EXPECT_EQ(faulty_meta_->Calls("GetAttr"), 0);
}

TEST_F(FsRttTest, NewNamesInAFolderThisMountMadeNeedNoLookup) {
  const uint64_t d = Mkdir(1, "d");
  constexpr int kFiles = 50;
  EXPECT_EQ(CreateNewFiles(d, kFiles, O_WRONLY | O_CREAT | O_EXCL), kFiles);  // Mknod only
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 0);
  // A name it made is asked for (the kernel's entry of it may have expired).
  auto pos = fs_->LookupForKernel(d, "f0");
  ASSERT_OK(pos);
  EXPECT_NE(pos->ino(), 0u);
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 1);
  // Names it removed or renamed away are known absent again; the new name is asked for.
  ASSERT_OK(fs_->Unlink(d, "f0"));
  ASSERT_OK(fs_->Rename(d, "f1", d, "g1", 0));
  const uint64_t sub = Mkdir(d, "sub");
  ASSERT_OK(fs_->Rename(d, "f2", sub, "g2", 0));
  for (const auto& [dir, name] : {std::pair{d, "f0"}, {d, "f1"}, {d, "f2"}, {sub, "f2"}}) {
    auto got = fs_->LookupForKernel(dir, name);
    ASSERT_OK(got);
    EXPECT_EQ(got->ino(), 0u) << name;
  }
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 1);
  for (const auto& [dir, name] : {std::pair{d, "g1"}, {sub, "g2"}, {d, "sub"}}) {
    auto got = fs_->LookupForKernel(dir, name);
    ASSERT_OK(got);
    EXPECT_NE(got->ino(), 0u) << name;
  }
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 4);
  // A folder this mount did not make is asked.
  ASSERT_OK(fs_->LookupForKernel(1, "nothere").status());
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 5);
  // Nor with entry_timeout 0 (the kernel keeps no negative entry either).
  FsOptions o;
  o.entry_timeout = absl::ZeroDuration();
  auto uncached = NewMount(o);
  auto d2 = uncached->Mkdir(kRoot, 1, "d2", 0755);
  ASSERT_OK(d2);
  EXPECT_EQ(StatusToErrno(uncached->LookupForKernel(d2->ino(), "x").status()), ENOENT);
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), 6);
}

TEST_F(FsRttTest, AnotherMountsChangeOfAFolderEndsWhatThisMountKnowsOfIt) {
  auto other = NewMount(FsOptions());
  const uint64_t d = Mkdir(1, "d");
  ASSERT_OK(other->Create(kRoot, d, "x", 0644, O_WRONLY | O_CREAT).status());
  // Within entry_timeout this mount may still say "no such name", as the kernel's negative
  // entries do...
  auto stale = fs_->LookupForKernel(d, "x");
  ASSERT_OK(stale);
  EXPECT_EQ(stale->ino(), 0u);
  // ...but an exclusive create of it fails, and its next change of the folder learns that
  // someone else changed it: from then on it asks.
  EXPECT_EQ(StatusToErrno(fs_->Create(kRoot, d, "x", 0644, O_WRONLY | O_CREAT | O_EXCL).status()),
            EEXIST);
  auto found = fs_->LookupForKernel(d, "x");
  ASSERT_OK(found);
  EXPECT_NE(found->ino(), 0u);

  const uint64_t d2 = Mkdir(1, "d2");
  ASSERT_OK(other->Create(kRoot, d2, "y", 0644, O_WRONLY | O_CREAT).status());
  ASSERT_OK(fs_->Create(kRoot, d2, "z", 0644, O_WRONLY | O_CREAT).status());
  found = fs_->LookupForKernel(d2, "y");
  ASSERT_OK(found);
  EXPECT_NE(found->ino(), 0u);
  const int lookups = faulty_meta_->Calls("Lookup");
  ASSERT_OK(fs_->LookupForKernel(d2, "w").status());
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), lookups + 1);

  // A failed call in the folder ends it too (its outcome is unknown).
  const uint64_t d3 = Mkdir(1, "d3");
  faulty_meta_->FailNext("Mknod", EIO, 1);
  EXPECT_FALSE(fs_->Mknod(kRoot, d3, "a", S_IFREG | 0644, 0).ok());
  ASSERT_OK(fs_->LookupForKernel(d3, "b").status());
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), lookups + 2);
}

TEST_F(FsRttTest, WhatAMountKnowsOfItsFoldersLastsEntryTimeout) {
  FsOptions o;
  o.entry_timeout = absl::Milliseconds(200);
  auto m = NewMount(o);
  auto d = m->Mkdir(kRoot, 1, "d", 0755);
  ASSERT_OK(d);
  const int lookups = faulty_meta_->Calls("Lookup");
  ASSERT_OK(m->LookupForKernel(d->ino(), "a").status());
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), lookups);
  absl::SleepFor(absl::Milliseconds(250));
  ASSERT_OK(m->LookupForKernel(d->ino(), "a").status());
  EXPECT_EQ(faulty_meta_->Calls("Lookup"), lookups + 1);
}

// With a server that syncs namespace changes in batches (nighfs-meta --namespace-sync=batched),
// fsync and fsyncdir ask it to sync; with one that syncs every change, they cost nothing more.
TEST_F(FsRttTest, FsyncAndFsyncdirSyncNamesOnlyWhenTheServerBatches) {
  for (const bool batched : {false, true}) {
    FsOptions o;
    o.sync_names_at_fsync = batched;
    std::unique_ptr<FileSystem> fs = NewMount(o);
    auto made = fs->Create(kRoot, 1, batched ? "b" : "a", 0644, O_WRONLY);
    ASSERT_OK(made);
    ASSERT_OK(fs->Flush(made->second));
    const int syncs = faulty_meta_->Calls("Sync");
    const int all = faulty_meta_->AllCalls();
    ASSERT_OK(fs->Fsync(made->second));  // nothing to commit: only the names
    ASSERT_OK(fs->FsyncDir());
    EXPECT_EQ(faulty_meta_->Calls("Sync") - syncs, batched ? 2 : 0) << batched;
    EXPECT_EQ(faulty_meta_->AllCalls() - all, batched ? 2 : 0) << batched;
    // With data to commit, the commit is the sync: no Sync call after it.
    ASSERT_OK(fs->Write(made->second, 0, "data"));
    const int commits = faulty_meta_->Calls("CommitBlocks");
    ASSERT_OK(fs->Fsync(made->second));
    EXPECT_EQ(faulty_meta_->Calls("CommitBlocks") - commits, 1);
    EXPECT_EQ(faulty_meta_->Calls("Sync") - syncs, batched ? 2 : 0) << batched;
    ASSERT_OK(fs->Release(made->second));
  }
}

TEST_F(FsRttTest, NewFilesHaveNoCapabilitiesWithoutAsking) {
  // The kernel asks for security.capability before the first write of every file.
  auto made = fs_->Create(kRoot, 1, "f", 0644, O_WRONLY);
  ASSERT_OK(made);
  const uint64_t ino = made->first.ino();
  EXPECT_EQ(StatusToErrno(fs_->GetXattr(ino, "security.capability").status()), ENODATA);
  EXPECT_EQ(faulty_meta_->Calls("GetXattr"), 0);
  ASSERT_OK(fs_->Write(made->second, 0, "data"));
  ASSERT_OK(fs_->Release(made->second));
  // Set through this mount: asked for again, and found.
  ASSERT_OK(fs_->SetXattr(ino, "security.capability", "caps", 0));
  auto got = fs_->GetXattr(ino, "security.capability");
  ASSERT_OK(got);
  EXPECT_EQ(*got, "caps");
  EXPECT_EQ(faulty_meta_->Calls("GetXattr"), 1);
  // Other attributes are always asked for.
  EXPECT_EQ(StatusToErrno(fs_->GetXattr(ino, "user.x").status()), ENODATA);
  EXPECT_EQ(faulty_meta_->Calls("GetXattr"), 2);
}

// `ls -l` asks every entry for security.selinux (and ACLs, refused locally): with the server's
// Attr.no_xattrs from the listing, that costs nothing for attr_timeout; user.* names and an
// inode whose attributes are older still go to the server.
TEST_F(FsRttTest, FilesListedWithoutXattrsAnswerSecurityNamesWithoutAsking) {
  FsOptions o;
  o.attr_timeout = absl::Milliseconds(300);
  fs_ = NewMount(o);
  auto made = fs_->Create(kRoot, 1, "plain", 0644, O_WRONLY);
  ASSERT_OK(made);
  ASSERT_OK(fs_->Release(made->second));
  const uint64_t plain = made->first.ino();
  auto tagged = fs_->Create(kRoot, 1, "tagged", 0644, O_WRONLY);
  ASSERT_OK(tagged);
  ASSERT_OK(fs_->Release(tagged->second));
  ASSERT_OK(fs_->SetXattr(tagged->first.ino(), "security.selinux", "ctx", 0));

  // A second mount lists the folder, as ls -l does, then asks each file.
  std::unique_ptr<FileSystem> other = NewMount(o);
  auto listed = other->ReadDir(1, 0, 100, /*plus=*/true);
  ASSERT_OK(listed);
  const int before = faulty_meta_->Calls("GetXattr") + faulty_meta_->Calls("ListXattr");
  EXPECT_EQ(StatusToErrno(other->GetXattr(plain, "security.selinux").status()), ENODATA);
  auto none = other->ListXattr(plain);
  ASSERT_OK(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(faulty_meta_->Calls("GetXattr") + faulty_meta_->Calls("ListXattr"), before);
  // The one that has an attribute is asked about, and answered.
  auto ctx = other->GetXattr(tagged->first.ino(), "security.selinux");
  ASSERT_OK(ctx);
  EXPECT_EQ(*ctx, "ctx");
  EXPECT_EQ(faulty_meta_->Calls("GetXattr"), before + 1);
  // user.* names are checked by the server (permissions): always asked.
  EXPECT_EQ(StatusToErrno(other->GetXattr(plain, "user.x").status()), ENODATA);
  EXPECT_EQ(faulty_meta_->Calls("GetXattr"), before + 2);

  // The first mount sets one on `plain`: the second sees it once its knowledge is
  // attr_timeout old, as it would see any other attribute change.
  ASSERT_OK(fs_->SetXattr(plain, "security.selinux", "new", 0));
  absl::SleepFor(absl::Milliseconds(350));
  auto now_set = other->GetXattr(plain, "security.selinux");
  ASSERT_OK(now_set);
  EXPECT_EQ(*now_set, "new");
  // And the server's GetAttr reply says so: no more local answers for it.
  ASSERT_OK(other->GetAttr(plain).status());
  auto still = other->ListXattr(plain);
  ASSERT_OK(still);
  EXPECT_THAT(*still, ::testing::ElementsAre("security.selinux"));
}

TEST(DirAttrCacheTest, KeepsOnlyTheReplyOfTheLastChangeBegun) {
  DirAttrCache cache(absl::Seconds(10));
  pb::Attr a1, a2;
  a1.set_ino(5);
  a1.set_mode(S_IFDIR | 0755);
  a1.set_nlink(3);
  a2 = a1;
  a2.set_nlink(4);
  // Two changes in flight; the later one's reply arrives first.
  const uint64_t t1 = cache.Begin(5);
  const uint64_t t2 = cache.Begin(5);
  EXPECT_FALSE(cache.Get(5).has_value()) << "nothing while changes are in flight";
  cache.End(5, t2, &a2);
  cache.End(5, t1, &a1);  // older: not kept
  ASSERT_TRUE(cache.Get(5).has_value());
  EXPECT_EQ(cache.Get(5)->nlink(), 4u);

  // The earlier one's reply first: not kept (a later change may have passed it), and the
  // later one's is.
  const uint64_t t3 = cache.Begin(5);
  const uint64_t t4 = cache.Begin(5);
  cache.End(5, t3, &a1);
  EXPECT_FALSE(cache.Get(5).has_value());
  cache.End(5, t4, &a2);
  EXPECT_TRUE(cache.Get(5).has_value());

  // Drop during a change: its reply is not kept either.
  const uint64_t t5 = cache.Begin(5);
  cache.Drop(5);
  cache.End(5, t5, &a1);
  EXPECT_FALSE(cache.Get(5).has_value());
  EXPECT_EQ(cache.size(), 0u);

  // Not a directory, or another inode: not kept.
  pb::Attr file = a1;
  file.set_mode(S_IFREG | 0644);
  cache.End(5, cache.Begin(5), &file);
  EXPECT_FALSE(cache.Get(5).has_value());
  cache.End(6, cache.Begin(6), &a1);
  EXPECT_FALSE(cache.Get(6).has_value());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(DirAttrCacheTest, StaysBounded) {
  DirAttrCache cache(absl::Seconds(10));
  pb::Attr a;
  a.set_mode(S_IFDIR | 0755);
  for (uint64_t ino = 1; ino <= 10000; ++ino) {
    a.set_ino(ino);
    cache.End(ino, cache.Begin(ino), &a);
  }
  EXPECT_LE(cache.size(), 4097u);
  a.set_ino(10000);
  EXPECT_TRUE(cache.Get(10000).has_value());
}

TEST(DirNamesTest, KnowsOnlyFoldersItMadeAndStaysBounded) {
  DirNames names(absl::Seconds(60));
  const absl::Time now = absl::Now();
  EXPECT_FALSE(names.KnownAbsent(1, "a"));  // never made here
  names.Changed(1, now, true, "a", {});     // a change alone does not start anything
  EXPECT_FALSE(names.KnownAbsent(1, "b"));
  names.Made(2, now);
  EXPECT_TRUE(names.KnownAbsent(2, "a"));
  names.Changed(2, now, true, "a", {});
  EXPECT_FALSE(names.KnownAbsent(2, "a"));
  EXPECT_TRUE(names.KnownAbsent(2, "b"));
  names.Changed(2, now, false, "b", {});  // someone else changed it in between
  EXPECT_FALSE(names.KnownAbsent(2, "c"));
  // Past the bound on names, the folder that crossed it is forgotten.
  names.Made(3, now);
  for (size_t i = 0; i <= DirNames::kMaxNames; ++i) {
    names.Changed(3, now, true, "n" + std::to_string(i), {});
  }
  EXPECT_FALSE(names.KnownAbsent(3, "other"));
  EXPECT_EQ(names.dirs(), 0u);
  // Past the bound on folders, new ones are not kept (until old ones expire).
  for (uint64_t d = 10; d < 10 + DirNames::kMaxDirs + 5; ++d) names.Made(d, now);
  EXPECT_EQ(names.dirs(), DirNames::kMaxDirs);
  EXPECT_TRUE(names.KnownAbsent(10, "x"));
  EXPECT_FALSE(names.KnownAbsent(10 + DirNames::kMaxDirs + 1, "x"));
  // Zero entry_timeout keeps nothing.
  DirNames off(absl::ZeroDuration());
  off.Made(1, now);
  EXPECT_FALSE(off.KnownAbsent(1, "a"));
}

}  // namespace
}  // namespace nighfs::fs
