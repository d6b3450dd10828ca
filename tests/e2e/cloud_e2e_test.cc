// End-to-end tests on cloud block stores: a real nighfs-meta and real FUSE mounts of
// mount.nighfs whose blocks live in s3rver (S3) or Azurite (Azure Blob), with the secrets in a
// credentials file. Every case runs once per emulator, each on a fresh emulator and volume.
//
// Needs root, /dev/fuse and the emulators of scripts/setup.sh. Outside CI a case skips when one
// is missing; in CI (CI=true) it fails instead.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/cluster.h"
#include "tests/e2e/fs_checks.h"
#include "tests/testing/emulators.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {
namespace {

namespace stdfs = std::filesystem;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kBlock = 1u << 20;
// Bucket (S3) or container (Azure) of the volume; the volume lives below the prefix "vol".
constexpr char kBucket[] = "nighfs-e2e";
// s3rver accepts any secret with its one access key id (it does not verify Signature V4), so
// the S3 secret is a value that cannot appear in a log or status file by coincidence: finding
// it there means it leaked.
constexpr char kS3Secret[] = "nighfsE2eSecret/Qv7+Zr2Wx9Kp4";
// Same length and alphabet as kAzuriteKey, different bytes: a well-formed key Azurite refuses.
constexpr char kWrongAzureKey[] =
    "AAAAvdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
constexpr char kWrongS3KeyId[] = "NIGHFSUNKNOWNKEYID";

enum class Emulator { kS3rver, kAzurite };

std::string EmulatorName(Emulator e) { return e == Emulator::kS3rver ? "s3rver" : "azurite"; }


// Writes a credentials file as an administrator would: mode 0600 from the start.
bool WritePrivateFile(const std::string& path, const std::string& content, mode_t mode = 0600) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  ok = ::fchmod(fd, mode) == 0 && ok;  // the umask must not loosen nor tighten the test's mode
  return ::close(fd) == 0 && ok;
}

// /proc/<pid>/cmdline with the NULs between arguments shown as spaces.
std::string CommandLine(pid_t pid) {
  return absl::StrReplaceAll(ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/cmdline")),
                             {{std::string(1, '\0'), " "}});
}

class CloudE2eTest : public ClusterTest, public ::testing::WithParamInterface<Emulator> {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::string binary = s3() ? S3rverBinary() : AzuriteBinary();
    if (binary.empty()) {
      const std::string why = EmulatorName(GetParam()) + " is not installed (scripts/setup.sh)";
      if (InCi()) FAIL() << why << "; CI=true: the emulator tests must run";
      GTEST_SKIP() << why;
    }
    stdfs::create_directories(root_ + "/emulator");
    ASSERT_NO_FATAL_FAILURE(StartEmulator());

    creds_path_ = root_ + "/credentials";
    ASSERT_TRUE(WritePrivateFile(creds_path_, GoodCredentialsText()));
    absl::StatusOr<blockstore::StoreCredentials> creds = blockstore::LoadCredentials(creds_path_);
    ASSERT_OK(creds);
    creds_ = *creds;

    ASSERT_NO_FATAL_FAILURE(StartMeta({"--credentials", creds_path_, "--gc-grace", "1"}));
    ASSERT_OK(CreateVolume(meta_->address(), "vol", store_url_, kBlock)) << meta_->log();
    mnt_ = Mount("mnt");
    ASSERT_NE(mnt_, nullptr);
  }

  void TearDown() override {
    ClusterTest::TearDown();  // mounts, then the metadata server, before the store goes
    s3rver_.reset();
    azurite_.reset();
  }

  bool s3() const { return GetParam() == Emulator::kS3rver; }

  void StartEmulator() {
    const std::string dir = root_ + "/emulator";
    if (s3()) {
      auto server = S3rver::Start(dir);
      ASSERT_OK(server);
      s3rver_ = std::move(*server);
      ASSERT_OK(s3rver_->CreateBucket(kBucket));
      store_url_ = absl::StrCat("s3://", kBucket, "/vol?endpoint=", s3rver_->url(),
                                "&region=", kS3rverRegion);
    } else {
      auto server = Azurite::Start(dir);
      ASSERT_OK(server);
      azurite_ = std::move(*server);
      ASSERT_OK(azurite_->CreateContainer(kBucket));
      store_url_ = absl::StrCat("azure://", kAzuriteAccount, "/", kBucket,
                                "/vol?endpoint=", azurite_->endpoint());
    }
  }

  std::string GoodCredentialsText() const {
    if (s3()) {
      return absl::StrCat("# s3rver\nAWS_ACCESS_KEY_ID=", kS3rverAccessKey,
                          "\nAWS_SECRET_ACCESS_KEY=", kS3Secret, "\n");
    }
    return absl::StrCat("# Azurite\nAZURE_STORAGE_KEY=", kAzuriteKey, "\n");
  }

  // The value that must never be shown anywhere.
  std::string Secret() const { return s3() ? kS3Secret : kAzuriteKey; }

  // Mounts "vol" at root_/dir with the credentials file (and `extra_options`); kept until the
  // test ends.
  FuseMount* Mount(const std::string& dir, const std::string& extra_options = "") {
    std::string options =
        absl::StrCat("credentials=", creds_path_, ",attr_timeout=1,entry_timeout=1");
    if (!extra_options.empty()) absl::StrAppend(&options, ",", extra_options);
    return MountVolume("vol", dir, options);
  }

  // The objects of the volume's store, listed through the block-store API as nighfs sees them;
  // -1 (and a test failure) if listing fails.
  int CountObjects() {
    absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> store =
        blockstore::OpenBlockStore(store_url_, creds_);
    if (!store.ok()) {
      ADD_FAILURE() << store.status();
      return -1;
    }
    int n = 0;
    std::string token;
    do {
      absl::StatusOr<blockstore::ListPage> page = (*store)->List("", token, 1000);
      if (!page.ok()) {
        ADD_FAILURE() << page.status();
        return -1;
      }
      n += static_cast<int>(page->objects.size());
      token = page->next_token;
    } while (!token.empty());
    return n;
  }

  std::string P(const std::string& rel) const { return mnt_->path() + "/" + rel; }

  // TearDown stops the mounts and the server before the emulators.
  std::unique_ptr<S3rver> s3rver_;
  std::unique_ptr<Azurite> azurite_;
  std::string store_url_;
  std::string creds_path_;
  blockstore::StoreCredentials creds_;
  FuseMount* mnt_ = nullptr;
};

TEST_P(CloudE2eTest, RoundTripSizes) {
  const std::vector<size_t> sizes = {0,          1, kBlock - 1, kBlock, kBlock + 1, 3 * kBlock + 17,
                                     32u << 20};
  for (size_t n : sizes) {
    const std::string data = RandomBytes(n, static_cast<uint32_t>(n));
    const std::string path = P(absl::StrCat("f", n));
    ASSERT_TRUE(WriteFile(path, data)) << n << ": " << std::strerror(errno);
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(static_cast<size_t>(st.st_size), n);
    EXPECT_TRUE(ReadFile(path) == data) << "size " << n;
  }
  // Every full or partial block is an object in the store; an empty file has none, nor has
  // one within the server's inline limit (4096 bytes by default: kept in the block map).
  size_t blocks = 0;
  for (size_t n : sizes) blocks += n <= 4096 ? 0 : (n + kBlock - 1) / kBlock;
  EXPECT_EQ(CountObjects(), static_cast<int>(blocks));
  // And again from a fresh mount: nothing comes from the first mount's memory.
  FuseMount* other = Mount("mnt2");
  ASSERT_NE(other, nullptr);
  for (size_t n : sizes) {
    const std::string path = other->path() + absl::StrCat("/f", n);
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(static_cast<size_t>(st.st_size), n);
    EXPECT_TRUE(ReadFile(path) == RandomBytes(n, static_cast<uint32_t>(n))) << "size " << n;
  }
}

TEST_P(CloudE2eTest, RandomWritesMatchLocalModel) {
  const std::string path = P("model");
  const std::string model_path = root_ + "/model";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  int mfd = ::open(model_path.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_GE(mfd, 0);
  std::mt19937 rng(1234);
  const uint64_t span = 12 * static_cast<uint64_t>(kBlock);
  for (int i = 0; i < 300; ++i) {
    uint64_t off;
    if (i % 4 == 0) {
      // Straddles a block edge.
      off = (1 + rng() % 11) * static_cast<uint64_t>(kBlock) - (1 + rng() % 100);
    } else {
      off = rng() % span;
    }
    const size_t len = 1 + rng() % (i % 25 == 0 ? 2 * kBlock : 5000);
    const std::string data = RandomBytes(len, static_cast<uint32_t>(i));
    ASSERT_EQ(::pwrite(fd, data.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len))
        << "op " << i << ": " << std::strerror(errno);
    ASSERT_EQ(::pwrite(mfd, data.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    if (i % 100 == 99) {
      // Truncate down and up, mid-block, while the file is open.
      const off_t down = static_cast<off_t>(rng() % (6 * kBlock) + 123);
      ASSERT_EQ(::ftruncate(fd, down), 0);
      ASSERT_EQ(::ftruncate(mfd, down), 0);
      const off_t up = down + static_cast<off_t>(rng() % (2 * kBlock));
      ASSERT_EQ(::ftruncate(fd, up), 0);
      ASSERT_EQ(::ftruncate(mfd, up), 0);
    }
    if (i % 50 == 0) {
      ASSERT_EQ(::fsync(fd), 0) << "op " << i << ": " << std::strerror(errno);
    }
  }
  ASSERT_EQ(::close(fd), 0);
  ASSERT_EQ(::close(mfd), 0);
  const std::string model = ReadFile(model_path);
  const std::string got = ReadFile(path);
  ASSERT_EQ(got.size(), model.size());
  EXPECT_TRUE(got == model) << "first difference at byte "
                            << std::distance(got.begin(), std::mismatch(got.begin(), got.end(),
                                                                        model.begin())
                                                              .first);
  FuseMount* fresh = Mount("mnt2");
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(ReadFile(fresh->path() + "/model") == model);
}

TEST_P(CloudE2eTest, RenameLinksSymlinks) {
  CheckRenameLinksSymlinks(mnt_->path());
  struct stat st;

  // A multi-block file keeps its blocks across a rename into another directory.
  const std::string big = RandomBytes(2 * kBlock + 5, 77);
  ASSERT_TRUE(WriteFile(P("big"), big));
  ASSERT_EQ(::mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(::rename(P("big").c_str(), P("d/big").c_str()), 0);
  EXPECT_TRUE(ReadFile(P("d/big")) == big);

  // All of it as a fresh mount sees it.
  FuseMount* other = Mount("mnt2");
  ASSERT_NE(other, nullptr);
  const std::string o = other->path();
  EXPECT_EQ(ReadFile(o + "/b"), "AAA");
  EXPECT_NE(::access((o + "/a").c_str(), F_OK), 0);
  EXPECT_NE(::access((o + "/c").c_str(), F_OK), 0);
  ASSERT_EQ(::lstat((o + "/s").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(ReadFile(o + "/s"), "AAA");
  EXPECT_TRUE(ReadFile(o + "/d/big") == big);
}

TEST_P(CloudE2eTest, UnreferencedBlocksAreDeleted) {
  ASSERT_TRUE(WriteFile(P("gc"), RandomBytes(3 * kBlock, 9)));
  EXPECT_EQ(CountObjects(), 3);
  ASSERT_TRUE(WriteFile(P("gc"), RandomBytes(kBlock, 10)));  // O_TRUNC: 3 blocks freed
  int n = -1;
  EXPECT_TRUE(WaitFor([&] { return (n = CountObjects()) == 1; }, absl::Seconds(60)))
      << n << " objects in the store; meta log:\n" << meta_->log();
  EXPECT_TRUE(ReadFile(P("gc")) == RandomBytes(kBlock, 10));
  ASSERT_EQ(::unlink(P("gc").c_str()), 0);
  EXPECT_TRUE(WaitFor([&] { return (n = CountObjects()) == 0; }, absl::Seconds(60)))
      << n << " objects in the store; meta log:\n" << meta_->log();
}

TEST_P(CloudE2eTest, SecretsAreNeverShown) {
  // A second mount logging at debug level: the most a log ever says.
  FuseMount* m = Mount("verbose", "log_level=debug");
  ASSERT_NE(m, nullptr);
  const std::string data = RandomBytes(kBlock + 3, 5);
  ASSERT_TRUE(WriteFile(m->path() + "/f", data));
  EXPECT_TRUE(ReadFile(m->path() + "/f") == data);

  const std::string secret = Secret();
  const std::string run_dir = m->path() + ".run";
  const std::string cli = BuildRoot() + "/tools/nighfs";
  std::string json;
  // The status file appears once the daemon's background thread first writes it.
  ASSERT_TRUE(WaitFor(
      [&] {
        return RunShell("NIGHFS_RUN_DIR=" + run_dir + " " + cli + " status --json " + m->path(),
                        &json) == 0;
      },
      absl::Seconds(30)))
      << json;
  EXPECT_THAT(json, HasSubstr(kBucket)) << "the status names the store";
  EXPECT_THAT(json, Not(HasSubstr(secret)));
  std::string text;
  EXPECT_EQ(RunShell("NIGHFS_RUN_DIR=" + run_dir + " " + cli + " status " + m->path(), &text), 0)
      << text;
  EXPECT_THAT(text, Not(HasSubstr(secret)));

  for (FuseMount* mount : {mnt_, m}) {
    const std::string cmdline = CommandLine(mount->process()->pid());
    EXPECT_THAT(cmdline, HasSubstr("credentials=" + creds_path_)) << "wrong process?";
    EXPECT_THAT(cmdline, Not(HasSubstr(secret)));
  }
  // Logs last: unmounting writes the final lines.
  for (auto& mount : mounts_) {
    auto st = mount->Unmount();
    ASSERT_OK(st);
    EXPECT_EQ(*st, 0) << mount->log();
  }
  const std::string log = m->log();
  EXPECT_THAT(log, HasSubstr("mounted at")) << "the log is the mount's";
  EXPECT_THAT(log, Not(HasSubstr(secret)));
  EXPECT_THAT(mnt_->log(), Not(HasSubstr(secret)));
  EXPECT_THAT(meta_->log(), Not(HasSubstr(secret)));
  mounts_.clear();
}

TEST_P(CloudE2eTest, WrongCredentialsFailTheMountClearly) {
  const std::string bad_creds = root_ + "/bad-credentials";
  const std::string wrong_secret = s3() ? kS3Secret : kWrongAzureKey;
  ASSERT_TRUE(WritePrivateFile(
      bad_creds, s3() ? absl::StrCat("AWS_ACCESS_KEY_ID=", kWrongS3KeyId,
                                     "\nAWS_SECRET_ACCESS_KEY=", kS3Secret, "\n")
                      : absl::StrCat("AZURE_STORAGE_KEY=", kWrongAzureKey, "\n")));
  const std::string mp = root_ + "/bad";
  stdfs::create_directories(mp);
  // Runs mount.nighfs as a user would and waits (with a deadline) for it to give up.
  int attempt = 0;
  auto try_mount = [&](const std::string& creds_file, std::string* log) -> int {
    const std::string log_path = absl::StrCat(mp, ".", ++attempt, ".log");
    auto p = ChildProcess::Start({BuildRoot() + "/mount/mount.nighfs", "vol@" + meta_->address(),
                                  mp, "-f", "-o",
                                  "credentials=" + creds_file + ",ca_file=" + LabCaFile() +
                                      ",token_file=" + meta_->admin_token_file()},
                                 log_path, {{"NIGHFS_RUN_DIR", mp + ".run"}});
    if (!p.ok()) {
      ADD_FAILURE() << p.status();
      return -1;
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<int> st = (*p)->Wait(absl::Seconds(60));
    *log = (*p)->ReadLog();
    if (!st.ok()) {
      ADD_FAILURE() << "mount.nighfs still running after "
                    << absl::FormatDuration(absl::Now() - start) << "; log:\n" << *log;
      return -1;
    }
    return WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
  };

  std::string log;
  int rc = try_mount(bad_creds, &log);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, -1);
  EXPECT_FALSE(IsMounted(mp));
  EXPECT_THAT(log, HasSubstr("is not usable")) << log;
  if (s3()) {
    EXPECT_THAT(log, HasSubstr("InvalidAccessKeyId")) << log;
  } else {
    // Azure says AuthenticationFailed; Azurite 3.x says AuthorizationFailure.
    EXPECT_THAT(log, AnyOf(HasSubstr("AuthenticationFailed"), HasSubstr("AuthorizationFailure")))
        << log;
  }
  EXPECT_THAT(log, Not(HasSubstr(wrong_secret)));
  EXPECT_THAT(log, Not(HasSubstr(Secret())));

  // A credentials file others can read is refused before it is used.
  const std::string open_creds = root_ + "/open-credentials";
  ASSERT_TRUE(WritePrivateFile(open_creds, GoodCredentialsText(), 0644));
  rc = try_mount(open_creds, &log);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(rc, -1);
  EXPECT_FALSE(IsMounted(mp));
  EXPECT_THAT(log, HasSubstr("chmod 600")) << log;
  EXPECT_THAT(log, Not(HasSubstr(Secret())));

  // The good mount is unaffected.
  ASSERT_TRUE(WriteFile(P("still"), "fine"));
  EXPECT_EQ(ReadFile(P("still")), "fine");
}

INSTANTIATE_TEST_SUITE_P(Emulators, CloudE2eTest,
                         ::testing::Values(Emulator::kS3rver, Emulator::kAzurite),
                         [](const ::testing::TestParamInfo<Emulator>& info) {
                           return EmulatorName(info.param);
                         });

}  // namespace
}  // namespace nighfs::testing
