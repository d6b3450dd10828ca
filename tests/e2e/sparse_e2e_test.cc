// Sparse files on a real mount: st_blocks and du count what is stored, lseek SEEK_DATA and
// SEEK_HOLE walk the block map, sparse-aware tools (cp --sparse, tar -S) see the holes, and
// fallocate (fallocate(1) and the syscall) does what it does on a local file, byte for byte.
//
// StoredBlocks*, Fallocate* and RandomSparseOpsMatchLocalFile need the metadata server's
// Attr.stored_bytes and CommitBlocksRequest.drop_indexes (branch `meta`).
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/scoped_fd.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/fs_checks.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;
constexpr int64_t kMiB = 1 << 20;
constexpr uint32_t kBlock = 1 << 20;  // the volume's block size

// A file opened for a test, closed at scope exit.
ScopedFd OpenFd(const std::string& path, int flags) {
  return ScopedFd(::open(path.c_str(), flags, 0644));
}

// lseek's result, or -errno.
int64_t Seek(int fd, int64_t off, int whence) {
  const off_t r = ::lseek(fd, off, whence);
  return r < 0 ? -errno : r;
}

// fallocate's errno, 0 on success.
int Falloc(int fd, int mode, int64_t off, int64_t len) {
  return ::fallocate(fd, mode, off, len) == 0 ? 0 : errno;
}

using Extents = std::vector<std::pair<int64_t, int64_t>>;

// The (data, hole) pairs lseek reports from offset 0.
Extents Walk(int fd) {
  Extents out;
  for (int64_t pos = 0;;) {
    const int64_t d = Seek(fd, pos, SEEK_DATA);
    if (d < 0) {
      EXPECT_EQ(d, -ENXIO);
      break;
    }
    const int64_t h = Seek(fd, d, SEEK_HOLE);
    EXPECT_GT(h, d);
    if (h <= d) break;
    out.emplace_back(d, h);
    pos = h;
  }
  return out;
}

// Every hole lseek reports in `fd` reads as zeros in `bytes` (the file's true content).
void ExpectHolesAreZero(int fd, const std::string& bytes) {
  for (int64_t pos = 0; pos < static_cast<int64_t>(bytes.size());) {
    const int64_t h = Seek(fd, pos, SEEK_HOLE);
    ASSERT_GE(h, pos);
    if (h >= static_cast<int64_t>(bytes.size())) break;
    int64_t d = Seek(fd, h, SEEK_DATA);
    if (d == -ENXIO) d = static_cast<int64_t>(bytes.size());
    ASSERT_GT(d, h);
    const size_t nz = bytes.find_first_not_of('\0', h);
    ASSERT_TRUE(nz == std::string::npos || static_cast<int64_t>(nz) >= d)
        << "hole [" << h << ", " << d << ") holds data at " << nz;
    pos = d;
  }
}

blkcnt_t Blocks(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_blocks;
}

int64_t Size(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_size;
}

// What `du -B1` says of a file, -1 if it fails.
int64_t DuBytes(const std::string& path) {
  std::string out;
  if (RunShell("du -B1 '" + path + "'", &out) != 0) return -1;
  return std::stoll(out);
}

class SparseE2eTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    stdfs::create_directories(root_ + "/local");
    ASSERT_NO_FATAL_FAILURE(StartMeta({"--gc-grace", "1"}));
    ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl(), kBlock));
    Mount();
  }

  void Mount() {
    mnt_ = MountVolume("vol", "mnt", "attr_timeout=1,entry_timeout=1");
    ASSERT_NE(mnt_, nullptr);
  }

  // Unmounts (flushing everything) and mounts again: nothing comes from the old mount.
  void Remount() {
    auto st = mnt_->Unmount();
    ASSERT_OK(st);
    EXPECT_EQ(*st, 0) << mnt_->log();
    mounts_.clear();
    Mount();
  }

  std::string P(const std::string& rel) const { return mnt_->path() + "/" + rel; }
  std::string L(const std::string& rel) const { return root_ + "/local/" + rel; }

  FuseMount* mnt_ = nullptr;
};

TEST_F(SparseE2eTest, TerabyteTruncateStoresNothingAndCopiesSparse) {
  std::string out;
  ASSERT_EQ(RunShell("truncate -s 1T " + P("big"), &out), 0) << out;
  EXPECT_EQ(Size(P("big")), 1ll << 40);
  EXPECT_EQ(Blocks(P("big")), 0);
  EXPECT_EQ(DuBytes(P("big")), 0);
  {
    ScopedFd fd = OpenFd(P("big"), O_RDONLY);
    ASSERT_GE(fd.get(), 0);
    EXPECT_EQ(Seek(fd.get(), 0, SEEK_DATA), -ENXIO);
    EXPECT_EQ(Seek(fd.get(), 0, SEEK_HOLE), 0);
    EXPECT_EQ(Seek(fd.get(), (1ll << 40) - 1, SEEK_HOLE), (1ll << 40) - 1);
    EXPECT_EQ(Seek(fd.get(), 1ll << 40, SEEK_HOLE), -ENXIO);
    EXPECT_EQ(Seek(fd.get(), 1ll << 40, SEEK_DATA), -ENXIO);
    EXPECT_EQ(Seek(fd.get(), 0, SEEK_END), 1ll << 40);  // the kernel's own whence still works
  }
  // Reading a terabyte would take hours: only hole detection lets these finish.
  ASSERT_EQ(RunShell("timeout 60 cp --sparse=always " + P("big") + " " + L("big"), &out), 0)
      << out;
  EXPECT_EQ(Size(L("big")), 1ll << 40);
  EXPECT_EQ(Blocks(L("big")), 0);
  ASSERT_EQ(RunShell("timeout 60 tar -S -cf " + L("big.tar") + " -C " + mnt_->path() + " big",
                     &out),
            0)
      << out;
  EXPECT_LT(Size(L("big.tar")), 1 << 20);
}

// Data at 0 and at 10 MiB, a hole between: lseek walks it exactly while the file is open
// (buffered), after close, after a copy and after a remount.
TEST_F(SparseE2eTest, StoredBlocksAndSeekWalkTwoExtents) {
  const std::string a = RandomBytes(kMiB, 1), b = RandomBytes(kMiB, 2);
  const Extents want = {{0, kMiB}, {10 * kMiB, 11 * kMiB}};
  {
    ScopedFd fd = OpenFd(P("two"), O_RDWR | O_CREAT | O_TRUNC);
    ASSERT_GE(fd.get(), 0);
    ASSERT_EQ(::pwrite(fd.get(), a.data(), a.size(), 0), static_cast<ssize_t>(a.size()));
    ASSERT_EQ(::pwrite(fd.get(), b.data(), b.size(), 10 * kMiB), static_cast<ssize_t>(b.size()));
    EXPECT_EQ(Walk(fd.get()), want);
    EXPECT_EQ(Blocks(P("two")), static_cast<blkcnt_t>(2 * kMiB / 512));  // buffered counts
    ASSERT_EQ(fd.Close(), 0);
  }
  EXPECT_EQ(Blocks(P("two")), static_cast<blkcnt_t>(2 * kMiB / 512));
  EXPECT_EQ(DuBytes(P("two")), static_cast<int64_t>(2 * kMiB));
  std::string model(11 * kMiB, '\0');
  model.replace(0, a.size(), a);
  model.replace(10 * kMiB, b.size(), b);
  std::string out;
  ASSERT_EQ(RunShell("cp --sparse=always " + P("two") + " " + P("copy"), &out), 0) << out;
  ASSERT_EQ(RunShell("cp --sparse=always " + P("two") + " " + L("copy"), &out), 0) << out;
  EXPECT_TRUE(ReadFile(P("copy")) == model);
  EXPECT_TRUE(ReadFile(L("copy")) == model);
  EXPECT_EQ(Blocks(P("copy")), static_cast<blkcnt_t>(2 * kMiB / 512));
  EXPECT_LT(Blocks(L("copy")), static_cast<blkcnt_t>(4 * kMiB / 512));  // local: sparse too
  // A file of exactly one block's worth of odd length: its stored bytes, rounded up to 512.
  ASSERT_TRUE(WriteFile(P("odd"), RandomBytes(3 * kMiB + 1000, 3)));
  EXPECT_EQ(Blocks(P("odd")), static_cast<blkcnt_t>((3 * kMiB + 1000 + 511) / 512));
  Remount();
  for (const char* name : {"two", "copy"}) {
    SCOPED_TRACE(name);
    ScopedFd fd = OpenFd(P(name), O_RDONLY);
    ASSERT_GE(fd.get(), 0);
    EXPECT_EQ(Walk(fd.get()), want);
    EXPECT_EQ(Seek(fd.get(), kMiB - 1, SEEK_DATA), kMiB - 1);
    EXPECT_EQ(Seek(fd.get(), kMiB - 1, SEEK_HOLE), kMiB);
    EXPECT_EQ(Seek(fd.get(), 5 * kMiB, SEEK_HOLE), 5 * kMiB);
    EXPECT_EQ(Seek(fd.get(), 11 * kMiB, SEEK_DATA), -ENXIO);
    EXPECT_TRUE(ReadFile(P(name)) == model);
    EXPECT_EQ(Blocks(P(name)), static_cast<blkcnt_t>(2 * kMiB / 512));
  }
}

// The same fallocate calls on a nighfs file and on a local file give the same bytes, sizes
// and errors; on nighfs a punched block stops being stored.
TEST_F(SparseE2eTest, FallocateMatchesLocalFile) {
  const std::string data = RandomBytes(3 * kMiB + 100, 4);
  const std::vector<std::string> paths = {P("fa"), L("fa")};
  for (const std::string& p : paths) ASSERT_TRUE(WriteFile(p, data));
  auto expect_same = [&](const std::string& step) {
    SCOPED_TRACE(step);
    EXPECT_EQ(Size(paths[0]), Size(paths[1]));
    EXPECT_TRUE(ReadFile(paths[0]) == ReadFile(paths[1]));
  };
  std::string out;
  for (const std::string& p : paths) {
    ASSERT_EQ(RunShell("fallocate -l 5M " + p, &out), 0) << out;  // mode 0: grows
  }
  expect_same("fallocate -l 5M");
  EXPECT_EQ(Size(paths[0]), 5 * kMiB);
  EXPECT_EQ(Blocks(paths[0]), static_cast<blkcnt_t>((3 * kMiB + 100 + 511) / 512));
  for (const std::string& p : paths) {
    ASSERT_EQ(RunShell("fallocate --keep-size -o 6M -l 1M " + p, &out), 0) << out;
  }
  expect_same("fallocate --keep-size");
  for (const std::string& p : paths) {
    ASSERT_EQ(RunShell("fallocate -p -o 512K -l 1536K " + p, &out), 0) << out;
  }
  expect_same("fallocate -p");
  // Block 1 [1M, 2M) is gone; block 0 keeps its zeroed second half; blocks 2 and 3 remain.
  EXPECT_EQ(Blocks(paths[0]), static_cast<blkcnt_t>((2 * kMiB + 100 + 511) / 512));
  {
    ScopedFd fd = OpenFd(paths[0], O_RDONLY);
    ASSERT_GE(fd.get(), 0);
    EXPECT_EQ(Walk(fd.get()), (Extents{{0, kMiB}, {2 * kMiB, 3 * kMiB + 100}}));
  }
  // The syscall: a punch inside one block, a grow, a punch past the end, errors.
  for (const std::string& p : paths) {
    ScopedFd fd = OpenFd(p, O_RDWR);
    ASSERT_GE(fd.get(), 0);
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * kMiB + 3, 100), 0);
    EXPECT_EQ(Falloc(fd.get(), 0, 7 * kMiB, kMiB), 0);
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * kMiB, 20 * kMiB),
              0);
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_PUNCH_HOLE, 0, 10), EOPNOTSUPP) << p;
    EXPECT_EQ(Falloc(fd.get(), 0, 0, 0), EINVAL) << p;
    EXPECT_EQ(Falloc(fd.get(), 0, -1, 10), EINVAL) << p;
    ASSERT_EQ(fd.Close(), 0);
    ScopedFd ro = OpenFd(p, O_RDONLY);
    EXPECT_EQ(Falloc(ro.get(), 0, 0, 10), EBADF) << p;
  }
  expect_same("syscalls");
  EXPECT_EQ(Size(paths[0]), 8 * kMiB);
  {
    ScopedFd fd = OpenFd(paths[0], O_RDWR);
    // Not offered by nighfs (a local ext4 file may support them).
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_ZERO_RANGE, 0, 10), EOPNOTSUPP);
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_COLLAPSE_RANGE, 0, kMiB), EOPNOTSUPP);
    EXPECT_EQ(Falloc(fd.get(), FALLOC_FL_INSERT_RANGE, 0, kMiB), EOPNOTSUPP);
  }
  // Stored now: blocks 0 and 2 (the 100 bytes zeroed inside block 2 are still stored);
  // block 3 (100 bytes) lay wholly in the punch past 3 MiB and is gone; the growth stores
  // nothing.
  EXPECT_EQ(Blocks(paths[0]), static_cast<blkcnt_t>(2 * kMiB / 512));
  // fallocate by a caller without CAP_FSETID clears setuid, as a write does.
  for (const std::string& p : paths) {
    ASSERT_EQ(::chmod(p.c_str(), 04755), 0);
    ASSERT_EQ(RunShell("setpriv --bounding-set=-fsetid --inh-caps=-fsetid fallocate -l 9M " + p,
                       &out),
              0)
        << out;
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0755u) << p;
  }
  expect_same("setuid");
  Remount();
  expect_same("after remount");
  EXPECT_EQ(Blocks(paths[0]), static_cast<blkcnt_t>(2 * kMiB / 512));
}

// A bounded random sequence of writes, punches, truncations and fallocates applied to a
// nighfs file and a local file, read back and compared as it goes; every hole lseek reports
// reads zero. Then a remount and the same checks.
TEST_F(SparseE2eTest, RandomSparseOpsMatchLocalFile) {
  const std::string path = P("model"), local = L("model");
  ScopedFd fd = OpenFd(path, O_RDWR | O_CREAT | O_TRUNC);
  ScopedFd lfd = OpenFd(local, O_RDWR | O_CREAT | O_TRUNC);
  ASSERT_GE(fd.get(), 0);
  ASSERT_GE(lfd.get(), 0);
  std::mt19937 rng(17);
  const int64_t span = 8 * kMiB;
  auto both = [&](auto&& fn) {
    const int a = fn(fd.get()), b = fn(lfd.get());
    ASSERT_EQ(a, b);
  };
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i));
    const int op = rng() % 10;
    if (op < 4) {
      const int64_t off = rng() % span;
      const std::string data = RandomBytes(1 + rng() % (i % 7 == 0 ? 2 * kMiB : 100000), i);
      both([&](int f) { return static_cast<int>(::pwrite(f, data.data(), data.size(), off)); });
    } else if (op < 6) {
      const int64_t off = rng() % span, len = 1 + rng() % (4 * kMiB);
      both([&](int f) { return Falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len); });
    } else if (op < 7) {
      const int64_t size = rng() % span;
      both([&](int f) { return ::ftruncate(f, size); });
    } else if (op < 8) {
      const int64_t off = rng() % span, len = 1 + rng() % (2 * kMiB);
      const int mode = rng() % 2 ? 0 : FALLOC_FL_KEEP_SIZE;
      both([&](int f) { return Falloc(f, mode, off, len); });
    } else {
      // A window read through the mount; the whole file every 50 steps. The holes lseek
      // reports are checked against the local copy (reading it costs no FUSE traffic).
      const int64_t off = rng() % span;
      const size_t n = 1 + rng() % (2 * kMiB);
      std::string got(n, '\0'), want(n, '\0');
      const ssize_t g = ::pread(fd.get(), got.data(), n, off);
      const ssize_t w = ::pread(lfd.get(), want.data(), n, off);
      ASSERT_EQ(g, w);
      ASSERT_TRUE(got.substr(0, std::max<ssize_t>(g, 0)) == want.substr(0, std::max<ssize_t>(w, 0)));
      const std::string bytes = ReadFile(local);
      if (i % 50 == 0) {
        ASSERT_TRUE(ReadFile(path) == bytes);
      }
      ExpectHolesAreZero(fd.get(), bytes);
    }
  }
  ASSERT_EQ(fd.Close(), 0);
  const std::string bytes = ReadFile(local);
  Remount();
  EXPECT_EQ(Size(path), static_cast<int64_t>(bytes.size()));
  EXPECT_TRUE(ReadFile(path) == bytes);
  ScopedFd again = OpenFd(path, O_RDONLY);
  ASSERT_GE(again.get(), 0);
  ExpectHolesAreZero(again.get(), bytes);
}

}  // namespace
}  // namespace nighfs::testing
