#include "tests/e2e/fs_checks.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "tests/testing/process.h"

namespace nighfs::testing {
namespace {
std::string At(const std::string& dir, const std::string& rel) { return dir + "/" + rel; }
}  // namespace

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

bool WriteFile(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, std::min<size_t>(data.size() - off, 1 << 20));
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return ::close(fd) == 0;
}

std::string ReadFile(const std::string& path) { return ReadFileOrEmpty(path); }

void CheckRenameLinksSymlinks(const std::string& dir) {
  ASSERT_TRUE(WriteFile(At(dir, "a"), "AAA"));
  ASSERT_TRUE(WriteFile(At(dir, "b"), "BBB"));
  ASSERT_EQ(::rename(At(dir, "a").c_str(), At(dir, "b").c_str()), 0);
  EXPECT_EQ(ReadFile(At(dir, "b")), "AAA");
  EXPECT_NE(::access(At(dir, "a").c_str(), F_OK), 0);

  ASSERT_EQ(::link(At(dir, "b").c_str(), At(dir, "c").c_str()), 0);
  struct stat st;
  ASSERT_EQ(::stat(At(dir, "b").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 2u);
  struct stat st2;
  ASSERT_EQ(::stat(At(dir, "c").c_str(), &st2), 0);
  EXPECT_EQ(st.st_ino, st2.st_ino);
  ASSERT_EQ(::unlink(At(dir, "c").c_str()), 0);
  ASSERT_EQ(::stat(At(dir, "b").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);

  ASSERT_EQ(::symlink("b", At(dir, "s").c_str()), 0);
  char buf[64] = {0};
  ASSERT_EQ(::readlink(At(dir, "s").c_str(), buf, sizeof buf), 1);
  EXPECT_STREQ(buf, "b");
  EXPECT_EQ(ReadFile(At(dir, "s")), "AAA");
  ASSERT_EQ(::lstat(At(dir, "s").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

int AsUser(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 ||
        ::setresuid(uid, uid, uid) != 0) {
      ::_exit(99);
    }
    ::_exit(fn());
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

int Errno(int rc) { return rc == 0 ? 0 : errno; }

}  // namespace nighfs::testing
