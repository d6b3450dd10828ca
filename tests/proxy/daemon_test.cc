#include "proxy/daemon.h"

#include "gtest/gtest.h"
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

}  // namespace
}  // namespace nighfs::proxy
