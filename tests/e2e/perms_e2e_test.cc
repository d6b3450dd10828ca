// POSIX permissions on a real mount for unprivileged users (forked children under setresuid),
// with the metadata server checking each request's caller itself (meta/access.h): what the
// kernel refuses stays refused, what POSIX allows through an open descriptor keeps working
// (open grants), and a permission revoked by another mount is enforced by the server even
// while this mount's kernel still holds the old attributes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/fs_checks.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

constexpr uid_t kAlice = 1001;
constexpr uid_t kBob = 1002;

class PermsE2eTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(StartMeta());
    ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl()));
    mnt_ = MountVolume("vol", "mnt", "attr_timeout=1,entry_timeout=1");
    ASSERT_NE(mnt_, nullptr);
    // A shared folder everyone may use, as /tmp without the sticky bit.
    ASSERT_EQ(::mkdir(P("pub").c_str(), 0777), 0);
    ASSERT_EQ(::chmod(P("pub").c_str(), 0777), 0);
  }

  std::string P(const std::string& rel) const { return mnt_->path() + "/" + rel; }

  FuseMount* mnt_ = nullptr;
};

TEST_F(PermsE2eTest, AnotherUsersPrivateFileCannotBeReadChmoddedOrChowned) {
  const std::string f = P("pub/secret");
  ASSERT_EQ(AsUser(kAlice, kAlice, [&] {
              int fd = ::open(f.c_str(), O_CREAT | O_WRONLY | O_EXCL, 0600);
              if (fd < 0) return errno;
              int rc = ::write(fd, "alice's", 7) == 7 ? 0 : errno;
              return ::close(fd) == 0 ? rc : errno;
            }), 0);
  EXPECT_EQ(AsUser(kBob, kBob, [&] {
              int fd = ::open(f.c_str(), O_RDONLY);
              return fd < 0 ? errno : (::close(fd), 0);
            }), EACCES);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::chmod(f.c_str(), 0644)); }), EPERM);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::chown(f.c_str(), kBob, kBob)); }), EPERM);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::truncate(f.c_str(), 0)); }), EACCES);
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] { return Errno(::chown(f.c_str(), kBob, kAlice)); }),
            EPERM);
  struct stat st;
  ASSERT_EQ(::stat(f.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, kAlice);
  EXPECT_EQ(ReadFile(f), "alice's");
  // The owner may, and root may give it away.
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] { return Errno(::chmod(f.c_str(), 0640)); }), 0);
  EXPECT_EQ(::chown(f.c_str(), kBob, kBob), 0);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return ReadFile(f) == "alice's" ? 0 : 1; }), 0);
}

// POSIX checks at open: a descriptor keeps its access after the file's mode changes.
TEST_F(PermsE2eTest, WritesThroughADescriptorAfterFchmodZero) {
  const std::string f = P("pub/f");
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] {
              int fd = ::open(f.c_str(), O_CREAT | O_RDWR | O_EXCL, 0644);
              if (fd < 0) return 1;
              if (::write(fd, "0123456789", 10) != 10) return 2;
              if (::fchmod(fd, 0) != 0) return 3;
              if (::pwrite(fd, "abc", 3, 10) != 3) return 4;
              if (::fsync(fd) != 0) return 5;  // a commit after the chmod
              if (::ftruncate(fd, 12) != 0) return 6;
              if (::pwrite(fd, "Z", 1, 0) != 1) return 7;
              char buf[16] = {};
              if (::pread(fd, buf, sizeof buf, 0) != 12) return 8;
              if (std::string(buf, 12) != "Z123456789ab") return 9;
              if (::close(fd) != 0) return 10;  // and the last one at close
              // A new open is checked against the new mode.
              return ::open(f.c_str(), O_RDONLY) < 0 && errno == EACCES ? 0 : 11;
            }), 0);
  EXPECT_EQ(ReadFile(f), "Z123456789ab");
  // Write access revoked by chmod (by path this time) while the file is open for appending.
  ASSERT_EQ(::chmod(f.c_str(), 0600), 0);
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] {
              int fd = ::open(f.c_str(), O_WRONLY | O_APPEND);
              if (fd < 0) return 1;
              if (::chmod(f.c_str(), 0400) != 0) return 2;
              if (::write(fd, "!", 1) != 1) return 3;
              return ::close(fd) == 0 ? 0 : 4;
            }), 0);
  EXPECT_EQ(ReadFile(f), "Z123456789ab!");
  // O_CREAT of a read-only file: the creator writes to it all the same.
  EXPECT_EQ(AsUser(kBob, kBob, [&] {
              int fd = ::open(P("pub/ro").c_str(), O_CREAT | O_WRONLY | O_EXCL, 0444);
              if (fd < 0) return 1;
              if (::write(fd, "ro", 2) != 2) return 2;
              return ::close(fd) == 0 ? 0 : 3;
            }), 0);
  EXPECT_EQ(ReadFile(P("pub/ro")), "ro");
}

// An open directory keeps its access too: `ls` does not stop half-way when the mode changes.
TEST_F(PermsE2eTest, ListingGoesOnAfterChmod) {
  const std::string d = P("pub/d");
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] {
              if (::mkdir(d.c_str(), 0755) != 0) return 1;
              for (int i = 0; i < 400; ++i) {
                int fd = ::open((d + "/entry" + std::to_string(i)).c_str(), O_CREAT | O_WRONLY,
                                0644);
                if (fd < 0) return 2;
                ::close(fd);
              }
              DIR* dir = ::opendir(d.c_str());
              if (dir == nullptr) return 3;
              int n = ::readdir(dir) != nullptr ? 1 : 0;
              if (::chmod(d.c_str(), 0) != 0) return 4;
              errno = 0;
              while (::readdir(dir) != nullptr) ++n;
              const int err = errno;
              ::closedir(dir);
              if (err != 0) return 5;
              if (n != 402) return 6;
              // A new listing is checked against the new mode.
              return ::opendir(d.c_str()) == nullptr && errno == EACCES ? 0 : 7;
            }), 0);
}

TEST_F(PermsE2eTest, StickyDirectory) {
  ASSERT_EQ(::mkdir(P("tmp").c_str(), 0777), 0);
  ASSERT_EQ(::chmod(P("tmp").c_str(), 01777), 0);
  for (uid_t u : {kAlice, kBob}) {
    ASSERT_EQ(AsUser(u, u, [&] {
                return WriteFile(P("tmp/of" + std::to_string(u)), "x") ? 0 : 1;
              }), 0);
  }
  const std::string alices = P("tmp/of" + std::to_string(kAlice));
  const std::string bobs = P("tmp/of" + std::to_string(kBob));
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::unlink(alices.c_str())); }), EPERM);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::rename(bobs.c_str(), alices.c_str())); }),
            EPERM);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::rename(alices.c_str(), bobs.c_str())); }),
            EPERM);
  EXPECT_EQ(ReadFile(alices), "x");
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::rename(bobs.c_str(), (bobs + "b").c_str())); }),
            0);
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] { return Errno(::unlink(alices.c_str())); }), 0);
  // The directory's owner removes anyone's entry.
  ASSERT_EQ(::chown(P("tmp").c_str(), kAlice, kAlice), 0);
  EXPECT_EQ(AsUser(kAlice, kAlice, [&] { return Errno(::unlink((bobs + "b").c_str())); }), 0);
}

// Another mount revokes a permission this mount's kernel does not know about yet (long
// attribute and entry caches): the kernel lets the open through, the server refuses it.
TEST_F(PermsE2eTest, ServerRefusesWhatAStaleKernelCacheWouldAllow) {
  FuseMount* stale = MountVolume("vol", "stale", "attr_timeout=60,entry_timeout=60");
  ASSERT_NE(stale, nullptr);
  const std::string here = P("pub/shared");
  const std::string there = stale->path() + "/pub/shared";
  ASSERT_TRUE(WriteFile(here, "v1"));
  ASSERT_EQ(::chown(here.c_str(), kAlice, kAlice), 0);
  ASSERT_EQ(::chmod(here.c_str(), 0666), 0);
  struct stat st;
  ASSERT_EQ(::stat(there.c_str(), &st), 0);  // the stale mount caches mode 0666
  ASSERT_EQ(st.st_mode & 0777, 0666u);
  ASSERT_EQ(::chmod(here.c_str(), 0600), 0);
  EXPECT_EQ(AsUser(kBob, kBob, [&] {
              int fd = ::open(there.c_str(), O_WRONLY);
              return fd < 0 ? errno : (::close(fd), 0);
            }), EACCES);
  EXPECT_EQ(AsUser(kBob, kBob, [&] {
              int fd = ::open(there.c_str(), O_RDONLY);
              return fd < 0 ? errno : (::close(fd), 0);
            }), EACCES);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::chmod(there.c_str(), 0666)); }), EPERM);
  EXPECT_EQ(AsUser(kBob, kBob, [&] { return Errno(::truncate(there.c_str(), 0)); }), EACCES);
  EXPECT_EQ(ReadFile(here), "v1");
  ASSERT_EQ(::stat(here.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace nighfs::testing
