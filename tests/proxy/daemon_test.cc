#include "proxy/daemon.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "gtest/gtest.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::proxy {
namespace {

TEST(DaemonTest, ListenAddresses) {
  absl::StatusOr<HostPort> hp = ParseListenAddress("0.0.0.0:7430");
  ASSERT_OK(hp);
  EXPECT_EQ(hp->host, "0.0.0.0");
  EXPECT_EQ(hp->port, 7430);
  hp = ParseListenAddress("[::1]:0");
  ASSERT_OK(hp);
  EXPECT_EQ(hp->host, "::1");
  for (const char* bad : {"7430", ":7430", "host:", "host:65536", "host:x"}) {
    EXPECT_FALSE(ParseListenAddress(bad).ok()) << bad;
  }
}

TEST(DaemonTest, AdvertisedAddressSaysTheScheme) {
  EXPECT_EQ(DefaultAdvertise({"127.0.0.1", 0}, 4000, /*plaintext=*/true), "http://127.0.0.1:4000");
  EXPECT_EQ(DefaultAdvertise({"10.0.0.5", 7430}, 7430, /*plaintext=*/false), "10.0.0.5:7430");
  EXPECT_EQ(DefaultAdvertise({"::1", 0}, 9, /*plaintext=*/false), "[::1]:9");
  const std::string any = DefaultAdvertise({"0.0.0.0", 7430}, 7430, /*plaintext=*/false);
  EXPECT_NE(any.rfind("0.0.0.0", 0), 0u) << any;  // a name others can dial
  EXPECT_OK(CheckAdvertise("proxy1.lan:7430"));
  EXPECT_OK(CheckAdvertise("http://proxy1.lan:7430"));
  EXPECT_OK(CheckAdvertise("https://[fd00::1]:443"));
  EXPECT_FALSE(CheckAdvertise("proxy1.lan").ok());
  EXPECT_FALSE(CheckAdvertise("proxy1.lan:0").ok());
}

TEST(DaemonTest, TlsOrPlaintextByName) {
  TlsFlags f;
  EXPECT_FALSE(f.Check().ok());  // neither
  f.cert_file = "c.pem";
  EXPECT_FALSE(f.Check().ok());  // half a pair
  f.key_file = "k.pem";
  EXPECT_OK(f.Check());
  f.insecure_plaintext = true;
  EXPECT_FALSE(f.Check().ok());  // both
  f.cert_file.clear();
  f.key_file.clear();
  EXPECT_OK(f.Check());
}

// The real binary: starts at once (no store or metadata server contacted), says what it serves
// in one line, answers the probes, and stops cleanly on SIGTERM.
class DaemonProcessTest : public ::testing::Test {
 protected:
  DaemonProcessTest() {
    token_ = dir_.path() + "/proxy.token";
    std::ofstream(token_) << "nighfs_proxy_token_for_tests\n";
    ::chmod(token_.c_str(), 0600);
  }
  std::vector<std::string> Argv(std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        nighfs::testing::BuildRoot() + "/proxy/nighfs-proxy", "--listen", "127.0.0.1:0",
        "--port-file", dir_.path() + "/port", "--meta", "http://127.0.0.1:1",
        "--meta-token-file", token_, "--disk-folder", dir_.path() + "/cache", "--disk-quota",
        "1G"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }
  nighfs::testing::TempDir dir_;
  std::string token_;
};

TEST_F(DaemonProcessTest, StartsFastAndAnswersProbes) {
  const absl::Time start = absl::Now();
  auto proxy = nighfs::testing::ChildProcess::Start(Argv({"--insecure-plaintext"}),
                                                   dir_.path() + "/proxy.log");
  ASSERT_OK(proxy);
  uint32_t port = 0;
  ASSERT_TRUE(nighfs::testing::WaitFor(
      [&] {
        return absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                    nighfs::testing::ReadFileOrEmpty(dir_.path() + "/port")),
                                &port) &&
               port > 0;
      },
      absl::Seconds(10)))
      << (*proxy)->ReadLog();
  const absl::Duration startup = absl::Now() - start;
  EXPECT_LT(startup, absl::Seconds(2)) << startup;
  std::unique_ptr<HttpClient> client = HttpClient::Create();
  for (const char* path : {"/ping", "/healthz", "/metrics"}) {
    HttpRequest req;
    req.url = absl::StrCat("http://127.0.0.1:", port, path);
    absl::StatusOr<HttpResponse> r = client->Do(req);
    ASSERT_OK(r);
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
  }
  const std::string log = (*proxy)->ReadLog();
  EXPECT_TRUE(absl::StrContains(log, absl::StrCat("serving PLAINTEXT http on 127.0.0.1:", port)))
      << log;
  EXPECT_TRUE(absl::StrContains(log, absl::StrCat("advertised as http://127.0.0.1:", port)))
      << log;
  EXPECT_TRUE(absl::StrContains(log, "disk folder " + dir_.path() + "/cache")) << log;
  EXPECT_TRUE(absl::StrContains(log, "quota 1 GiB")) << log;
  absl::StatusOr<int> status = (*proxy)->Stop(SIGTERM);
  ASSERT_OK(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
}

TEST_F(DaemonProcessTest, RefusesToStartWithoutTlsOrWithAnOpenTokenFile) {
  auto proxy = nighfs::testing::ChildProcess::Start(Argv({}), dir_.path() + "/notls.log");
  ASSERT_OK(proxy);
  absl::StatusOr<int> status = (*proxy)->Wait(absl::Seconds(10));
  ASSERT_OK(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  EXPECT_TRUE(absl::StrContains((*proxy)->ReadLog(), "no TLS certificate")) << (*proxy)->ReadLog();

  ::chmod(token_.c_str(), 0644);
  proxy = nighfs::testing::ChildProcess::Start(Argv({"--insecure-plaintext"}),
                                              dir_.path() + "/open.log");
  ASSERT_OK(proxy);
  status = (*proxy)->Wait(absl::Seconds(10));
  ASSERT_OK(status);
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  EXPECT_TRUE(absl::StrContains((*proxy)->ReadLog(), "chmod")) << (*proxy)->ReadLog();
}

}  // namespace
}  // namespace nighfs::proxy
