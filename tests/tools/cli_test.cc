// The nighfs command as users run it: in-process for argument handling and `status`, and as a
// real process against a real nighfs-meta for the volume commands.
#include "tools/cli.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/tls_certs.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "meta.pb.h"
#include "status.pb.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"
#include "tests/tools/test_util.h"

namespace nighfs::tools {
namespace {

using ::nighfs::testing::BuildRoot;
using ::nighfs::testing::ChildProcess;
using ::nighfs::testing::FreeLoopbackPort;
using ::nighfs::testing::ReadFileOrEmpty;
using ::nighfs::testing::TempDir;
using ::nighfs::testing::WaitFor;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// ---- in-process ----

CliResult RunInProcess(std::vector<std::string> args) {
  args.insert(args.begin(), "nighfs");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  CliResult r;
  r.exit_code = RunNighfsCli(static_cast<int>(argv.size()), argv.data(), out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

TEST(CliTest, Version) {
  CliResult r = RunInProcess({"version"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "nighfs " + std::string(NighfsVersion()) + "\n");
  EXPECT_THAT(NighfsVersion(), Not(IsEmpty()));
  EXPECT_NE(NighfsVersion(), "unknown");

  r = RunInProcess({"--version"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr(std::string(NighfsVersion())));
}

TEST(CliTest, HelpListsTheCommands) {
  CliResult r = RunInProcess({"--help"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_THAT(r.out, HasSubstr("configure"));
  EXPECT_THAT(r.out, HasSubstr("status"));
  EXPECT_THAT(r.out, HasSubstr("--meta"));
  EXPECT_THAT(r.out, HasSubstr("--timeout"));
}

TEST(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunInProcess({}).exit_code, kExitUsage);
  EXPECT_EQ(RunInProcess({"frobnicate"}).exit_code, kExitUsage);
  EXPECT_EQ(RunInProcess({"configure"}).exit_code, kExitUsage);
  EXPECT_EQ(RunInProcess({"configure", "create", "volume", "v"}).exit_code, kExitUsage)
      << "--store is required";
  EXPECT_EQ(RunInProcess({"configure", "create", "volume", "--store", "file:///x"}).exit_code,
            kExitUsage)
      << "NAME is required";
  EXPECT_EQ(RunInProcess({"--timeout", "0", "version"}).exit_code, kExitUsage);
  EXPECT_EQ(RunInProcess({"--timeout", "soon", "version"}).exit_code, kExitUsage);
  EXPECT_EQ(RunInProcess({"--meta", "", "configure", "list", "volumes"}).exit_code, kExitUsage);
}

TEST(CliTest, DeleteRequiresYesBeforeContactingAnyServer) {
  // No server listens at this address: the refusal must come first.
  const std::string meta = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  CliResult r = RunInProcess({"--meta", meta, "configure", "delete", "volume", "scratch"});
  EXPECT_EQ(r.exit_code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("--yes"));
  EXPECT_THAT(r.err, HasSubstr("scratch"));
  EXPECT_THAT(r.err, Not(HasSubstr("cannot reach")));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST(CliTest, BadBlockSizesAreRejectedBeforeContactingAnyServer) {
  const std::string meta = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  for (const char* size : {"4X", "1.5M", "0", "8G"}) {
    CliResult r = RunInProcess({"--meta", meta, "configure", "create", "volume", "v", "--store",
                                "file:///tmp/x", "--block-size", size});
    EXPECT_EQ(r.exit_code, kExitFailure) << size;
    EXPECT_THAT(r.err, StartsWith("nighfs: --block-size: ")) << size;
    EXPECT_THAT(r.err, Not(HasSubstr("cannot reach"))) << size;
  }
}

TEST(CliStatusTest, NoMountsIsNotAnError) {
  TempDir run;
  ScopedEnv env("NIGHFS_RUN_DIR", run.path());
  CliResult r = RunInProcess({"status"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "no nighfs mounts\n");
  EXPECT_THAT(r.err, IsEmpty());

  r = RunInProcess({"status", "--json"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "[]\n");

  // The run directory does not exist until the first mount.
  ScopedEnv env2("NIGHFS_RUN_DIR", run.path() + "/none");
  r = RunInProcess({"status"});
  EXPECT_EQ(r.exit_code, kExitOk);
  EXPECT_EQ(r.out, "no nighfs mounts\n");
}

pid_t DeadPid(const TempDir& dir) {
  auto child = ChildProcess::Start({"true"}, dir.path() + "/true.log");
  EXPECT_OK(child);
  if (!child.ok()) return 0;
  EXPECT_OK((*child)->Wait(absl::Seconds(30)));
  return (*child)->pid();
}

class CliStatusFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A metadata server that is certainly down, so the probe has a definite answer.
    down_meta_ = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
    mount_point_ = mnt_.path();
    WriteFile(absl::StrCat(run_.path(), "/", ::getpid(), ".json"),
              StatusJson(mount_point_, ::getpid(), "scratch", down_meta_));
    dead_pid_ = DeadPid(run_);
    ASSERT_GT(dead_pid_, 0);
    WriteFile(absl::StrCat(run_.path(), "/", dead_pid_, ".json"),
              StatusJson("/mnt/crashed", dead_pid_, "old"));
  }

  TempDir run_;
  TempDir mnt_;
  ScopedEnv env_{"NIGHFS_RUN_DIR", run_.path()};
  std::string down_meta_;
  std::string mount_point_;
  pid_t dead_pid_ = 0;
};

TEST_F(CliStatusFilesTest, ShowsLiveMountsRoutesAndStaleFiles) {
  CliResult r = RunInProcess({"status"});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_THAT(r.out, StartsWith(mount_point_ + "\n"));
  EXPECT_THAT(r.out, HasSubstr("scratch (id 5)"));
  EXPECT_THAT(r.out, HasSubstr(down_meta_));
  EXPECT_THAT(r.out, HasSubstr("from here:       UNREACHABLE"));
  EXPECT_THAT(r.out, HasSubstr("session:           77"));
  EXPECT_THAT(r.out, HasSubstr("uptime:            5m"));
  EXPECT_THAT(r.out, HasSubstr("ROUTES"));
  EXPECT_THAT(r.out, HasSubstr("  direct  store  file:///srv/blocks  yes      yes       -    only route"));
  EXPECT_THAT(r.out, HasSubstr("cache hit ratio:      75.0% (3 hits, 1 misses)"));
  EXPECT_THAT(r.out, HasSubstr("stale status files"));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("process ", dead_pid_, " is not running")));
  EXPECT_THAT(r.out, HasSubstr("fusermount3 -u /mnt/crashed"));
  EXPECT_THAT(r.out, Not(HasSubstr("/mnt/crashed\n  volume")));
}

TEST_F(CliStatusFilesTest, OneMountByPath) {
  CliResult r = RunInProcess({"status", mount_point_ + "/"});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  EXPECT_THAT(r.out, StartsWith(mount_point_ + "\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("stale")));
}

TEST_F(CliStatusFilesTest, PathThatIsNotAMountExitsOne) {
  TempDir other;
  CliResult r = RunInProcess({"status", other.path()});
  EXPECT_EQ(r.exit_code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr(other.path() + " is not a nighfs mount"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CliStatusFilesTest, MountWhoseDaemonDiedSaysHowToClean) {
  CliResult r = RunInProcess({"status", "/mnt/crashed"});
  EXPECT_EQ(r.exit_code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("daemon (pid " + std::to_string(dead_pid_) + ") is gone"));
  EXPECT_THAT(r.err, HasSubstr("fusermount3 -u /mnt/crashed"));
}

TEST_F(CliStatusFilesTest, JsonIsTheRawStatus) {
  CliResult r = RunInProcess({"status", "--json"});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  // An array of the live mounts' status objects, stale ones left out.
  // One element: the array's only object parses as a MountStatus (two would not).
  absl::string_view body = absl::StripAsciiWhitespace(r.out);
  ASSERT_TRUE(absl::ConsumePrefix(&body, "[") && absl::ConsumeSuffix(&body, "]")) << r.out;
  status::v1::MountStatus listed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(std::string(body), &listed).ok())
      << r.out;
  EXPECT_EQ(listed.mount_point(), mount_point_);

  r = RunInProcess({"status", "--json", mount_point_});
  ASSERT_EQ(r.exit_code, kExitOk) << r.err;
  status::v1::MountStatus one;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &one).ok()) << r.out;
  EXPECT_EQ(one.mount_point(), mount_point_);
  EXPECT_EQ(one.session_id(), 77u);
  EXPECT_EQ(r.out, absl::StrCat(absl::StripTrailingAsciiWhitespace(ReadFileOrEmpty(
                                    absl::StrCat(run_.path(), "/", ::getpid(), ".json"))),
                                "\n"));
}

// ---- the real binaries ----

// Runs the nighfs binary with `args`, capturing stdout and stderr apart.
class NighfsRunner {
 public:
  explicit NighfsRunner(std::string dir) : dir_(std::move(dir)) {}

  CliResult Run(const std::vector<std::string>& args,
                std::map<std::string, std::string> env = {}) {
    const int n = ++calls_;
    const std::string out_path = absl::StrCat(dir_, "/cli-", n, ".out");
    const std::string err_path = absl::StrCat(dir_, "/cli-", n, ".err");
    // ChildProcess sends stdout and stderr to one log; a shell splits stderr off.
    std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>\"$NIGHFS_TEST_ERR\"",
                                     BuildRoot() + "/tools/nighfs"};
    argv.insert(argv.end(), args.begin(), args.end());
    env["NIGHFS_TEST_ERR"] = err_path;
    CliResult r;
    auto child = ChildProcess::Start(argv, out_path, env);
    if (!child.ok()) {
      ADD_FAILURE() << child.status();
      return r;
    }
    absl::StatusOr<int> st = (*child)->Wait(absl::Seconds(60));
    if (!st.ok()) {
      ADD_FAILURE() << "nighfs did not finish: " << st.status();
      return r;
    }
    r.exit_code = WIFEXITED(*st) ? WEXITSTATUS(*st) : 128 + WTERMSIG(*st);
    r.out = ReadFileOrEmpty(out_path);
    r.err = ReadFileOrEmpty(err_path);
    return r;
  }

 private:
  std::string dir_;
  int calls_ = 0;
};

class CliMetaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string binary = BuildRoot() + "/meta/nighfs-meta";
    ASSERT_EQ(::access(binary.c_str(), X_OK), 0) << binary << " is not built";
    ASSERT_EQ(::access((BuildRoot() + "/tools/nighfs").c_str(), X_OK), 0);
    const std::string port_file = dir_.path() + "/meta.port";
    const std::string state = dir_.path() + "/state";
    ASSERT_OK(WriteLabTls(tls_dir()));
    auto child = ChildProcess::Start(
        {binary, "--listen", "127.0.0.1:0", "--port-file", port_file, "--state-dir", state,
         "--tls-cert", tls_dir() + "/server.pem", "--tls-key", tls_dir() + "/server.key",
         "--allow-file-root", dir_.path(), "--allow-file-root", blocks_.path()},
        dir_.path() + "/meta.log");
    ASSERT_OK(child);
    meta_ = std::move(*child);
    int port = 0;
    ASSERT_TRUE(WaitFor(
        [&] {
          std::string text(absl::StripAsciiWhitespace(ReadFileOrEmpty(port_file)));
          return absl::SimpleAtoi(text, &port) && port > 0;
        },
        absl::Seconds(20)))
        << "nighfs-meta did not write its port; log:\n" << meta_->ReadLog();
    ASSERT_OK(::nighfs::testing::WaitForTcpPort(port, absl::Seconds(10)));
    address_ = absl::StrCat("127.0.0.1:", port);
    store_ = "file://" + blocks_.path();
    admin_token_file_ = state + "/admin.token";
  }

  void TearDown() override {
    if (HasFailure() && meta_ != nullptr) {
      std::cerr << "nighfs-meta log:\n" << meta_->ReadLog();
    }
  }

  CliResult Nighfs(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), {"--meta", address_, "--ca-file", ca_file(), "--admin-token-file",
                               admin_token_file_});
    return runner_.Run(args, std::move(env));
  }

  std::string tls_dir() const { return dir_.path() + "/tls"; }
  std::string ca_file() const { return tls_dir() + "/ca.pem"; }

  TempDir dir_;
  TempDir blocks_;
  NighfsRunner runner_{dir_.path()};
  std::unique_ptr<ChildProcess> meta_;
  std::string address_;
  std::string store_;
  std::string admin_token_file_;
};

TEST_F(CliMetaTest, CreateListDuplicateAndDelete) {
  // Each volume gets a store of its own: the server refuses to share one.
  const std::string scratch_store = store_ + "/scratch";
  const std::string small_store = store_ + "/small";
  CliResult r = Nighfs({"configure", "create", "volume", "scratch", "--store", scratch_store});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("created volume scratch\n"));
  EXPECT_THAT(r.out, HasSubstr("4 MiB (4194304 bytes)"));
  EXPECT_THAT(r.out, HasSubstr(scratch_store));
  EXPECT_THAT(r.err, IsEmpty());

  r = Nighfs(
      {"configure", "create", "volume", "small", "--store", small_store, "--block-size", "64K"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("64 KiB (65536 bytes)"));

  r = Nighfs({"configure", "list", "volumes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("NAME     ID  BLOCK-SIZE  STORE\n"));
  EXPECT_THAT(r.out, HasSubstr("scratch"));
  EXPECT_THAT(r.out, HasSubstr("4 MiB"));
  EXPECT_THAT(r.out, HasSubstr("small"));
  EXPECT_THAT(r.out, HasSubstr("64 KiB"));
  EXPECT_LT(r.out.find("scratch"), r.out.find("small")) << "sorted by name";

  r = Nighfs({"configure", "list", "volumes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  meta::v1::ListVolumesResponse list;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &list).ok()) << r.out;
  ASSERT_EQ(list.volumes_size(), 2);
  std::map<std::string, meta::v1::Volume> by_name;
  for (const auto& v : list.volumes()) by_name[v.name()] = v;
  EXPECT_EQ(by_name["scratch"].block_size(), 4u << 20);
  EXPECT_EQ(by_name["small"].block_size(), 64u << 10);
  EXPECT_EQ(by_name["scratch"].store_url(), scratch_store);
  EXPECT_NE(by_name["scratch"].id(), by_name["small"].id());

  // A second volume of the same name is refused, with the server's reason.
  r = Nighfs({"configure", "create", "volume", "scratch", "--store", store_ + "/other"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot create volume \"scratch\": "));
  EXPECT_THAT(r.err, HasSubstr("exists"));
  EXPECT_THAT(r.out, IsEmpty());

  r = Nighfs({"configure", "delete", "volume", "small"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--yes"));

  r = Nighfs({"configure", "delete", "volume", "small", "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted volume small\n");

  r = Nighfs({"configure", "list", "volumes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("scratch"));
  EXPECT_THAT(r.out, Not(HasSubstr("small")));

  r = Nighfs({"configure", "delete", "volume", "never-existed", "--yes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot delete volume \"never-existed\": "));
}

TEST_F(CliMetaTest, StoreCheckFailureIsReported) {
  // A file store under a regular file cannot be created or written.
  const std::string file = dir_.path() + "/plain-file";
  WriteFile(file, "x");
  CliResult r =
      Nighfs({"configure", "create", "volume", "bad", "--store", "file://" + file + "/blocks"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot create volume \"bad\": "));
  r = Nighfs({"configure", "list", "volumes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("bad")));
}

TEST_F(CliMetaTest, MetaFromEnvironmentAndGlobalOptionsAfterSubcommand) {
  CliResult r = runner_.Run({"configure", "list", "volumes"},
                             {{"NIGHFS_META", address_}, {"NIGHFS_CA_FILE", ca_file()},
                              {"NIGHFS_ADMIN_TOKEN_FILE", admin_token_file_}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "no volumes\n");

  r = runner_.Run({"configure", "list", "volumes", "--meta", "https://" + address_, "--ca-file",
                   ca_file(), "--admin-token-file", admin_token_file_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "no volumes\n");
}

TEST_F(CliMetaTest, StatusProbesTheMountsMetadataServer) {
  TempDir run;
  TempDir mnt;
  WriteFile(absl::StrCat(run.path(), "/", meta_->pid(), ".json"),
            StatusJson(mnt.path(), meta_->pid(), "scratch", address_, ca_file()));
  // The probe trusts what the mount trusts (its ca_file), not what this shell says.
  CliResult r = runner_.Run({"status"}, {{"NIGHFS_RUN_DIR", run.path()}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith(mnt.path() + "\n"));
  EXPECT_THAT(r.out, HasSubstr("from here:       reachable ("));
  EXPECT_THAT(r.out, HasSubstr("https://" + address_));
  EXPECT_THAT(r.out, HasSubstr("TLS (verified, CA file " + ca_file() + ")"));
}

// A CA that did not sign the server's certificate: one clear line at once, no retries.
TEST_F(CliMetaTest, WrongCaFailsAtOnceNamingVerification) {
  TempDir other;
  ASSERT_OK(WriteLabTls(other.path()));
  const absl::Time start = absl::Now();
  CliResult r = runner_.Run({"--meta", address_, "--ca-file", other.path() + "/ca.pem",
                             "--timeout", "20", "configure", "list", "volumes"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_LT(took, absl::Seconds(3)) << r.err;
  EXPECT_THAT(r.err, HasSubstr("certificate"));
  EXPECT_THAT(r.err, HasSubstr("ca_file"));
  EXPECT_THAT(r.out, IsEmpty());
}

// `nighfs configure init tls`: a CA and a server certificate for the local names and --host,
// keys 0600 in a 0700 folder whatever the umask, and no silent overwrite.
TEST(CliInitTlsTest, WritesPrivateFilesAndRefusesToOverwrite) {
  TempDir dir;
  NighfsRunner runner(dir.path());
  const std::string tls = dir.path() + "/tls";
  const mode_t old_mask = ::umask(0);
  CliResult r = runner.Run({"configure", "init", "tls", tls, "--host", "meta.example",
                            "--host", "10.1.2.3"});
  ::umask(old_mask);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("meta.example"));
  EXPECT_THAT(r.out, HasSubstr("10.1.2.3"));
  EXPECT_THAT(r.out, HasSubstr("localhost"));
  EXPECT_THAT(r.out, HasSubstr("--tls-cert " + tls + "/server.pem"));
  struct stat st;
  ASSERT_EQ(::stat(tls.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const auto& [name, mode] : {std::pair{"ca.key", 0600u}, std::pair{"server.key", 0600u},
                                   std::pair{"ca.pem", 0644u}, std::pair{"server.pem", 0644u}}) {
    ASSERT_EQ(::stat((tls + "/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777, mode) << name;
  }
  const std::string before = ReadFileOrEmpty(tls + "/server.pem");
  r = runner.Run({"configure", "init", "tls", tls});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--force"));
  EXPECT_EQ(ReadFileOrEmpty(tls + "/server.pem"), before);
  r = runner.Run({"configure", "init", "tls", tls, "--force"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(ReadFileOrEmpty(tls + "/server.pem"), before);
}

// Issue 11: volume tokens from the command line; the secret is shown once or written 0600.
TEST_F(CliMetaTest, TokensCreateListRevokeAndNeedTheAdminToken) {
  ASSERT_EQ(Nighfs({"configure", "create", "volume", "v", "--store", store_}).exit_code, 0);
  const std::string out_file = dir_.path() + "/w.token";
  CliResult r = Nighfs({"configure", "create", "token", "--volume", "v", "--access", "write",
                        "--name", "ci", "--expires", "30d", "--out", out_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string secret(absl::StripAsciiWhitespace(ReadFileOrEmpty(out_file)));
  EXPECT_THAT(secret, StartsWith("nighfs-token-"));
  EXPECT_EQ(secret.size(), std::string("nighfs-token-").size() + 64);
  EXPECT_THAT(r.out, Not(HasSubstr(secret))) << "--out: the secret goes to the file only";
  struct stat st;
  ASSERT_EQ(::stat(out_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  r = Nighfs({"configure", "create", "token", "--volume", "v", "--access", "read"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("nighfs-token-")) << "without --out the secret is printed once";

  r = Nighfs({"configure", "list", "tokens", "--volume", "v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("ci"));
  EXPECT_THAT(r.out, HasSubstr("write"));
  EXPECT_THAT(r.out, HasSubstr("read"));
  EXPECT_THAT(r.out, Not(HasSubstr("nighfs-token-"))) << "a listing never shows a secret";

  r = Nighfs({"configure", "revoke", "token", "ci"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "tokens"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("ci")));
  EXPECT_EQ(Nighfs({"configure", "revoke", "token", "ci"}).exit_code, 1);

  // Without the admin token: refused by the server (401), nothing created.
  r = runner_.Run({"--meta", address_, "--ca-file", ca_file(), "--admin-token-file", out_file, "configure", "create",
                   "volume", "w", "--store", store_ + "/w"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("token"));
  // An admin token file others may read is refused before any call, as ssh does.
  const std::string loose = dir_.path() + "/loose.token";
  WriteFile(loose, ReadFileOrEmpty(admin_token_file_));
  ASSERT_EQ(::chmod(loose.c_str(), 0644), 0);
  r = runner_.Run({"--meta", address_, "--ca-file", ca_file(), "--admin-token-file", loose, "configure", "list",
                   "volumes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("chmod 600"));
  r = Nighfs({"configure", "list", "volumes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr(" w ")));
}

// Issue 12: a proxy server's own token: bound to no volume, admin-only to create, listed and
// revoked like a volume token, and good for nothing but the proxy calls.
TEST_F(CliMetaTest, ProxyTokenCreateListRevoke) {
  ASSERT_EQ(Nighfs({"configure", "create", "volume", "v", "--store", store_}).exit_code, 0);
  const std::string out_file = dir_.path() + "/proxy.token";
  CliResult r = Nighfs({"configure", "create", "token", "--access", "proxy", "--name", "edge1",
                        "--expires", "30d", "--out", out_file});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(proxy)"));
  const std::string secret(absl::StripAsciiWhitespace(ReadFileOrEmpty(out_file)));
  EXPECT_THAT(secret, StartsWith("nighfs-token-"));
  EXPECT_THAT(r.out, Not(HasSubstr(secret)));
  struct stat st;
  ASSERT_EQ(::stat(out_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A proxy token names no volume; a volume token needs one.
  r = Nighfs({"configure", "create", "token", "--access", "proxy", "--volume", "v"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no volume"));
  r = Nighfs({"configure", "create", "token", "--access", "read"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--volume"));
  // Names are unique among live proxy tokens.
  r = Nighfs({"configure", "create", "token", "--access", "proxy", "--name", "edge1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("edge1"));

  r = Nighfs({"configure", "list", "tokens"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("edge1 +\\(proxy\\) +proxy"));
  r = Nighfs({"configure", "list", "tokens", "--volume", "v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("edge1"))) << "a proxy token belongs to no volume";

  // Not an admin credential: configure commands with it are refused by the server (403).
  r = runner_.Run({"--meta", address_, "--ca-file", ca_file(), "--admin-token-file", out_file,
                   "configure", "list", "volumes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("proxy token"));

  r = Nighfs({"configure", "revoke", "token", "edge1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "tokens"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("edge1")));
}

TEST_F(CliMetaTest, ProxyGroupsAndVolumeProxyGroupsCreateUpdateListDelete) {
  ASSERT_EQ(Nighfs({"configure", "create", "volume", "v", "--store", store_}).exit_code, 0);
  CliResult r = Nighfs({"configure", "create", "proxy-group", "--provider-code", "onprem",
                        "--region-code", "dc1", "--addresses", "p1:7430,http://p2:7430"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("created proxy group "));
  meta::v1::ListProxyGroupsResponse groups;
  r = Nighfs({"configure", "list", "proxy-groups", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &groups).ok()) << r.out;
  ASSERT_EQ(groups.groups_size(), 1);
  const std::string id = absl::StrCat(groups.groups(0).id());
  EXPECT_EQ(groups.groups(0).provider_code(), "onprem");
  EXPECT_THAT(groups.groups(0).addresses(), ::testing::ElementsAre("p1:7430", "http://p2:7430"));

  // Invalid input is the server's to refuse, with its reason; nothing is created.
  r = Nighfs({"configure", "create", "proxy-group", "--provider-code", "OnPrem", "--region-code",
              "dc1", "--addresses", "p1:7430"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot create proxy group: "));
  r = Nighfs({"configure", "update", "proxy-group", id, "--addresses", "p1:7430,p1:7430"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("twice"));

  r = Nighfs({"configure", "update", "proxy-group", id, "--addresses", "p1:7430, p3:7430"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "proxy-groups"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("ID  PROVIDER  REGION  MEMBERS\n"));
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat(id, "   onprem    dc1     p1:7430,p3:7430\n")));

  r = Nighfs({"configure", "create", "volume-proxy-group", "--volume", "v", "--proxy-group-id",
              id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "volume-proxy-groups", "--volume", "v"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("v +" + id + "\n"));
  r = Nighfs({"configure", "list", "volume-proxy-groups", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  meta::v1::ListVolumeProxyGroupsResponse assocs;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &assocs).ok()) << r.out;
  ASSERT_EQ(assocs.associations_size(), 1);
  EXPECT_EQ(assocs.associations(0).volume(), "v");

  r = Nighfs({"configure", "delete", "proxy-group", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("associated"));
  r = Nighfs({"configure", "delete", "volume-proxy-group", "--volume", "v", "--proxy-group-id",
              id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "volume-proxy-groups"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "no volume proxy groups\n");
  r = Nighfs({"configure", "delete", "proxy-group", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Nighfs({"configure", "list", "proxy-groups"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "no proxy groups\n");

  // The admin token is needed: a volume token is refused by the server.
  const std::string token_file = dir_.path() + "/v.token";
  ASSERT_EQ(Nighfs({"configure", "create", "token", "--volume", "v", "--access", "write",
                    "--out", token_file})
                .exit_code,
            0);
  r = runner_.Run({"--meta", address_, "--ca-file", ca_file(), "--admin-token-file", token_file,
                   "configure", "list", "proxy-groups"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("admin token"));
}

TEST(CliUnreachableTest, BadMetaAddressFailsFastWithAClearMessage) {
  TempDir dir;
  NighfsRunner runner(dir.path());
  const std::string meta = absl::StrCat("127.0.0.1:", FreeLoopbackPort());
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"--meta", meta, "configure", "list", "volumes"},
           {"--meta", meta, "configure", "create", "volume", "v", "--store", "file:///tmp/v"},
           {"--meta", meta, "configure", "delete", "volume", "v", "--yes"}}) {
    CliResult r = runner.Run(cmd);
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_THAT(r.err, StartsWith("nighfs: cannot reach metadata server at " + meta + ": "));
    EXPECT_THAT(r.out, IsEmpty());
  }
  // The same through $NIGHFS_META.
  CliResult r = runner.Run({"configure", "list", "volumes"}, {{"NIGHFS_META", meta}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot reach metadata server at " + meta + ": "));

  // An address that is not even a host name.
  r = runner.Run({"--meta", "no such host:12", "configure", "list", "volumes"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, StartsWith("nighfs: cannot reach metadata server at no such host:12: "));
}

}  // namespace
}  // namespace nighfs::tools
