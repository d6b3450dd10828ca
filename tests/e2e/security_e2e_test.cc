// Issue 11 on real mounts: a read-only token mounts read-only (EROFS), a subtree token mounts
// its subtree as the root and cannot reach a sibling by "..", an absolute symlink, a hard link
// or a rename; a token file others may read is refused; no secret reaches any log at debug
// level. The raw-RPC side of the same rules is in tests/meta/meta_server_test.cc (MetaAuthTest).
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/fs_checks.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class SecurityE2eTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_NO_FATAL_FAILURE(StartMeta({"--log-level", "debug"}));
    ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl()));
    // The whole volume, as the admin lays it out: /a (the subtree) and its sibling /b.
    full_ = MountVolume("vol", "full", "log_level=debug,attr_timeout=0,entry_timeout=0");
    ASSERT_NE(full_, nullptr);
    ASSERT_EQ(::mkdir((full_->path() + "/a").c_str(), 0777), 0);
    ASSERT_EQ(::mkdir((full_->path() + "/b").c_str(), 0777), 0);
    ASSERT_TRUE(WriteFile(full_->path() + "/a/mine", "mine"));
    ASSERT_TRUE(WriteFile(full_->path() + "/b/secret", "secret"));
  }

  // A token file for `access` and `path`, remembered for the log check.
  std::string TokenFile(const std::string& name, const std::string& access,
                        const std::string& path) {
    const std::string file = root_ + "/" + name + ".token";
    EXPECT_OK(CreateTokenFile(meta_->address(), "vol", access, path, file));
    secrets_.push_back(std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(file))));
    return file;
  }

  FuseMount* full_ = nullptr;
  std::vector<std::string> secrets_;
};

TEST_F(SecurityE2eTest, ReadTokenMountsReadOnly) {
  FuseMount* ro = MountVolume("vol", "ro",
                              "log_level=debug,token_file=" + TokenFile("ro", "read", ""));
  ASSERT_NE(ro, nullptr);
  EXPECT_EQ(ReadFile(ro->path() + "/a/mine"), "mine");
  FILE* f = std::fopen((ro->path() + "/new").c_str(), "w");
  EXPECT_EQ(f, nullptr);
  EXPECT_EQ(errno, EROFS);
  if (f != nullptr) std::fclose(f);
  EXPECT_EQ(::mkdir((ro->path() + "/d").c_str(), 0755), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::unlink((ro->path() + "/a/mine").c_str()), -1);
  EXPECT_EQ(errno, EROFS);
  EXPECT_EQ(::chmod((ro->path() + "/a/mine").c_str(), 0777), -1);
  EXPECT_EQ(errno, EROFS);
  // Nothing changed, as the full mount sees it.
  EXPECT_FALSE(stdfs::exists(full_->path() + "/new"));
  EXPECT_EQ(ReadFile(full_->path() + "/a/mine"), "mine");
  // nighfs status shows the token's access.
  std::string out;
  EXPECT_EQ(RunShell(absl::StrCat("NIGHFS_RUN_DIR=", ro->path(), ".run ", BuildRoot(),
                                  "/tools/nighfs status ", ro->path()),
                     &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("token:             read access, subtree /"));
}

TEST_F(SecurityE2eTest, SubtreeTokenCannotReachItsSibling) {
  FuseMount* sub = MountVolume(
      "vol", "sub",
      "log_level=debug,attr_timeout=0,entry_timeout=0,token_file=" + TokenFile("sub", "write", "/a"));
  ASSERT_NE(sub, nullptr);
  const std::string mp = sub->path();
  // The subtree is the root, with the same inode number (1) in every answer.
  EXPECT_EQ(ReadFile(mp + "/mine"), "mine");
  struct stat st;
  ASSERT_EQ(::stat(mp.c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, 1u);
  EXPECT_FALSE(stdfs::exists(mp + "/a"));
  EXPECT_FALSE(stdfs::exists(mp + "/b"));
  // "..": the kernel stops at the mount's root; the parent is the host's folder, not /b.
  EXPECT_FALSE(stdfs::exists(mp + "/../b/secret"));
  // An absolute symlink resolves on this host, not in the volume.
  ASSERT_EQ(::symlink("/b/secret", (mp + "/abs").c_str()), 0);
  EXPECT_EQ(ReadFile(mp + "/abs"), "");
  EXPECT_FALSE(stdfs::exists(mp + "/abs"));
  ASSERT_EQ(::symlink("../b/secret", (mp + "/rel").c_str()), 0);
  EXPECT_FALSE(stdfs::exists(mp + "/rel"));
  // Writes inside work, and the full mount sees them under /a.
  ASSERT_TRUE(WriteFile(mp + "/new", "new"));
  ASSERT_EQ(::mkdir((mp + "/d").c_str(), 0755), 0);
  ASSERT_EQ(::rename((mp + "/new").c_str(), (mp + "/d/new").c_str()), 0);
  ASSERT_EQ(::link((mp + "/d/new").c_str(), (mp + "/hard").c_str()), 0);
  EXPECT_EQ(ReadFile(full_->path() + "/a/d/new"), "new");
  EXPECT_EQ(ReadFile(full_->path() + "/a/hard"), "new");
  // The mount's root cannot be removed or renamed through the mount (it is the mount point).
  EXPECT_NE(::rmdir(mp.c_str()), 0);
  // The sibling is untouched.
  EXPECT_EQ(ReadFile(full_->path() + "/b/secret"), "secret");
  std::string out;
  EXPECT_EQ(RunShell(absl::StrCat("NIGHFS_RUN_DIR=", mp, ".run ", BuildRoot(),
                                  "/tools/nighfs status ", mp),
                     &out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("token:             write access, subtree /a"));
}

TEST_F(SecurityE2eTest, TokenFileReadableByOthersIsRefused) {
  const std::string file = TokenFile("loose", "write", "");
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  const std::string mp = root_ + "/loose";
  stdfs::create_directories(mp);
  std::string out;
  EXPECT_NE(RunShell(absl::StrCat("timeout 30 ", BuildRoot(), "/mount/mount.nighfs vol@",
                                  meta_->address(), " ", mp, " -f -o token_file=", file),
                     &out),
            0);
  EXPECT_THAT(out, HasSubstr("chmod 600"));
  EXPECT_FALSE(IsMounted(mp));
  // No token at all: refused before any call, saying how to make one.
  EXPECT_NE(RunShell(absl::StrCat("timeout 30 ", BuildRoot(), "/mount/mount.nighfs vol@",
                                  meta_->address(), " ", mp, " -f"),
                     &out),
            0);
  EXPECT_THAT(out, HasSubstr("token_file"));
  EXPECT_FALSE(IsMounted(mp));
}

// Issue 11: no secret in any log (the server and every mount at debug level), after mounts
// used their tokens and sessions for real work and ended.
TEST_F(SecurityE2eTest, NoSecretInAnyLog) {
  FuseMount* sub = MountVolume("vol", "sub2",
                               "log_level=debug,token_file=" + TokenFile("s2", "write", "/a"));
  ASSERT_NE(sub, nullptr);
  ASSERT_TRUE(WriteFile(sub->path() + "/x", std::string(100000, 'x')));
  ASSERT_EQ(::unlink((sub->path() + "/x").c_str()), 0);
  UnmountAll();
  const std::string admin(absl::StripAsciiWhitespace(ReadFileOrEmpty(meta_->admin_token_file())));
  ASSERT_FALSE(admin.empty());
  secrets_.push_back(admin);
  // Every token file the harness made too (the full mount's).
  for (const auto& e : stdfs::directory_iterator(root_)) {
    if (e.path().extension() == ".token") {
      secrets_.push_back(std::string(absl::StripAsciiWhitespace(ReadFileOrEmpty(e.path()))));
    }
  }
  std::vector<std::string> logs = {meta_->log()};
  for (const auto& e : stdfs::directory_iterator(root_)) {
    if (e.path().extension() == ".log") logs.push_back(ReadFileOrEmpty(e.path()));
  }
  ASSERT_GE(logs.size(), 3u);
  EXPECT_THAT(logs[0], HasSubstr("with token")) << "the server logs at debug level";
  for (const std::string& log : logs) {
    for (const std::string& secret : secrets_) {
      ASSERT_FALSE(secret.empty());
      EXPECT_THAT(log, Not(HasSubstr(secret)));
      // Nor the hex part alone.
      EXPECT_THAT(log, Not(HasSubstr(secret.substr(secret.rfind('-') + 1))));
    }
    // Session keys travel as 32 hex digits; none appears (the server logs session ids only).
    EXPECT_THAT(log, Not(::testing::ContainsRegex("[0-9a-f]{32}")));
  }
}

}  // namespace
}  // namespace nighfs::testing
