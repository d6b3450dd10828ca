#include "mount/mount_options.h"

#include <filesystem>

#include "gtest/gtest.h"
#include "tests/testing/test_status.h"

namespace nighfs::fs {
namespace {

TEST(MountOptionsTest, MountHelperForm) {
  auto o = ParseMountArgs({"scratch@10.0.0.5:7420", "/mnt/s", "-n", "-o",
                           "rw,_netdev,nosuid,noatime,attr_timeout=2.5,cache_size=64,credentials=/c"});
  ASSERT_OK(o);
  EXPECT_EQ(o->volume, "scratch");
  EXPECT_EQ(o->meta_address, "10.0.0.5:7420");
  EXPECT_EQ(o->mount_point, "/mnt/s");
  EXPECT_FALSE(o->foreground);
  EXPECT_EQ(o->fs.attr_timeout, absl::Milliseconds(2500));
  EXPECT_EQ(o->fs.cache_bytes, 64u << 20);
  EXPECT_EQ(o->credentials_file, "/c");
  EXPECT_TRUE(o->credentials_given);
  EXPECT_EQ(o->kernel_options, (std::vector<std::string>{"nosuid", "noatime"}));
}

TEST(MountOptionsTest, UrlFormAndDefaults) {
  auto o = ParseMountArgs({"nighfs://meta.example/vol/", "/m", "-f"});
  ASSERT_OK(o);
  EXPECT_EQ(o->volume, "vol");
  EXPECT_EQ(o->meta_address, "meta.example:7420");
  EXPECT_TRUE(o->foreground);
  EXPECT_TRUE(o->allow_other);
  EXPECT_FALSE(o->credentials_given);
}

TEST(MountOptionsTest, InlineMax) {
  auto dflt = ParseMountArgs({"v@h:1", "/m"});
  ASSERT_OK(dflt);
  EXPECT_EQ(dflt->fs.inline_max_bytes, kInlineFromServer);
  EXPECT_EQ(ResolveInlineMax(dflt->fs.inline_max_bytes, 4096), 4096u) << "the server's limit";
  auto off = ParseMountArgs({"v@h:1", "/m", "-o", "inline_max=0"});
  ASSERT_OK(off);
  EXPECT_EQ(ResolveInlineMax(off->fs.inline_max_bytes, 4096), 0u);
  auto less = ParseMountArgs({"v@h:1", "/m", "-o", "inline_max=1000"});
  ASSERT_OK(less);
  EXPECT_EQ(ResolveInlineMax(less->fs.inline_max_bytes, 4096), 1000u);
  EXPECT_EQ(ResolveInlineMax(less->fs.inline_max_bytes, 0), 0u) << "the server keeps none";
  auto more = ParseMountArgs({"v@h:1", "/m", "-o", "inline_max=100000"});
  ASSERT_OK(more);
  EXPECT_EQ(ResolveInlineMax(more->fs.inline_max_bytes, 4096), 4096u) << "never over the server's";
  for (const char* bad : {"inline_max", "inline_max=", "inline_max=-1", "inline_max=4k",
                          "inline_max=4294967295", "inline_max=99999999999"}) {
    EXPECT_FALSE(ParseMountArgs({"v@h:1", "/m", "-o", bad}).ok()) << bad;
  }
}

TEST(MountOptionsTest, TokenFile) {
  auto o = ParseMountArgs({"v@h:1", "/m", "-o", "token_file=/etc/nighfs/v.token,ro"});
  ASSERT_OK(o);
  EXPECT_EQ(o->token_file, "/etc/nighfs/v.token");
  EXPECT_TRUE(o->read_only);
  EXPECT_FALSE(ParseMountArgs({"v@h:1", "/m", "-o", "token_file"}).ok()) << "needs a value";
  auto none = ParseMountArgs({"v@h:1", "/m"});
  ASSERT_OK(none);
  EXPECT_TRUE(none->token_file.empty());
}

TEST(MountOptionsTest, Proxy) {
  auto none = ParseMountArgs({"v@h:1", "/m"});
  ASSERT_OK(none);
  EXPECT_EQ(none->proxy, "");  // straight to the object store
  auto o = ParseMountArgs(
      {"v@h:1", "/m", "-o", "proxy=p1.example:7430,token_file=/t,ca_file=/etc/nighfs/ca.pem"});
  ASSERT_OK(o);
  EXPECT_EQ(o->proxy, "p1.example:7430");
  EXPECT_EQ(o->token_file, "/t");
  EXPECT_EQ(o->ca_file, "/etc/nighfs/ca.pem");
  auto plain = ParseMountArgs({"v@h:1", "/m", "-o", "proxy=http://127.0.0.1:7430"});
  ASSERT_OK(plain);
  EXPECT_EQ(plain->proxy, "http://127.0.0.1:7430");
  for (const char* bad : {"proxy", "proxy=", "proxy=h:99999", "proxy=h:1/x", "proxy=ftp://h:1",
                          "proxy=me@h:1"}) {
    auto r = ParseMountArgs({"v@h:1", "/m", "-o", bad});
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("proxy"), std::string::npos) << bad;
    }
  }
}

TEST(MountOptionsTest, WritebackRetryOptions) {
  auto d = ParseMountArgs({"vol@h:1", "/m"});
  ASSERT_OK(d);
  EXPECT_EQ(d->fs.flush_timeout, absl::Seconds(300));
  EXPECT_EQ(d->fs.retry_max_backoff, absl::Seconds(30));
  EXPECT_EQ(d->fs.spill_dir, "");
  auto o = ParseMountArgs({"vol@h:1", "/m", "-o", "flush_timeout=7,retry_max=0.2,spill_dir=/var/s"});
  ASSERT_OK(o);
  EXPECT_EQ(o->fs.flush_timeout, absl::Seconds(7));
  EXPECT_EQ(o->fs.retry_max_backoff, absl::Milliseconds(200));
  EXPECT_LE(o->fs.retry_initial_backoff, absl::Milliseconds(200));
  EXPECT_EQ(o->fs.spill_dir, "/var/s");
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "retry_max=0"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "flush_timeout=x"}).ok());
}

TEST(MountOptionsTest, ProxyGroupProbeOptions) {
  auto d = ParseMountArgs({"vol@h:1", "/m"});
  ASSERT_OK(d);
  EXPECT_EQ(d->probe_interval, absl::Seconds(1));
  EXPECT_EQ(d->probe_timeout, absl::Milliseconds(500));
  EXPECT_EQ(d->route_deadline, absl::Seconds(60));
  auto o = ParseMountArgs(
      {"vol@h:1", "/m", "-o", "probe_interval=0.2,probe_timeout=0.1,route_deadline=9"});
  ASSERT_OK(o);
  EXPECT_EQ(o->probe_interval, absl::Milliseconds(200));
  EXPECT_EQ(o->probe_timeout, absl::Milliseconds(100));
  EXPECT_EQ(o->route_deadline, absl::Seconds(9));
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "probe_interval=0"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "probe_timeout=-1"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "route_deadline=x"}).ok());
}

TEST(MountOptionsTest, CaFileIsMadeAbsoluteAndPlainHttpAddressesAreKept) {
  absl::StatusOr<MountOptions> o =
      ParseMountArgs({"vol@http://10.0.0.5:7420", "/mnt/v", "-o", "ca_file=tls/ca.pem"});
  ASSERT_OK(o);
  EXPECT_EQ(o->meta_address, "http://10.0.0.5:7420");
  EXPECT_EQ(o->ca_file, std::filesystem::current_path().string() + "/tls/ca.pem");
  o = ParseMountArgs({"vol@10.0.0.5", "/mnt/v", "-o", "ca_file=/etc/nighfs/ca.pem"});
  ASSERT_OK(o);
  EXPECT_EQ(o->meta_address, "10.0.0.5:7420");
  EXPECT_EQ(o->ca_file, "/etc/nighfs/ca.pem");
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/mnt/v", "-o", "ca_file="}).ok());
}

TEST(MountOptionsTest, BadInputNamesTheProblem) {
  auto o = ParseMountArgs({"vol@h:1", "/m", "-o", "cache_sise=5"});
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("cache_sise"), absl::string_view::npos);
  EXPECT_FALSE(ParseMountArgs({"novolume", "/m"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "attr_timeout=-1"}).ok());
  EXPECT_FALSE(ParseMountArgs({"vol@h:1", "/m", "-o", "credentials"}).ok());
}

}  // namespace
}  // namespace nighfs::fs
