// nighfs-proxy init/deinit creds|systemd, driven through RunProxyAdminCommand with real files in
// temporary folders. systemctl is never the machine's own: PATH points at an empty folder
// ("systemctl not found", as in CI) or at a fake that records its arguments.
#include "proxy/ops.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "blockstore/block_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"
#include "tests/testing/scoped_env.h"

namespace nighfs::proxy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::nighfs::testing::ScopedEnv;


class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : old_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(old_); }

 private:
  mode_t old_;
};

struct Result {
  std::optional<int> code;
  std::string out;
  std::string err;
};

Result RunAdmin(std::vector<std::string> args) {
  args.insert(args.begin(), "nighfs-proxy");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  Result r;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  r.code = RunProxyAdminCommand(static_cast<int>(args.size()), argv.data());
  r.out = ::testing::internal::GetCapturedStdout();
  r.err = ::testing::internal::GetCapturedStderr();
  return r;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data, mode_t mode = 0600) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << data;
    ASSERT_TRUE(out.good()) << path;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Every entry of `dir`, to prove no temporary file is left behind.
std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A clean credential environment (the machine may have real ones) and no real systemctl.
class OpsTest : public ::testing::Test {
 protected:
  testing::TempDir dir_;
  ScopedEnv e1_{"AWS_ACCESS_KEY_ID", nullptr};
  ScopedEnv e2_{"AWS_SECRET_ACCESS_KEY", nullptr};
  ScopedEnv e3_{"AWS_SESSION_TOKEN", nullptr};
  ScopedEnv e4_{"AZURE_STORAGE_KEY", nullptr};
  ScopedEnv e5_{"AZURE_STORAGE_SAS_TOKEN", nullptr};
  std::string empty_bin_ = [this] {
    const std::string d = dir_.path() + "/emptybin";
    std::filesystem::create_directory(d);
    return d;
  }();
  ScopedEnv path_{"PATH", empty_bin_.c_str()};
};

// ---------------------------------------------------------------------------------------------
// Dispatch

TEST_F(OpsTest, DaemonArgumentsAreNotAdminCommands) {
  EXPECT_EQ(RunAdmin({}).code, std::nullopt);
  EXPECT_EQ(RunAdmin({"--listen", "0.0.0.0:7430", "--meta", "m:7420"}).code, std::nullopt);
  EXPECT_EQ(RunAdmin({"initialize"}).code, std::nullopt);
}

TEST_F(OpsTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunAdmin({"init"}).code, 2);
  EXPECT_EQ(RunAdmin({"init", "bogus"}).code, 2);
  EXPECT_EQ(RunAdmin({"deinit"}).code, 2);
  EXPECT_EQ(RunAdmin({"init", "systemd", "--unit-dir", dir_.path()}).code, 2);  // no --start-flags
  const Result help = RunAdmin({"init", "creds", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--secret-access-key-file"));
}

// ---------------------------------------------------------------------------------------------
// init creds / deinit creds

TEST_F(OpsTest, CredsFromFlagsRoundTripThroughLoadCredentials) {
  // Characters a naive writer or reader gets wrong: '#', '=', quotes, '$', '%', backslash.
  const std::vector<std::string> secrets = {"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                            "ab#cd=ef",
                                            "\"quoted\"",
                                            "'single'",
                                            "it's $HOME %i a\\b \"x\"",
                                            "=leading-equals"};
  int n = 0;
  for (const std::string& secret : secrets) {
    SCOPED_TRACE(secret);
    const std::string secret_file = absl::StrCat(dir_.path(), "/secret", n);
    WriteFile(secret_file, secret + "\n");  // an editor's final newline is not part of it
    const std::string creds = absl::StrCat(dir_.path(), "/etc", n++, "/nighfs/proxy.creds");
    ScopedUmask umask(0);  // 0600 whatever the umask
    const Result r = RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id",
                               "AKIDEXAMPLE", "--secret-access-key-file", secret_file});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ModeOf(creds), 0600);
    EXPECT_THAT(r.out, HasSubstr(creds));
    EXPECT_THAT(r.out + r.err, Not(HasSubstr(secret)));
    absl::StatusOr<blockstore::StoreCredentials> loaded = blockstore::LoadCredentials(creds);
    ASSERT_OK(loaded);
    EXPECT_EQ(loaded->access_key_id, "AKIDEXAMPLE");
    EXPECT_EQ(loaded->secret_access_key, secret);
    EXPECT_EQ(loaded->session_token, "");
    EXPECT_EQ(loaded->azure_account_key, "");
    EXPECT_EQ(Entries(std::filesystem::path(creds).parent_path()),
              std::vector<std::string>{"proxy.creds"});
  }
}

TEST_F(OpsTest, CredsFromEnvironmentRoundTrip) {
  const std::string creds = dir_.path() + "/proxy.creds";
  {
    ScopedEnv id("AWS_ACCESS_KEY_ID", "AKIDENV");
    ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "  spaced secret  ");  // only env keeps edges
    ScopedEnv token("AWS_SESSION_TOKEN", "FwoGZXIvYXdzE#token==");
    ScopedEnv key("AZURE_STORAGE_KEY", "a2V5a2V5==");
    ScopedEnv sas("AZURE_STORAGE_SAS_TOKEN", "sv=2021&sig=abc%3D");
    const Result r = RunAdmin({"init", "creds", "--creds-file", creds});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("the environment"));
    for (const char* s : {"spaced secret", "token==", "a2V5a2V5", "sig=abc"}) {
      EXPECT_THAT(r.out + r.err, Not(HasSubstr(s)));
    }
  }
  // The environment is clean again: everything below comes from the file.
  absl::StatusOr<blockstore::StoreCredentials> loaded = blockstore::LoadCredentials(creds);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->access_key_id, "AKIDENV");
  EXPECT_EQ(loaded->secret_access_key, "  spaced secret  ");
  EXPECT_EQ(loaded->session_token, "FwoGZXIvYXdzE#token==");
  EXPECT_EQ(loaded->azure_account_key, "a2V5a2V5==");
  EXPECT_EQ(loaded->azure_sas_token, "sv=2021&sig=abc%3D");
  EXPECT_EQ(ModeOf(creds), 0600);
}

TEST_F(OpsTest, AzureCredsFromFilesAndSecretFromStdin) {
  const std::string creds = dir_.path() + "/proxy.creds";
  WriteFile(dir_.path() + "/sas", "sv=2021&sig=xyz\n");
  const Result azure = RunAdmin(
      {"init", "creds", "--creds-file", creds, "--azure-sas-token-file", dir_.path() + "/sas"});
  ASSERT_EQ(azure.code, 0) << azure.err;
  absl::StatusOr<blockstore::StoreCredentials> loaded = blockstore::LoadCredentials(creds);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->azure_sas_token, "sv=2021&sig=xyz");
  EXPECT_EQ(loaded->access_key_id, "");

  // --secret-access-key-file - reads standard input (e.g. piped from a password manager).
  WriteFile(dir_.path() + "/stdin", "from-stdin-secret\n");
  const int saved = ::dup(STDIN_FILENO);
  ASSERT_GE(saved, 0);
  const int in = ::open((dir_.path() + "/stdin").c_str(), O_RDONLY);
  ASSERT_GE(in, 0);
  ASSERT_EQ(::dup2(in, STDIN_FILENO), STDIN_FILENO);
  ::close(in);
  const Result r = RunAdmin({"init", "creds", "--creds-file", creds, "--force", "--access-key-id",
                             "AKID", "--secret-access-key-file", "-"});
  ASSERT_EQ(::dup2(saved, STDIN_FILENO), STDIN_FILENO);
  ::close(saved);
  ASSERT_EQ(r.code, 0) << r.err;
  loaded = blockstore::LoadCredentials(creds);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->secret_access_key, "from-stdin-secret");
  EXPECT_EQ(loaded->azure_sas_token, "");  // replaced whole, not merged
}

TEST_F(OpsTest, CredsRefuseOverwriteWithoutForce) {
  const std::string creds = dir_.path() + "/proxy.creds";
  WriteFile(dir_.path() + "/s1", "first-secret");
  WriteFile(dir_.path() + "/s2", "second-secret");
  ASSERT_EQ(RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "ID1",
                      "--secret-access-key-file", dir_.path() + "/s1"})
                .code,
            0);
  const std::string before = ReadAll(creds);
  const Result refused = RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "ID2",
                                   "--secret-access-key-file", dir_.path() + "/s2"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  EXPECT_EQ(ReadAll(creds), before);

  // A file someone widened is replaced by a 0600 one.
  ASSERT_EQ(::chmod(creds.c_str(), 0644), 0);
  const Result forced =
      RunAdmin({"init", "creds", "--creds-file", creds, "--force", "--access-key-id", "ID2",
                "--secret-access-key-file", dir_.path() + "/s2"});
  ASSERT_EQ(forced.code, 0) << forced.err;
  EXPECT_EQ(ModeOf(creds), 0600);
  absl::StatusOr<blockstore::StoreCredentials> loaded = blockstore::LoadCredentials(creds);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->access_key_id, "ID2");
  EXPECT_EQ(loaded->secret_access_key, "second-secret");
  EXPECT_EQ(Entries(dir_.path()),
            (std::vector<std::string>{"emptybin", "proxy.creds", "s1", "s2"}));
}

TEST_F(OpsTest, CredsRefuseIncompleteOrUnwritableInput) {
  const std::string creds = dir_.path() + "/proxy.creds";
  WriteFile(dir_.path() + "/empty", "\n\n");
  // Nothing at all, an id without a secret, an empty secret file, a missing secret file.
  EXPECT_EQ(RunAdmin({"init", "creds", "--creds-file", creds}).code, 2);
  EXPECT_EQ(RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "X"}).code, 2);
  EXPECT_EQ(RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "X",
                      "--secret-access-key-file", dir_.path() + "/empty"})
                .code,
            1);
  EXPECT_EQ(RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "X",
                      "--secret-access-key-file", dir_.path() + "/nope"})
                .code,
            1);
  {
    // Flags are used alone: a secret in the environment does not complete a flag's id.
    ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "env-secret");
    EXPECT_EQ(RunAdmin({"init", "creds", "--creds-file", creds, "--access-key-id", "X"}).code, 2);
  }
  {
    // A newline would cut the KEY=VALUE line: refused, without echoing the value.
    ScopedEnv id("AWS_ACCESS_KEY_ID", "ID");
    ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "line1\nAWS_ACCESS_KEY_ID=evil");
    const Result r = RunAdmin({"init", "creds", "--creds-file", creds});
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr("AWS_SECRET_ACCESS_KEY"));
    EXPECT_THAT(r.err, Not(HasSubstr("line1")));
  }
  EXPECT_FALSE(Exists(creds));
}

TEST_F(OpsTest, DeinitCredsRemovesTheFile) {
  const std::string creds = dir_.path() + "/proxy.creds";
  ScopedEnv id("AWS_ACCESS_KEY_ID", "ID");
  ScopedEnv secret("AWS_SECRET_ACCESS_KEY", "S");
  ASSERT_EQ(RunAdmin({"init", "creds", "--creds-file", creds}).code, 0);
  ASSERT_TRUE(Exists(creds));
  EXPECT_EQ(RunAdmin({"deinit", "creds", "--creds-file", creds}).code, 0);
  EXPECT_FALSE(Exists(creds));
  const Result again = RunAdmin({"deinit", "creds", "--creds-file", creds});
  EXPECT_EQ(again.code, 0);
  EXPECT_THAT(again.out, HasSubstr("nothing to remove"));
}

// ---------------------------------------------------------------------------------------------
// init systemd / deinit systemd

class SystemdTest : public OpsTest {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(unit_dir_);
    std::filesystem::create_directories(dir_.path() + "/opt/nighfs proxy");
    WriteFile(binary_, "#!/bin/sh\nexit 0\n", 0755);
  }

  // Replaces PATH's (empty) folder content with a systemctl that appends its arguments to
  // calls_ and fails when they contain $FAKE_SYSTEMCTL_FAIL.
  void InstallFakeSystemctl() {
    WriteFile(empty_bin_ + "/systemctl",
              absl::StrCat("#!/bin/sh\necho \"$*\" >> '", calls_,
                           "'\n"
                           "case \"$*\" in *\"${FAKE_SYSTEMCTL_FAIL:-@none@}\"*) exit 1;; esac\n"
                           "exit 0\n"),
              0755);
  }
  std::vector<std::string> Calls() {
    std::vector<std::string> lines = absl::StrSplit(ReadAll(calls_), '\n', absl::SkipEmpty());
    std::ofstream(calls_, std::ios::trunc);  // the next Calls() sees only newer ones
    return lines;
  }
  // nighfs-proxy init systemd [extra...] into unit_dir_ with binary_ and `flags`.
  Result InitUnit(const std::string& flags, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"init", "systemd"};
    args.insert(args.end(), extra.begin(), extra.end());
    for (const std::string& a : {std::string("--unit-dir"), unit_dir_, std::string("--binary"),
                                 binary_, std::string("--start-flags"), flags}) {
      args.push_back(a);
    }
    return RunAdmin(std::move(args));
  }
  std::string ExecStartOf(const std::string& unit) {
    for (absl::string_view line : absl::StrSplit(unit, '\n')) {
      if (absl::StartsWith(line, "ExecStart=")) return std::string(line.substr(10));
    }
    return "";
  }

  const std::string unit_dir_ = dir_.path() + "/units";
  const std::string unit_ = unit_dir_ + "/nighfs-proxy.service";
  // A folder with a space: the executable path itself needs quoting.
  const std::string binary_ = dir_.path() + "/opt/nighfs proxy/nighfs-proxy";
  const std::string calls_ = dir_.path() + "/systemctl.calls";
};

TEST_F(SystemdTest, WritesUnitAndSaysSystemctlIsMissing) {
  ScopedUmask umask(077);  // the unit is world-readable (0644) whatever the umask
  const Result r =
      RunAdmin({"init", "systemd", "--unit-dir", unit_dir_, "--binary", binary_, "--start-flags",
                "--meta meta.example:7420 --meta-token-file /etc/nighfs/proxy.token "
                "--disk-folder /data/proxy-cache --disk-quota 90%"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("systemctl not found"));
  EXPECT_EQ(ModeOf(unit_), 0644);
  const std::string unit = ReadAll(unit_);
  for (const char* line :
       {"\n[Unit]\n", "\nAfter=network-online.target\n", "\nWants=network-online.target\n",
        "\n[Service]\n", "\nType=simple\n", "\nRestart=always\n", "\nLimitNOFILE=1048576\n",
        "\n[Install]\n", "\nWantedBy=multi-user.target\n"}) {
    EXPECT_THAT(unit, HasSubstr(line));
  }
  EXPECT_EQ(ExecStartOf(unit),
            absl::StrCat("\"", binary_,
                         "\" --meta meta.example:7420 --meta-token-file /etc/nighfs/proxy.token "
                         "--disk-folder /data/proxy-cache --disk-quota 90%%"));
  EXPECT_EQ(Entries(unit_dir_), std::vector<std::string>{"nighfs-proxy.service"});
}

TEST_F(SystemdTest, QuotesFlagsWithSpacesQuotesAndSpecialCharacters) {
  // Shell-style input; each word must reach the daemon's argv exactly.
  const Result r =
      InitUnit(R"(--disk-folder '/data/my cache' --name "it's \"x\"" --tag 50%\ $HOME )"
               R"(--sep ';' --back 'a\b' --empty '' --tab "a	b")");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string exec = ExecStartOf(ReadAll(unit_));
  EXPECT_EQ(exec, absl::StrCat("\"", binary_, "\"",
                               R"( --disk-folder "/data/my cache" --name "it's \"x\"")"
                               R"( --tag "50%% $$HOME" --sep ";" --back "a\\b" --empty "")"
                               R"( --tab "a\tb")"));
  // systemd's own parser accepts it (when this machine has systemd-analyze): no warning about
  // quoting or escapes, and the executable path with its space resolves.
  const std::string analyze = "/usr/bin/systemd-analyze";
  if (::access(analyze.c_str(), X_OK) == 0) {
    const std::string log = dir_.path() + "/verify.log";
    const std::string cmd =
        absl::StrCat("'", analyze, "' verify --man=no '", unit_, "' > '", log, "' 2>&1");
    EXPECT_EQ(std::system(cmd.c_str()), 0) << ReadAll(log);
    EXPECT_EQ(ReadAll(log), "");
  }
}

TEST_F(SystemdTest, RefusesBadFlagsAndBinaries) {
  EXPECT_EQ(InitUnit("--disk-folder '/data").code, 2);
  EXPECT_EQ(InitUnit("   ").code, 2);
  EXPECT_EQ(InitUnit("init creds").code, 2);
  EXPECT_EQ(RunAdmin({"init", "systemd", "--unit-dir", unit_dir_, "--binary", "nighfs-proxy",
                      "--start-flags", "--meta m:7420"})
                .code,
            2);
  EXPECT_EQ(RunAdmin({"init", "systemd", "--unit-dir", unit_dir_, "--binary",
                      dir_.path() + "/missing", "--start-flags", "--meta m:7420"})
                .code,
            2);
  EXPECT_FALSE(Exists(unit_));
}

TEST_F(SystemdTest, NowWithoutSystemctlWritesTheUnitButFails) {
  const Result r = InitUnit("--meta m:7420", {"--now"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("systemctl not found"));
  EXPECT_TRUE(Exists(unit_));
}

TEST_F(SystemdTest, RefusesToReplaceAnotherUnitWithoutForce) {
  ASSERT_EQ(InitUnit("--meta a:7420").code, 0);
  const std::string before = ReadAll(unit_);
  // The same unit again is fine (idempotent); another one needs --force.
  const Result same = InitUnit("--meta a:7420");
  EXPECT_EQ(same.code, 0);
  EXPECT_THAT(same.out, HasSubstr("unchanged"));
  const Result other = InitUnit("--meta b:7420");
  EXPECT_EQ(other.code, 1);
  EXPECT_THAT(other.err, HasSubstr("--force"));
  EXPECT_EQ(ReadAll(unit_), before);
  ASSERT_EQ(InitUnit("--meta b:7420", {"--force"}).code, 0);
  EXPECT_THAT(ExecStartOf(ReadAll(unit_)), HasSubstr("--meta b:7420"));
  EXPECT_EQ(Entries(unit_dir_), std::vector<std::string>{"nighfs-proxy.service"});
}

TEST_F(SystemdTest, DrivesSystemctlWhenPresent) {
  InstallFakeSystemctl();
  Result r = InitUnit("--meta a:7420");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Calls(), std::vector<std::string>{"daemon-reload"});

  r = InitUnit("--meta a:7420", {"--now"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Calls(),
            (std::vector<std::string>{"daemon-reload", "enable --now nighfs-proxy.service"}));

  // New flags for a running service: enable, then restart so they take effect.
  r = InitUnit("--meta b:7420", {"--now", "--force"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Calls(), (std::vector<std::string>{"daemon-reload", "enable nighfs-proxy.service",
                                               "restart nighfs-proxy.service"}));

  r = RunAdmin({"deinit", "systemd", "--unit-dir", unit_dir_});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Calls(),
            (std::vector<std::string>{"disable --now nighfs-proxy.service", "daemon-reload"}));
  EXPECT_FALSE(Exists(unit_));
  r = RunAdmin({"deinit", "systemd", "--unit-dir", unit_dir_});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("nothing to remove"));
  EXPECT_EQ(Calls(), std::vector<std::string>{});
}

TEST_F(SystemdTest, FailingSystemctlIsReported) {
  InstallFakeSystemctl();
  {
    ScopedEnv fail("FAKE_SYSTEMCTL_FAIL", "enable");
    const Result r = InitUnit("--meta a:7420", {"--now"});
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr("journalctl -u nighfs-proxy.service"));
  }
  Calls();
  {
    // A service systemctl cannot stop keeps its unit unless --force.
    ScopedEnv fail("FAKE_SYSTEMCTL_FAIL", "disable");
    const Result kept = RunAdmin({"deinit", "systemd", "--unit-dir", unit_dir_});
    EXPECT_EQ(kept.code, 1);
    EXPECT_THAT(kept.err, HasSubstr("--force"));
    EXPECT_TRUE(Exists(unit_));
    EXPECT_EQ(Calls(), std::vector<std::string>{"disable --now nighfs-proxy.service"});
    const Result forced = RunAdmin({"deinit", "systemd", "--force", "--unit-dir", unit_dir_});
    EXPECT_EQ(forced.code, 0) << forced.err;
    EXPECT_FALSE(Exists(unit_));
  }
}

TEST_F(SystemdTest, DeinitWithoutSystemctlRemovesTheUnit) {
  ASSERT_EQ(InitUnit("--meta a:7420").code, 0);
  const Result r = RunAdmin({"deinit", "systemd", "--unit-dir", unit_dir_});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("systemctl not found"));
  EXPECT_FALSE(Exists(unit_));
}

}  // namespace
}  // namespace nighfs::proxy
