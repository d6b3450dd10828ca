// The server's POSIX permission checks (meta/access.h): the rules on their own, then each rule
// through raw MetaService calls made under a volume-token principal for a caller that may not
// do it (refused with the kernel's errno, nothing changed) and for one that may.
//
// The same calls sent over HTTP under a real volume token need the token layer (auth branch);
// the principal here is what that layer sets for such a request.
#include "meta/access.h"

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/errno_status.h"
#include "gtest/gtest.h"
#include "meta/meta_service.h"
#include "meta/principal.h"
#include "tests/meta/fake_store.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta {
namespace {

using internal::CheckDelete;
using internal::CheckPermission;
using internal::CheckRename;
using internal::CheckSetAttr;
using internal::CheckXattrAccess;
using internal::Cred;
using internal::GrantCovers;
using internal::kMayExec;
using internal::kMayRead;
using internal::kMayWrite;
using internal::MakeGrant;
using internal::ModeAfterSetAttr;
using internal::Node;
using ::nighfs::testing::TempDir;

template <class T>
int Errno(const T& s) {
  return StatusToErrno(::nighfs::testing::GetStatus(s));
}

const Cred kRoot = Cred::Root();
const Cred kAlice{1000, 1000, {}};
const Cred kBob{1001, 1001, {1000}};  // in alice's group
const Cred kEve{1002, 1002, {}};

TEST(AccessRules, ModeClassesAndRoot) {
  const Node f{S_IFREG | 0640, 1000, 1000};
  EXPECT_OK(CheckPermission(kAlice, f, kMayRead | kMayWrite));
  EXPECT_OK(CheckPermission(kBob, f, kMayRead));
  EXPECT_EQ(Errno(CheckPermission(kBob, f, kMayWrite)), EACCES);
  EXPECT_EQ(Errno(CheckPermission(kEve, f, kMayRead)), EACCES);
  // The owner class applies to the owner even when the group class would allow more.
  EXPECT_EQ(Errno(CheckPermission(kAlice, Node{S_IFREG | 0070, 1000, 1000}, kMayRead)), EACCES);
  EXPECT_OK(CheckPermission(kRoot, Node{S_IFREG | 0000, 1000, 1000}, kMayRead | kMayWrite));
  // Root still needs some execute bit to execute a file, not to search a directory.
  EXPECT_EQ(Errno(CheckPermission(kRoot, Node{S_IFREG | 0600, 1000, 1000}, kMayExec)), EACCES);
  EXPECT_OK(CheckPermission(kRoot, Node{S_IFREG | 0610, 1000, 1000}, kMayExec));
  EXPECT_OK(CheckPermission(kRoot, Node{S_IFDIR | 0000, 1000, 1000}, kMayExec));
}

TEST(AccessRules, StickyDirectories) {
  const Node tmp{S_IFDIR | 01777, 0, 0};
  const Node alices{S_IFREG | 0644, 1000, 1000};
  EXPECT_EQ(Errno(CheckDelete(kBob, tmp, alices)), EPERM);
  EXPECT_OK(CheckDelete(kAlice, tmp, alices));
  EXPECT_OK(CheckDelete(kRoot, tmp, alices));
  // The owner of the directory may remove anything in it.
  EXPECT_OK(CheckDelete(kBob, Node{S_IFDIR | 01777, 1001, 0}, alices));
  // Without write on the directory it is EACCES before the sticky rule.
  EXPECT_EQ(Errno(CheckDelete(kBob, Node{S_IFDIR | 01755, 0, 0}, alices)), EACCES);
}

TEST(AccessRules, RenameOfADirectoryToAnotherParentNeedsWriteOnIt) {
  const Node open_dir{S_IFDIR | 0777, 0, 0};
  const Node src{S_IFDIR | 0555, 1001, 1001};
  EXPECT_EQ(Errno(CheckRename(kBob, open_dir, src, open_dir, std::nullopt, false, false)), EACCES);
  EXPECT_OK(CheckRename(kBob, open_dir, src, open_dir, std::nullopt, true, false));
  const Node file{S_IFREG | 0444, 1001, 1001};
  EXPECT_OK(CheckRename(kBob, open_dir, file, open_dir, std::nullopt, false, false));
  // Exchange: the other directory moves too.
  const Node other{S_IFDIR | 0555, 1000, 1000};
  EXPECT_EQ(Errno(CheckRename(kBob, open_dir, Node{S_IFDIR | 0755, 1001, 1001}, open_dir, other,
                              false, true)),
            EACCES);
}

TEST(AccessRules, SetAttr) {
  namespace pb = ::nighfs::meta::v1;
  const Node f{S_IFREG | 0644, 1000, 1000};
  EXPECT_EQ(Errno(CheckSetAttr(kBob, f, pb::SETATTR_MODE, 0, 0, 0, false)), EPERM);
  EXPECT_OK(CheckSetAttr(kAlice, f, pb::SETATTR_MODE, 0, 0, 0, false));
  EXPECT_EQ(Errno(CheckSetAttr(kAlice, f, pb::SETATTR_UID, 0, 1001, 0, false)), EPERM);
  EXPECT_OK(CheckSetAttr(kAlice, f, pb::SETATTR_UID, 0, 1000, 0, false));  // to itself
  EXPECT_EQ(Errno(CheckSetAttr(kBob, f, pb::SETATTR_UID, 0, 1000, 0, false)), EPERM);
  EXPECT_OK(CheckSetAttr(kRoot, f, pb::SETATTR_UID | pb::SETATTR_GID, 0, 7, 7, false));
  EXPECT_EQ(Errno(CheckSetAttr(kAlice, f, pb::SETATTR_GID, 0, 0, 50, false)), EPERM);
  EXPECT_OK(CheckSetAttr(Cred{1000, 1000, {50}}, f, pb::SETATTR_GID, 0, 0, 50, false));
  EXPECT_EQ(Errno(CheckSetAttr(kBob, f, pb::SETATTR_SIZE, 0, 0, 0, false)), EACCES);
  EXPECT_OK(CheckSetAttr(kBob, f, pb::SETATTR_SIZE, 0, 0, 0, /*write_granted=*/true));
  EXPECT_EQ(Errno(CheckSetAttr(kBob, f, pb::SETATTR_MTIME, 0, 0, 0, false)), EPERM);
  EXPECT_EQ(Errno(CheckSetAttr(kBob, f, pb::SETATTR_MTIME_NOW, 0, 0, 0, false)), EACCES);
  EXPECT_OK(CheckSetAttr(kBob, Node{S_IFREG | 0664, 1000, 1000}, pb::SETATTR_MTIME_NOW, 0, 0, 0,
                         false));
  // The kernel stripping suid/sgid on another user's write: allowed to a writer, only that.
  const Node suid{S_IFREG | 06766, 1000, 1000};
  EXPECT_OK(CheckSetAttr(kEve, suid, pb::SETATTR_MODE, 0766, 0, 0, false));
  EXPECT_OK(CheckSetAttr(kEve, suid, pb::SETATTR_MODE, 02766, 0, 0, false));
  EXPECT_EQ(Errno(CheckSetAttr(kEve, suid, pb::SETATTR_MODE, 0777, 0, 0, false)), EPERM);
  EXPECT_EQ(Errno(CheckSetAttr(kEve, suid, pb::SETATTR_MODE, 06766, 0, 0, false)), EPERM);
  EXPECT_EQ(Errno(CheckSetAttr(kEve, Node{S_IFREG | 06744, 1000, 1000}, pb::SETATTR_MODE, 0744,
                               0, 0, false)),
            EPERM);
  EXPECT_OK(CheckSetAttr(kEve, Node{S_IFREG | 06744, 1000, 1000}, pb::SETATTR_MODE, 0744, 0, 0,
                         /*write_granted=*/true));
  // chmod g+s outside the file's group drops setgid; chown by a non-root clears suid/sgid.
  EXPECT_EQ(ModeAfterSetAttr(kAlice, pb::SETATTR_MODE, S_IFREG | 02755, 50), S_IFREG | 0755u);
  EXPECT_EQ(ModeAfterSetAttr(kAlice, pb::SETATTR_MODE, S_IFREG | 02755, 1000), S_IFREG | 02755u);
  EXPECT_EQ(ModeAfterSetAttr(kAlice, pb::SETATTR_GID, S_IFREG | 06755, 1000), S_IFREG | 0755u);
  EXPECT_EQ(ModeAfterSetAttr(kAlice, pb::SETATTR_GID, S_IFREG | 06745, 1000), S_IFREG | 02745u);
  EXPECT_EQ(ModeAfterSetAttr(kRoot, pb::SETATTR_UID, S_IFREG | 06755, 0), S_IFREG | 06755u);
}

TEST(AccessRules, Xattrs) {
  const Node f{S_IFREG | 0600, 1000, 1000};
  EXPECT_OK(CheckXattrAccess(kAlice, f, "user.a", true));
  EXPECT_EQ(Errno(CheckXattrAccess(kBob, f, "user.a", false)), EACCES);
  EXPECT_EQ(Errno(CheckXattrAccess(kBob, f, "user.a", true)), EACCES);
  EXPECT_EQ(Errno(CheckXattrAccess(kAlice, f, "trusted.a", true)), EPERM);
  EXPECT_EQ(Errno(CheckXattrAccess(kAlice, f, "trusted.a", false)), ENODATA);
  EXPECT_OK(CheckXattrAccess(kRoot, f, "trusted.a", true));
  EXPECT_EQ(Errno(CheckXattrAccess(kAlice, f, "security.a", true)), EPERM);
  EXPECT_OK(CheckXattrAccess(kBob, f, "security.capability", false));
  EXPECT_EQ(Errno(CheckXattrAccess(kRoot, f, "system.posix_acl_access", true)), EOPNOTSUPP);
  EXPECT_EQ(Errno(CheckXattrAccess(kRoot, f, "system.posix_acl_access", false)), ENODATA);
  EXPECT_EQ(Errno(CheckXattrAccess(kRoot, f, "", false)), ERANGE);
  EXPECT_EQ(Errno(CheckXattrAccess(kRoot, f, std::string(256, 'u'), false)), ERANGE);
  EXPECT_EQ(Errno(CheckXattrAccess(kAlice, Node{S_IFLNK | 0777, 1000, 1000}, "user.a", true)),
            EPERM);
  EXPECT_EQ(Errno(CheckXattrAccess(kBob, Node{S_IFDIR | 01777, 1000, 1000}, "user.a", true)),
            EPERM);
}

TEST(AccessRules, GrantsAreBoundToVolumeInodeSessionAndAccess) {
  const std::string key(32, 'k');
  const std::string g = MakeGrant(key, 1, 5, 9, kMayWrite);
  EXPECT_TRUE(GrantCovers(key, g, 1, 5, 9, kMayWrite));
  EXPECT_FALSE(GrantCovers(key, g, 1, 5, 9, kMayRead));
  EXPECT_FALSE(GrantCovers(key, g, 1, 6, 9, kMayWrite));
  EXPECT_FALSE(GrantCovers(key, g, 2, 5, 9, kMayWrite));
  EXPECT_FALSE(GrantCovers(key, g, 1, 5, 8, kMayWrite));
  EXPECT_FALSE(GrantCovers(std::string(32, 'x'), g, 1, 5, 9, kMayWrite));
  std::string forged = g;
  forged[0] = static_cast<char>(kMayRead | kMayWrite);  // claim more access
  EXPECT_FALSE(GrantCovers(key, forged, 1, 5, 9, kMayRead));
  EXPECT_FALSE(GrantCovers(key, "", 1, 5, 9, kMayWrite));
}

// ---- through the service ----

pb::Caller As(uint32_t uid, uint32_t gid, std::vector<uint32_t> groups = {}) {
  pb::Caller c;
  c.set_uid(uid);
  c.set_gid(gid);
  for (uint32_t g : groups) c.add_groups(g);
  return c;
}

class ServerChecksTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Open()); }

  void Open() {
    svc_.reset();
    MetaServiceOptions o;
    o.db_path = dir_.path() + "/meta.db";
    o.run_background = false;
    o.open_store = [this](const std::string& url) { return stores_.Open(url); };
    o.allow_test_stores = true;
    absl::StatusOr<std::unique_ptr<MetaService>> s = MetaService::Open(o);
    ASSERT_OK(s);
    svc_ = std::move(*s);
    if (vol_ != 0) return;
    pb::CreateVolumeRequest cv;
    cv.set_name("vol");
    cv.set_store_url("mem://vol");
    cv.set_block_size(64 * 1024);
    absl::StatusOr<pb::CreateVolumeResponse> v = svc_->CreateVolume(cv);
    ASSERT_OK(v);
    vol_ = v->volume().id();
    pb::MountRequest m;
    m.set_volume_name("vol");
    absl::StatusOr<pb::MountResponse> mr = svc_->Mount(m);
    ASSERT_OK(mr);
    session_ = mr->session_id();
  }

  // What the token layer sets for a request of this volume's mount.
  Principal Token() const {
    Principal p;
    p.kind = Principal::Kind::kVolumeToken;
    p.volume_id = vol_;
    p.session_id = session_;
    return p;
  }

  // As root, in process (no caller): a node owned by uid:gid.
  uint64_t Make(uint64_t parent, const std::string& name, uint32_t mode, uint32_t uid,
                uint32_t gid) {
    ScopedPrincipal internal{Principal{}};
    absl::StatusOr<pb::EntryResponse> r;
    if (S_ISDIR(mode)) {
      pb::MkdirRequest q;
      q.set_volume_id(vol_);
      q.set_parent(parent);
      q.set_name(name);
      q.set_mode(mode & 07777);
      q.set_uid(uid);
      q.set_gid(gid);
      r = svc_->Mkdir(q);
    } else {
      pb::MknodRequest q;
      q.set_volume_id(vol_);
      q.set_parent(parent);
      q.set_name(name);
      q.set_mode(mode);
      q.set_uid(uid);
      q.set_gid(gid);
      r = svc_->Mknod(q);
    }
    EXPECT_OK(r);
    return r.ok() ? r->attr().ino() : 0;
  }

  pb::Attr Stat(uint64_t ino) {
    ScopedPrincipal internal{Principal{}};
    pb::GetAttrRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    absl::StatusOr<pb::AttrResponse> r = svc_->GetAttr(q);
    EXPECT_OK(r);
    return r.ok() ? r->attr() : pb::Attr();
  }

  absl::Status SetAttr(const pb::Caller& c, uint64_t ino, uint32_t valid, uint32_t mode,
                       uint32_t uid = 0, uint32_t gid = 0, uint64_t size = 0,
                       const std::string& grant = "") {
    pb::SetAttrRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    q.set_valid(valid);
    q.set_mode(mode);
    q.set_uid(uid);
    q.set_gid(gid);
    q.set_size(size);
    q.set_mtime_ns(123);
    q.set_atime_ns(123);
    q.set_grant(grant);
    *q.mutable_caller() = c;
    return svc_->SetAttr(q).status();
  }

  absl::StatusOr<pb::GetBlocksResponse> OpenFile(const pb::Caller& c, uint64_t ino, int access) {
    pb::GetBlocksRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    q.set_open_access(access);
    *q.mutable_caller() = c;
    return svc_->GetBlocks(q);
  }

  absl::Status Grow(const pb::Caller& c, uint64_t ino, uint64_t size, const std::string& grant) {
    pb::CommitBlocksRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    q.set_min_size(size);
    q.set_grant(grant);
    *q.mutable_caller() = c;
    return svc_->CommitBlocks(q).status();
  }

  absl::StatusOr<pb::EntryResponse> Lookup(const pb::Caller& c, uint64_t parent,
                                           const std::string& name) {
    pb::LookupRequest q;
    q.set_volume_id(vol_);
    q.set_parent(parent);
    q.set_name(name);
    *q.mutable_caller() = c;
    return svc_->Lookup(q);
  }

  absl::Status Unlink(const pb::Caller& c, uint64_t parent, const std::string& name) {
    pb::UnlinkRequest q;
    q.set_volume_id(vol_);
    q.set_parent(parent);
    q.set_name(name);
    *q.mutable_caller() = c;
    return svc_->Unlink(q).status();
  }

  absl::Status Rename(const pb::Caller& c, uint64_t parent, const std::string& name,
                      uint64_t new_parent, const std::string& new_name) {
    pb::RenameRequest q;
    q.set_volume_id(vol_);
    q.set_parent(parent);
    q.set_name(name);
    q.set_new_parent(new_parent);
    q.set_new_name(new_name);
    *q.mutable_caller() = c;
    return svc_->Rename(q).status();
  }

  absl::StatusOr<pb::EntryResponse> Mknod(const pb::Caller& c, uint64_t parent,
                                          const std::string& name, uint32_t mode,
                                          uint32_t open_access = 0) {
    pb::MknodRequest q;
    q.set_volume_id(vol_);
    q.set_parent(parent);
    q.set_name(name);
    q.set_mode(mode);
    q.set_uid(c.uid());
    q.set_gid(c.gid());
    q.set_open_access(open_access);
    *q.mutable_caller() = c;
    return svc_->Mknod(q);
  }

  absl::Status SetXattr(const pb::Caller& c, uint64_t ino, const std::string& name,
                        const std::string& value = "v") {
    pb::SetXattrRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    q.set_name(name);
    q.set_value(value);
    *q.mutable_caller() = c;
    return svc_->SetXattr(q).status();
  }

  absl::StatusOr<pb::GetXattrResponse> GetXattr(const pb::Caller& c, uint64_t ino,
                                                const std::string& name) {
    pb::GetXattrRequest q;
    q.set_volume_id(vol_);
    q.set_ino(ino);
    q.set_name(name);
    *q.mutable_caller() = c;
    return svc_->GetXattr(q);
  }

  const pb::Caller alice_ = As(1000, 1000);
  const pb::Caller bob_ = As(1001, 1001);
  const pb::Caller root_ = As(0, 0);

  TempDir dir_;
  fake::FakeStores stores_;
  std::unique_ptr<MetaService> svc_;
  uint64_t vol_ = 0;
  uint64_t session_ = 0;
};

TEST_F(ServerChecksTest, VolumeTokenRequestWithoutCallerIsRefused) {
  const uint64_t f = Make(1, "f", S_IFREG | 0644, 1000, 1000);
  pb::GetAttrRequest q;
  q.set_volume_id(vol_);
  q.set_ino(f);
  EXPECT_OK(svc_->GetAttr(q));  // in process: acts as root
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(svc_->GetAttr(q)), EACCES);
  pb::SetAttrRequest s;
  s.set_volume_id(vol_);
  s.set_ino(f);
  s.set_valid(pb::SETATTR_MODE);
  s.set_mode(0777);
  EXPECT_EQ(Errno(svc_->SetAttr(s)), EACCES);
  ScopedPrincipal internal(Principal{});
  EXPECT_EQ(Stat(f).mode(), S_IFREG | 0644u);
}

TEST_F(ServerChecksTest, CannotChmodChownOrReadAnotherUsersPrivateFile) {
  const uint64_t f = Make(1, "secret", S_IFREG | 0600, 1000, 1000);
  {
    ScopedPrincipal p(Token());
    EXPECT_EQ(Errno(SetAttr(bob_, f, pb::SETATTR_MODE, 0644)), EPERM);
    EXPECT_EQ(Errno(SetAttr(bob_, f, pb::SETATTR_UID | pb::SETATTR_GID, 0, 1001, 1001)), EPERM);
    EXPECT_EQ(Errno(SetAttr(bob_, f, pb::SETATTR_GID, 0, 0, 1001)), EPERM);
    EXPECT_EQ(Errno(OpenFile(bob_, f, kMayRead)), EACCES);
    EXPECT_EQ(Errno(OpenFile(bob_, f, kMayWrite)), EACCES);
    pb::GetBlocksRequest q;  // the block map without an open: read permission
    q.set_volume_id(vol_);
    q.set_ino(f);
    *q.mutable_caller() = bob_;
    EXPECT_EQ(Errno(svc_->GetBlocks(q)), EACCES);
    EXPECT_EQ(Errno(SetAttr(bob_, f, pb::SETATTR_SIZE, 0, 0, 0, 5)), EACCES);
    EXPECT_EQ(Errno(Grow(bob_, f, 5, "")), EACCES);
    // Even the owner cannot give the file away.
    EXPECT_EQ(Errno(SetAttr(alice_, f, pb::SETATTR_UID, 0, 1001)), EPERM);
  }
  pb::Attr a = Stat(f);
  EXPECT_EQ(a.mode(), S_IFREG | 0600u);
  EXPECT_EQ(a.uid(), 1000u);
  EXPECT_EQ(a.gid(), 1000u);
  EXPECT_EQ(a.size(), 0u);
  ScopedPrincipal p(Token());
  EXPECT_OK(OpenFile(alice_, f, kMayRead | kMayWrite));
  EXPECT_OK(SetAttr(alice_, f, pb::SETATTR_MODE, 0640));
  EXPECT_OK(SetAttr(root_, f, pb::SETATTR_UID, 0, 1001));
  EXPECT_OK(OpenFile(bob_, f, kMayRead | kMayWrite));  // bob owns it now
}

TEST_F(ServerChecksTest, ChgrpAndChmodSetgidFollowGroupMembership) {
  const uint64_t f = Make(1, "prog", S_IFREG | 06755, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(SetAttr(alice_, f, pb::SETATTR_GID, 0, 0, 50)), EPERM);
  // To a group alice is in: allowed, and the chown clears suid and (group-executable) sgid.
  EXPECT_OK(SetAttr(As(1000, 1000, {50}), f, pb::SETATTR_GID, 0, 0, 50));
  EXPECT_EQ(Stat(f).mode(), S_IFREG | 0755u);
  EXPECT_EQ(Stat(f).gid(), 50u);
  // chmod g+s on a file of a group the caller is not in: setgid dropped, the rest applied.
  EXPECT_OK(SetAttr(alice_, f, pb::SETATTR_MODE, 02750));
  EXPECT_EQ(Stat(f).mode(), S_IFREG | 0750u);
  EXPECT_OK(SetAttr(As(1000, 1000, {50}), f, pb::SETATTR_MODE, 02750));
  EXPECT_EQ(Stat(f).mode(), S_IFREG | 02750u);
  EXPECT_OK(SetAttr(root_, f, pb::SETATTR_MODE, 04755));
  EXPECT_EQ(Stat(f).mode(), S_IFREG | 04755u);
}

TEST_F(ServerChecksTest, TimesAndTruncate) {
  const uint64_t ro = Make(1, "ro", S_IFREG | 0644, 1000, 1000);
  const uint64_t rw = Make(1, "rw", S_IFREG | 0666, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(SetAttr(bob_, rw, pb::SETATTR_MTIME, 0)), EPERM);
  EXPECT_EQ(Errno(SetAttr(bob_, ro, pb::SETATTR_MTIME_NOW | pb::SETATTR_ATIME_NOW, 0)), EACCES);
  EXPECT_NE(Stat(rw).mtime_ns(), 123);
  EXPECT_OK(SetAttr(bob_, rw, pb::SETATTR_MTIME_NOW | pb::SETATTR_ATIME_NOW, 0));
  EXPECT_OK(SetAttr(alice_, ro, pb::SETATTR_MTIME, 0));
  EXPECT_EQ(Stat(ro).mtime_ns(), 123);
  EXPECT_EQ(Errno(SetAttr(bob_, ro, pb::SETATTR_SIZE, 0, 0, 0, 10)), EACCES);
  EXPECT_EQ(Stat(ro).size(), 0u);
  EXPECT_OK(SetAttr(bob_, rw, pb::SETATTR_SIZE, 0, 0, 0, 10));
  EXPECT_EQ(Stat(rw).size(), 10u);
}

TEST_F(ServerChecksTest, SearchAndReadOfDirectories) {
  const uint64_t home = Make(1, "home", S_IFDIR | 0700, 1000, 1000);
  Make(home, "f", S_IFREG | 0644, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(Lookup(bob_, home, "f")), EACCES);
  EXPECT_OK(Lookup(alice_, home, "f"));
  EXPECT_OK(Lookup(root_, home, "f"));
  pb::ReadDirRequest q;
  q.set_volume_id(vol_);
  q.set_ino(home);
  *q.mutable_caller() = bob_;
  EXPECT_EQ(Errno(svc_->ReadDir(q)), EACCES);
  *q.mutable_caller() = alice_;
  absl::StatusOr<pb::ReadDirResponse> r = svc_->ReadDir(q);
  ASSERT_OK(r);
  EXPECT_EQ(r->entries_size(), 1);
  // Execute-only: names can be looked up but not listed.
  EXPECT_OK(SetAttr(alice_, home, pb::SETATTR_MODE, 0711));
  EXPECT_OK(Lookup(bob_, home, "f"));
  *q.mutable_caller() = bob_;
  EXPECT_EQ(Errno(svc_->ReadDir(q)), EACCES);
}

// An open directory, as an open file, keeps its access: a listing checked at its start goes on.
TEST_F(ServerChecksTest, ListingGoesOnAfterChmodWithItsGrant) {
  const uint64_t d = Make(1, "d", S_IFDIR | 0755, 1000, 1000);
  Make(d, "a", S_IFREG | 0644, 1000, 1000);
  Make(d, "b", S_IFREG | 0644, 1000, 1000);
  ScopedPrincipal p(Token());
  pb::ReadDirRequest q;
  q.set_volume_id(vol_);
  q.set_ino(d);
  q.set_limit(1);
  *q.mutable_caller() = bob_;
  absl::StatusOr<pb::ReadDirResponse> first = svc_->ReadDir(q);
  ASSERT_OK(first);
  ASSERT_EQ(first->entries_size(), 1);
  ASSERT_FALSE(first->grant().empty());
  ASSERT_OK(SetAttr(alice_, d, pb::SETATTR_MODE, 0700));
  q.set_cookie(first->entries(0).cookie());
  EXPECT_EQ(Errno(svc_->ReadDir(q)), EACCES);
  q.set_grant(first->grant());
  absl::StatusOr<pb::ReadDirResponse> rest = svc_->ReadDir(q);
  ASSERT_OK(rest);
  EXPECT_EQ(rest->entries_size(), 1);
  // The grant is for that directory only.
  const uint64_t other = Make(1, "other", S_IFDIR | 0700, 1000, 1000);
  q.set_ino(other);
  q.set_cookie(0);
  EXPECT_EQ(Errno(svc_->ReadDir(q)), EACCES);
}

TEST_F(ServerChecksTest, CreateRemoveAndRenameNeedWriteOnTheParent) {
  const uint64_t d = Make(1, "d", S_IFDIR | 0755, 1000, 1000);
  Make(d, "f", S_IFREG | 0666, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(Mknod(bob_, d, "new", S_IFREG | 0644)), EACCES);
  EXPECT_EQ(Errno(Unlink(bob_, d, "f")), EACCES);
  EXPECT_EQ(Errno(Rename(bob_, d, "f", d, "g")), EACCES);
  pb::MkdirRequest mk;
  mk.set_volume_id(vol_);
  mk.set_parent(d);
  mk.set_name("sub");
  mk.set_mode(0755);
  *mk.mutable_caller() = bob_;
  EXPECT_EQ(Errno(svc_->Mkdir(mk)), EACCES);
  EXPECT_EQ(Errno(Lookup(alice_, d, "new")), ENOENT);
  EXPECT_OK(Lookup(alice_, d, "f"));
  // The owner may; what it creates is its own whatever uid the request names.
  pb::MknodRequest q;
  q.set_volume_id(vol_);
  q.set_parent(d);
  q.set_name("mine");
  q.set_mode(S_IFREG | 04755);
  q.set_uid(0);
  q.set_gid(0);
  *q.mutable_caller() = alice_;
  absl::StatusOr<pb::EntryResponse> made = svc_->Mknod(q);
  ASSERT_OK(made);
  EXPECT_EQ(made->attr().uid(), 1000u);
  EXPECT_EQ(made->attr().gid(), 1000u);
  EXPECT_OK(Rename(alice_, d, "f", d, "g"));
  EXPECT_OK(Unlink(alice_, d, "g"));
}

TEST_F(ServerChecksTest, StickyDirectoryProtectsOtherUsersEntries) {
  const uint64_t tmp = Make(1, "tmp", S_IFDIR | 01777, 0, 0);
  Make(tmp, "alices", S_IFREG | 0666, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(Unlink(bob_, tmp, "alices")), EPERM);
  EXPECT_EQ(Errno(Rename(bob_, tmp, "alices", tmp, "bobs")), EPERM);
  ASSERT_OK(Mknod(bob_, tmp, "bobs", S_IFREG | 0644));
  // Replacing another user's entry is removing it.
  EXPECT_EQ(Errno(Rename(bob_, tmp, "bobs", tmp, "alices")), EPERM);
  EXPECT_OK(Lookup(alice_, tmp, "alices"));
  EXPECT_OK(Rename(bob_, tmp, "bobs", tmp, "bobs2"));
  EXPECT_OK(Unlink(bob_, tmp, "bobs2"));
  EXPECT_OK(Unlink(alice_, tmp, "alices"));
}

TEST_F(ServerChecksTest, MovingADirectoryToAnotherParentNeedsWriteOnIt) {
  const uint64_t a = Make(1, "a", S_IFDIR | 0777, 0, 0);
  const uint64_t b = Make(1, "b", S_IFDIR | 0777, 0, 0);
  const uint64_t sub = Make(a, "sub", S_IFDIR | 0555, 1001, 1001);
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(Rename(bob_, a, "sub", b, "sub")), EACCES);
  EXPECT_OK(Lookup(bob_, a, "sub"));
  EXPECT_OK(Rename(bob_, a, "sub", a, "sub2"));  // same parent: ".." does not change
  EXPECT_OK(SetAttr(bob_, sub, pb::SETATTR_MODE, 0755));
  EXPECT_OK(Rename(bob_, a, "sub2", b, "sub"));
}

TEST_F(ServerChecksTest, DeviceNodesOnlyByRoot) {
  ScopedPrincipal p(Token());
  EXPECT_EQ(Errno(Mknod(bob_, 1, "tty", S_IFCHR | 0600)), EPERM);
  EXPECT_EQ(Errno(Mknod(bob_, 1, "sda", S_IFBLK | 0600)), EPERM);
  EXPECT_EQ(Errno(Lookup(root_, 1, "tty")), ENOENT);
  EXPECT_OK(Mknod(root_, 1, "tty", S_IFCHR | 0600));
  // The root directory is root's 0755: bob creates nothing there, devices or not.
  EXPECT_EQ(Errno(Mknod(bob_, 1, "fifo", S_IFIFO | 0600)), EACCES);
}

TEST_F(ServerChecksTest, XattrNamespacesAndPermissions) {
  const uint64_t f = Make(1, "f", S_IFREG | 0600, 1000, 1000);
  ScopedPrincipal p(Token());
  EXPECT_OK(SetXattr(alice_, f, "user.a"));
  EXPECT_EQ(Errno(SetXattr(bob_, f, "user.b")), EACCES);
  EXPECT_EQ(Errno(GetXattr(bob_, f, "user.a")), EACCES);
  EXPECT_EQ(Errno(SetXattr(alice_, f, "trusted.a")), EPERM);
  EXPECT_EQ(Errno(SetXattr(alice_, f, "security.a")), EPERM);
  EXPECT_OK(SetXattr(root_, f, "trusted.a"));
  EXPECT_EQ(Errno(GetXattr(alice_, f, "trusted.a")), ENODATA);
  EXPECT_OK(GetXattr(root_, f, "trusted.a"));
  // As the mount: ACLs are refused, names and values are bounded.
  EXPECT_EQ(Errno(SetXattr(root_, f, "system.posix_acl_access")), EOPNOTSUPP);
  EXPECT_EQ(Errno(GetXattr(root_, f, "system.posix_acl_access")), ENODATA);
  EXPECT_EQ(Errno(SetXattr(root_, f, "")), ERANGE);
  EXPECT_EQ(Errno(SetXattr(root_, f, "user." + std::string(251, 'x'))), ERANGE);
  EXPECT_EQ(Errno(SetXattr(root_, f, "user.big", std::string(64 * 1024 + 1, 'v'))), E2BIG);
  pb::ListXattrRequest l;
  l.set_volume_id(vol_);
  l.set_ino(f);
  *l.mutable_caller() = alice_;
  absl::StatusOr<pb::ListXattrResponse> names = svc_->ListXattr(l);
  ASSERT_OK(names);
  EXPECT_EQ(names->names_size(), 2);  // user.a, trusted.a: nothing else was stored
}

// POSIX checks at open: a descriptor keeps the access it was opened with.
TEST_F(ServerChecksTest, OpenGrantKeepsADescriptorsAccessAfterChmod) {
  const uint64_t f = Make(1, "f", S_IFREG | 0600, 1000, 1000);
  std::string grant;
  {
    ScopedPrincipal p(Token());
    absl::StatusOr<pb::GetBlocksResponse> opened = OpenFile(alice_, f, kMayWrite);
    ASSERT_OK(opened);
    grant = opened->grant();
    ASSERT_FALSE(grant.empty());
    ASSERT_OK(SetAttr(alice_, f, pb::SETATTR_MODE, 0));  // fchmod(fd, 0)
    EXPECT_EQ(Errno(Grow(alice_, f, 10, "")), EACCES);
    EXPECT_OK(Grow(alice_, f, 10, grant));
    EXPECT_EQ(Errno(SetAttr(alice_, f, pb::SETATTR_SIZE, 0, 0, 0, 4)), EACCES);
    EXPECT_OK(SetAttr(alice_, f, pb::SETATTR_SIZE, 0, 0, 0, 4, grant));  // ftruncate
    // The grant is for writing this file only, and does not chmod.
    EXPECT_EQ(Errno(SetAttr(bob_, f, pb::SETATTR_MODE, 0666, 0, 0, 0, grant)), EPERM);
    const uint64_t other = Make(1, "other", S_IFREG | 0600, 1000, 1000);
    EXPECT_EQ(Errno(Grow(bob_, other, 10, grant)), EACCES);
  }
  EXPECT_EQ(Stat(f).size(), 4u);
  // Another session (another mount) cannot use it.
  Principal elsewhere = Token();
  elsewhere.session_id = session_ + 1;
  {
    ScopedPrincipal p(elsewhere);
    EXPECT_EQ(Errno(Grow(alice_, f, 20, grant)), EACCES);
  }
  // It survives a restart of the server (the key is in the database).
  ASSERT_NO_FATAL_FAILURE(Open());
  ScopedPrincipal p(Token());
  EXPECT_OK(Grow(alice_, f, 20, grant));
  EXPECT_EQ(Stat(f).size(), 20u);
}

TEST_F(ServerChecksTest, CreatorGetsAGrantWhateverTheNewMode) {
  const uint64_t d = Make(1, "d", S_IFDIR | 0777, 0, 0);
  ScopedPrincipal p(Token());
  // open(O_CREAT | O_WRONLY, 0444) writes to the file it creates.
  absl::StatusOr<pb::EntryResponse> made = Mknod(bob_, d, "ro", S_IFREG | 0444, kMayWrite);
  ASSERT_OK(made);
  ASSERT_FALSE(made->grant().empty());
  EXPECT_EQ(Errno(Grow(bob_, made->attr().ino(), 3, "")), EACCES);
  EXPECT_OK(Grow(bob_, made->attr().ino(), 3, made->grant()));
}

// CommitBlocksRequest.set_attr: changes a mount deferred to a commit are checked as a SetAttr
// of their own caller, after the commit's data, and a refused one applies nothing at all.
TEST_F(ServerChecksTest, ChangesDeferredToACommitAreCheckedAsTheirCaller) {
  const uint64_t d = Make(1, "d", S_IFDIR | 0777, 0, 0);
  ScopedPrincipal p(Token());
  absl::StatusOr<pb::EntryResponse> made = Mknod(alice_, d, "f", S_IFREG | 0600, kMayWrite);
  ASSERT_OK(made);
  const uint64_t f = made->attr().ino();
  auto commit = [&](const pb::Caller& by, uint32_t valid, uint32_t mode, uint32_t uid,
                    uint64_t size) {
    pb::CommitBlocksRequest q;
    q.set_volume_id(vol_);
    q.set_ino(f);
    q.set_min_size(size);
    q.set_mtime_ns(777);
    q.set_grant(made->grant());
    *q.mutable_caller() = alice_;
    pb::SetAttrRequest* a = q.mutable_set_attr();
    a->set_valid(valid);
    a->set_mode(mode);
    a->set_uid(uid);
    a->set_mtime_ns(555);
    a->set_size(1);
    *a->mutable_caller() = by;
    return svc_->CommitBlocks(q);
  };
  // Bob may not chmod alice's file: the whole commit fails, its size and mtime too.
  EXPECT_EQ(Errno(commit(bob_, pb::SETATTR_MODE, 0644, 0, 10)), EPERM);
  // Nor may alice give it away.
  EXPECT_EQ(Errno(commit(alice_, pb::SETATTR_UID, 0, 1001, 10)), EPERM);
  // A size or ctime never rides on a commit.
  EXPECT_EQ(Errno(commit(alice_, pb::SETATTR_SIZE, 0, 0, 10)), EINVAL);
  EXPECT_EQ(Errno(commit(alice_, pb::SETATTR_CTIME, 0, 0, 10)), EINVAL);
  {
    ScopedPrincipal internal(Principal{});
    const pb::Attr a = Stat(f);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(a.mode(), S_IFREG | 0600u);
    EXPECT_NE(a.mtime_ns(), 777);
  }
  // Alice's chmod and utimes apply after the data: the explicit mtime wins over the commit's.
  absl::StatusOr<pb::CommitBlocksResponse> ok =
      commit(alice_, pb::SETATTR_MODE | pb::SETATTR_MTIME, 02640, 0, 10);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->attr().mode(), S_IFREG | 02640u);  // her group's file: setgid kept
  EXPECT_EQ(ok->attr().mtime_ns(), 555);
  EXPECT_EQ(ok->attr().size(), 10u);
  // Asked by someone outside the file's group, setgid is dropped, as by SetAttr.
  ok = commit(As(1000, 1001), pb::SETATTR_MODE, 02600, 0, 10);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->attr().mode(), S_IFREG | 0600u);
  // root may do anything, including a chown.
  ok = commit(root_, pb::SETATTR_UID, 0, 1001, 10);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->attr().uid(), 1001u);
}

}  // namespace
}  // namespace nighfs::meta
