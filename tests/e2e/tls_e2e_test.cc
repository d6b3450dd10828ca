// TLS between mounts, the CLI and nighfs-meta, with real processes (issue 11): the harness runs
// every e2e test over TLS already; these check the failures a user meets and what
// `nighfs status` says about the transport.
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/tls_certs.h"
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

class TlsE2eTest : public ClusterTest {
 protected:
  // Runs mount.nighfs in the foreground as a user would (`timeout` ends one that wrongly
  // mounts); returns its exit status, its output in *out and how long it took in *took.
  int TryMount(const std::string& spec, const std::string& options, std::string* out,
               absl::Duration* took) {
    const std::string mp = root_ + "/try";
    stdfs::create_directories(mp);
    const absl::Time start = absl::Now();
    const int rc = RunShell(absl::StrCat("timeout 30 ", BuildRoot(), "/mount/mount.nighfs ", spec,
                                         " ", mp, " -f -o ", options,
                                         ",token_file=", meta_->admin_token_file()),
                            out);
    *took = absl::Now() - start;
    EXPECT_FALSE(IsMounted(mp));
    return rc;
  }

  // `nighfs status MP`, once the mount has written its first status file (just after the
  // mount goes live).
  std::string StatusText(const FuseMount& m) {
    std::string text;
    EXPECT_TRUE(WaitFor(
        [&] {
          return RunShell(absl::StrCat("NIGHFS_RUN_DIR=", m.path(), ".run ", BuildRoot(),
                                       "/tools/nighfs status ", m.path()),
                          &text) == 0;
        },
        absl::Seconds(10)))
        << text;
    return text;
  }
};

// A CA that did not sign the server's certificate: the mount fails at once (not after its
// 10 s mount_timeout of retries) and says it is a certificate problem and where to look.
TEST_F(TlsE2eTest, WrongCaFailsTheMountAtOnceAndClearly) {
  ASSERT_NO_FATAL_FAILURE(StartMeta());
  ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl()));
  const std::string other = root_ + "/other-ca";
  ASSERT_OK(WriteLabTls(other));
  std::string out;
  absl::Duration took;
  int rc = TryMount("vol@" + meta_->address(), "ca_file=" + other + "/ca.pem", &out, &took);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_LT(took, absl::Seconds(2)) << out;
  EXPECT_THAT(out, HasSubstr("certificate"));
  EXPECT_THAT(out, HasSubstr("check ca_file"));
  EXPECT_THAT(out, Not(HasSubstr("attempts"))) << "a verification failure was retried";

  // No ca_file: the system store does not know the lab CA either.
  rc = TryMount("vol@" + meta_->address(), "mount_timeout=10", &out, &took);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_LT(took, absl::Seconds(2)) << out;
  EXPECT_THAT(out, HasSubstr("certificate"));

  // A ca_file that does not exist.
  rc = TryMount("vol@" + meta_->address(), "ca_file=" + root_ + "/missing.pem", &out, &took);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_LT(took, absl::Seconds(2)) << out;
  EXPECT_THAT(out, HasSubstr("missing.pem"));

  // Plain HTTP to the TLS port: refused by the server in words, not retried.
  rc = TryMount("vol@http://" + meta_->address(), "ca_file=" + LabCaFile(), &out, &took);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_LT(took, absl::Seconds(2)) << out;
  EXPECT_THAT(out, HasSubstr("HTTPS only"));

  // The right CA, for contrast.
  FuseMount* m = MountVolume("vol", "ok");
  ASSERT_NE(m, nullptr);
  ASSERT_TRUE(WriteFile(m->path() + "/f", "over tls"));
  EXPECT_EQ(ReadFile(m->path() + "/f"), "over tls");
}

// `nighfs status` reports the transport from the mount's own options.
TEST_F(TlsE2eTest, StatusShowsTlsWithTheCaFile) {
  ASSERT_NO_FATAL_FAILURE(StartMeta());
  ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl()));
  FuseMount* m = MountVolume("vol", "tls");
  ASSERT_NE(m, nullptr);
  const std::string text = StatusText(*m);
  EXPECT_THAT(text, HasSubstr("https://" + meta_->address()));
  EXPECT_THAT(text, HasSubstr("TLS (verified, CA file " + LabCaFile() + ")"));
  EXPECT_THAT(text, HasSubstr("from here:"));
  EXPECT_THAT(text, Not(HasSubstr("UNREACHABLE")));
}

TEST_F(TlsE2eTest, StatusShowsPlaintext) {
  ASSERT_NO_FATAL_FAILURE(StartMeta({"--insecure-plaintext"}));
  // Logged just after the port opens, which is what StartMeta waits for.
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(meta_->log(), "--insecure-plaintext"); },
                      absl::Seconds(10)))
      << meta_->log();
  ASSERT_OK(CreateVolume(meta_->address(), "vol", BlocksUrl()));
  FuseMount* m = MountVolume("vol", "plain");
  ASSERT_NE(m, nullptr);
  const std::string text = StatusText(*m);
  EXPECT_THAT(text, HasSubstr(meta_->address()));
  EXPECT_THAT(text, HasSubstr("PLAINTEXT (insecure)"));
  EXPECT_THAT(text, Not(HasSubstr("UNREACHABLE")));
}

}  // namespace
}  // namespace nighfs::testing
