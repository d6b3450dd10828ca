// The metadata server dies under a live mount: killed with SIGKILL at random points, and made to
// exit right after committing a mutation but before replying (the test-only
// NIGHFS_TEST_CRASH_AFTER_COMMIT of nighfs-meta). Each retried mutation must get the answer of
// its first execution: no EEXIST for the mount's own O_EXCL create, no ENOENT for its own
// unlink, rename or rmdir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;

class MetaFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CanMountFuse()) {
      if (InCi()) FAIL() << "CI must be able to mount FUSE (root and /dev/fuse)";
      GTEST_SKIP() << "needs root and /dev/fuse";
    }
    root_ = tmp_.path();
    stdfs::create_directories(root_ + "/meta");
    stdfs::create_directories(root_ + "/blocks");
  }

  void TearDown() override {
    mount_.reset();
    meta_.reset();
  }

  void StartCluster(std::vector<std::string> meta_args, const std::string& mount_options) {
    auto m = MetaServer::Start(root_ + "/meta", std::move(meta_args));
    ASSERT_OK(m);
    meta_ = std::move(*m);
    ASSERT_OK(CreateVolume(meta_->address(), "vol", "file://" + root_ + "/blocks"));
    const std::string mp = root_ + "/mnt";
    stdfs::create_directories(mp);
    auto f = FuseMount::Start("vol@" + meta_->address(), mp, mount_options);
    ASSERT_OK(f);
    mount_ = std::move(*f);
  }

  // One lock-file style round in its own directory; every step must succeed. Returns the
  // steps that failed, with their errno.
  std::vector<std::string> Round(int n) {
    const std::string d = absl::StrCat(mount_->path(), "/r", n);
    std::vector<std::string> wrong;
    auto check = [&](const char* what, int rc) {
      if (rc != 0) wrong.push_back(absl::StrCat(what, " in round ", n, ": ", std::strerror(errno)));
    };
    check("mkdir", ::mkdir(d.c_str(), 0755));
    int fd = ::open((d + "/lock").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
    check("open(O_CREAT|O_EXCL)", fd < 0 ? -1 : 0);
    if (fd >= 0) ::close(fd);
    check("link", ::link((d + "/lock").c_str(), (d + "/lock2").c_str()));
    check("rename", ::rename((d + "/lock2").c_str(), (d + "/lock3").c_str()));
    check("unlink", ::unlink((d + "/lock3").c_str()));
    check("mkdir sub", ::mkdir((d + "/sub").c_str(), 0755));
    check("rmdir sub", ::rmdir((d + "/sub").c_str()));
    check("unlink lock", ::unlink((d + "/lock").c_str()));
    check("rmdir", ::rmdir(d.c_str()));
    return wrong;
  }

  // `cycles` kill/restart cycles of nighfs-meta during Round()s: even cycles exit right after
  // the k-th committed mutation (k random in 1..9), odd ones SIGKILL after a random delay.
  // Returns every wrong answer seen. The server is restarted from this thread (children die
  // with the thread that started them); the rounds run on another.
  std::vector<std::string> KillCycles(int cycles, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<std::string> wrong;
    for (int c = 0; c < cycles; ++c) {
      const bool crash_point = c % 2 == 0;
      if (crash_point) {
        meta_->SetEnv({{"NIGHFS_TEST_CRASH_AFTER_COMMIT",
                        std::to_string(std::uniform_int_distribution<int>(1, 9)(rng))}});
        EXPECT_OK(meta_->Restart());
        meta_->SetEnv({});
      }
      std::atomic<bool> done{false};
      std::vector<std::string> round_wrong;
      std::thread worker([&] {
        round_wrong = Round(c);
        done = true;
      });
      if (crash_point) {
        // Dies at its crash point (or the round needed fewer mutations than k).
        WaitFor([&] { return done.load() || !meta_->Running(); }, absl::Seconds(20));
      } else {
        absl::SleepFor(absl::Microseconds(std::uniform_int_distribution<int>(0, 20000)(rng)));
        EXPECT_OK(meta_->Kill());
      }
      EXPECT_OK(meta_->Restart());
      worker.join();
      wrong.insert(wrong.end(), round_wrong.begin(), round_wrong.end());
    }
    return wrong;
  }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<MetaServer> meta_;
  std::unique_ptr<FuseMount> mount_;
};

// meta_timeout spans a restart; no attribute or entry caching, so every step asks the server.
constexpr char kMountOptions[] = "meta_timeout=30,attr_timeout=0,entry_timeout=0";

TEST_F(MetaFaultTest, RetriedMutationsAreExactlyOnceAcrossMetaCrashes) {
  StartCluster({}, kMountOptions);
  ASSERT_NE(mount_, nullptr);
  std::vector<std::string> wrong = KillCycles(30, 20261129);
  EXPECT_TRUE(wrong.empty()) << wrong.size() << " wrong answer(s) in 30 cycles:\n"
                             << absl::StrJoin(wrong, "\n");
  ASSERT_TRUE(IsMounted(mount_->path())) << mount_->log();
  // Nothing is left over, nothing is missing.
  EXPECT_TRUE(stdfs::is_empty(mount_->path()));
  if (HasFailure()) ADD_FAILURE() << mount_->log() << meta_->log();
}

// The control: with the reply record turned off, the same 30 cycles (same seed) give the mount
// wrong answers, so the test above can fail; the count is printed for comparison.
TEST_F(MetaFaultTest, WithoutRecordedRepliesRetriesAnswerWrongly) {
  StartCluster({"--request-reply-ttl", "0"}, kMountOptions);
  ASSERT_NE(mount_, nullptr);
  std::vector<std::string> wrong = KillCycles(30, 20261129);
  std::cerr << wrong.size() << " wrong answer(s) in 30 cycles without deduplication:\n"
            << absl::StrJoin(wrong, "\n") << "\n";
  EXPECT_FALSE(wrong.empty());
}

}  // namespace
}  // namespace nighfs::testing
