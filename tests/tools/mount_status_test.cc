#include "tools/mount_status.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"
#include "tests/tools/test_util.h"

namespace nighfs::tools {
namespace {

using ::nighfs::testing::ChildProcess;
using ::nighfs::testing::TempDir;
using ::testing::HasSubstr;

// The pid of a process that has certainly exited (and been reaped).
pid_t DeadPid() {
  TempDir dir;
  auto child = ChildProcess::Start({"true"}, dir.path() + "/log");
  EXPECT_OK(child);
  if (!child.ok()) return 0;
  EXPECT_OK((*child)->Wait(absl::Seconds(30)));
  return (*child)->pid();
}

TEST(MountRunDirTest, EnvironmentOverridesTheDefault) {
  {
    ScopedEnv env("NIGHFS_RUN_DIR", "/tmp/elsewhere");
    EXPECT_EQ(MountRunDir(), "/tmp/elsewhere");
  }
  {
    ScopedEnv env("NIGHFS_RUN_DIR", "");
    EXPECT_EQ(MountRunDir(), "/run/nighfs/mounts");
  }
}

TEST(ScanMountsTest, MissingDirectoryMeansNoMounts) {
  TempDir dir;
  ScanOptions options;
  options.dir = dir.path() + "/does-not-exist";
  absl::StatusOr<MountScan> scan = ScanMounts(options);
  ASSERT_OK(scan);
  EXPECT_TRUE(scan->mounts.empty());
  EXPECT_TRUE(scan->stale.empty());
  EXPECT_TRUE(scan->broken.empty());
}

TEST(ScanMountsTest, UnlistableDirectoryIsAnError) {
  TempDir dir;
  const std::string file = dir.path() + "/not-a-dir";
  WriteFile(file, "x");
  ScanOptions options;
  options.dir = file;
  EXPECT_FALSE(ScanMounts(options).ok());
}

TEST(ScanMountsTest, LiveStaleAndBrokenFilesAreTold) {
  TempDir dir;
  ScopedEnv env("NIGHFS_RUN_DIR", dir.path());
  const pid_t me = ::getpid();
  const pid_t parent = ::getppid();
  const pid_t dead = DeadPid();
  ASSERT_GT(dead, 0);

  WriteFile(absl::StrCat(dir.path(), "/", me, ".json"), StatusJson("/mnt/b", me, "vb"));
  WriteFile(absl::StrCat(dir.path(), "/", dead, ".json"), StatusJson("/mnt/gone", dead, "vg"));
  WriteFile(absl::StrCat(dir.path(), "/", parent, ".json"), "{not json");
  // Names that are not <pid>.json are someone else's (an atomic writer's temporary file).
  WriteFile(dir.path() + "/123.json.tmp", "garbage");
  WriteFile(dir.path() + "/abc.json", "garbage");
  WriteFile(dir.path() + "/README", "garbage");

  absl::StatusOr<MountScan> scan = ScanMounts();  // from $NIGHFS_RUN_DIR
  ASSERT_OK(scan);
  ASSERT_EQ(scan->mounts.size(), 1u);
  EXPECT_EQ(scan->mounts[0].pid, me);
  EXPECT_EQ(scan->mounts[0].status.mount_point(), "/mnt/b");
  EXPECT_EQ(scan->mounts[0].status.volume(), "vb");
  EXPECT_EQ(scan->mounts[0].status.routes_size(), 1);
  EXPECT_THAT(scan->mounts[0].json, HasSubstr("\"/mnt/b\""));

  ASSERT_EQ(scan->stale.size(), 1u);
  EXPECT_EQ(scan->stale[0].pid, dead);
  EXPECT_EQ(scan->stale[0].mount_point, "/mnt/gone");
  EXPECT_THAT(scan->stale[0].reason, HasSubstr("not running"));

  ASSERT_EQ(scan->broken.size(), 1u);
  EXPECT_EQ(scan->broken[0].pid, parent);
  EXPECT_THAT(scan->broken[0].reason, HasSubstr("not a mount status"));
}

TEST(ScanMountsTest, SortsByMountPointAndToleratesUnknownFields) {
  TempDir dir;
  std::string json_a = StatusJson("/mnt/a", 101, "a");
  json_a.insert(1, "\"someFutureField\": {\"x\": 1}, ");
  WriteFile(dir.path() + "/101.json", json_a);
  // mount.nighfs writes the .proto's field names (mount_point), other writers may use the
  // JSON names (mountPoint): both must be read.
  statuspb::MountStatus c;
  c.set_mount_point("/mnt/c");
  c.set_pid(102);
  google::protobuf::util::JsonPrintOptions snake;
  snake.preserve_proto_field_names = true;
  std::string json_c;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(c, &json_c, snake).ok());
  ASSERT_NE(json_c.find("\"mount_point\""), std::string::npos) << json_c;
  WriteFile(dir.path() + "/102.json", json_c);
  WriteFile(dir.path() + "/103.json", StatusJson("/mnt/b", 103, "b"));
  ScanOptions options;
  options.dir = dir.path();
  options.pid_alive = [](pid_t) { return true; };
  absl::StatusOr<MountScan> scan = ScanMounts(options);
  ASSERT_OK(scan);
  ASSERT_EQ(scan->mounts.size(), 3u);
  EXPECT_EQ(scan->mounts[0].status.mount_point(), "/mnt/a");
  EXPECT_EQ(scan->mounts[1].status.mount_point(), "/mnt/b");
  EXPECT_EQ(scan->mounts[2].status.mount_point(), "/mnt/c");
  EXPECT_TRUE(scan->broken.empty());
}

TEST(ScanMountsTest, PidMismatchBetweenNameAndContentIsBroken) {
  TempDir dir;
  WriteFile(dir.path() + "/200.json", StatusJson("/mnt/x", 201, "x"));
  ScanOptions options;
  options.dir = dir.path();
  options.pid_alive = [](pid_t) { return true; };
  absl::StatusOr<MountScan> scan = ScanMounts(options);
  ASSERT_OK(scan);
  EXPECT_TRUE(scan->mounts.empty());
  ASSERT_EQ(scan->broken.size(), 1u);
  EXPECT_THAT(scan->broken[0].reason, HasSubstr("201"));
}

TEST(FindMountTest, MatchesNormalizedAndResolvedPaths) {
  TempDir dir;
  const std::string real = dir.path() + "/mnt/data";
  ASSERT_EQ(::mkdir((dir.path() + "/mnt").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(real.c_str(), 0755), 0);
  const std::string link = dir.path() + "/data-link";
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);

  MountScan scan;
  scan.mounts.resize(2);
  scan.mounts[0].status.set_mount_point("/mnt/other");
  scan.mounts[1].status.set_mount_point(real);

  EXPECT_EQ(FindMount(scan, real), &scan.mounts[1]);
  EXPECT_EQ(FindMount(scan, real + "/"), &scan.mounts[1]);
  EXPECT_EQ(FindMount(scan, dir.path() + "/mnt/../mnt/./data"), &scan.mounts[1]);
  EXPECT_EQ(FindMount(scan, link), &scan.mounts[1]);
  EXPECT_EQ(FindMount(scan, "/mnt/other/"), &scan.mounts[0]);
  EXPECT_EQ(FindMount(scan, dir.path() + "/mnt"), nullptr);
  EXPECT_EQ(FindMount(scan, "/mnt/nothing"), nullptr);
}

TEST(FindMountTest, RelativePathsAreTakenFromTheWorkingDirectory) {
  TempDir dir;
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(::chdir(dir.path().c_str()), 0);
  MountScan scan;
  scan.mounts.resize(1);
  scan.mounts[0].status.set_mount_point(dir.path() + "/m");
  const MountStatusFile* found = FindMount(scan, "m");
  ASSERT_EQ(::chdir(cwd), 0);
  EXPECT_EQ(found, &scan.mounts[0]);
}

TEST(FindStaleTest, FindsTheDeadDaemonOfAMountPoint) {
  MountScan scan;
  scan.stale.push_back({"/run/nighfs/mounts/9.json", 9, "process 9 is not running", "/mnt/x"});
  scan.stale.push_back({"/run/nighfs/mounts/8.json", 8, "process 8 is not running", ""});
  const SkippedStatusFile* f = FindStale(scan, "/mnt/x/");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->pid, 9);
  EXPECT_EQ(FindStale(scan, "/mnt/y"), nullptr);
}

}  // namespace
}  // namespace nighfs::tools
