#include "tools/render.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tools/table.h"

namespace nighfs::tools {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  EXPECT_FALSE(lines.empty());
  EXPECT_EQ(lines.back(), "") << "output must end with a newline";
  lines.pop_back();
  return lines;
}

TEST(TableTest, AlignsColumnsWithTwoSpaces) {
  Table t({"NAME", "ID", "STORE"});
  t.AddRow({"scratch", "1", "file:///srv/a"});
  t.AddRow({"x", "12345", "s3://b"});
  EXPECT_THAT(Lines(t.Render()), ElementsAre("NAME     ID     STORE",
                                             "scratch  1      file:///srv/a",
                                             "x        12345  s3://b"));
}

TEST(TableTest, NoTrailingSpacesAndShortRowsArePadded) {
  Table t({"A", "B", "C"});
  t.AddRow({"long value", ""});
  t.AddRow({"x", "y", ""});
  for (const std::string& line : Lines(t.Render())) {
    ASSERT_FALSE(line.empty());
    EXPECT_NE(line.back(), ' ') << "'" << line << "'";
  }
  EXPECT_THAT(Lines(t.Render()),
              ElementsAre("A           B  C", "long value", "x           y"));
}

TEST(TableTest, IndentsEveryLine) {
  Table t({"K", "V"});
  t.AddRow({"a", "b"});
  EXPECT_THAT(Lines(t.Render(2)), ElementsAre("  K  V", "  a  b"));
}

TEST(TableTest, ReplacesControlCharactersSoRowsStayOneLine) {
  Table t({"NAME", "REASON"});
  t.AddRow({"a\nb", "bad\x1b[31mred\ttab"});
  EXPECT_THAT(Lines(t.Render()),
              ElementsAre("NAME  REASON", "a?b   bad?[31mred?tab"));
}

TEST(TableTest, MeasuresUtf8ByCodePoint) {
  Table t({"N", "X"});
  t.AddRow({"\xc3\xa9t\xc3\xa9", "1"});  // "été": 3 code points, 5 bytes
  t.AddRow({"abcd", "2"});
  EXPECT_THAT(Lines(t.Render()),
              ElementsAre("N     X", "\xc3\xa9t\xc3\xa9   1", "abcd  2"));
}

TEST(FormatTest, Durations) {
  EXPECT_EQ(HumanDuration(absl::Seconds(-5)), "0s");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(300)), "0s");
  EXPECT_EQ(HumanDuration(absl::Seconds(42)), "42s");
  EXPECT_EQ(HumanDuration(absl::Seconds(5 * 60 + 12)), "5m 12s");
  EXPECT_EQ(HumanDuration(absl::Hours(2) + absl::Minutes(3) + absl::Seconds(9)), "2h 3m");
  EXPECT_EQ(HumanDuration(absl::Hours(76)), "3d 4h");
}

TEST(FormatTest, RoundTripTimes) {
  EXPECT_EQ(FormatRtt(0), "-");
  EXPECT_EQ(FormatRtt(850), "850 us");
  EXPECT_EQ(FormatRtt(1234), "1.2 ms");
  EXPECT_EQ(FormatRtt(12'000'000), "12.0 s");
}

meta::v1::Volume MakeVolume(const std::string& name, uint64_t id, uint32_t block_size,
                            const std::string& store) {
  meta::v1::Volume v;
  v.set_name(name);
  v.set_id(id);
  v.set_block_size(block_size);
  v.set_store_url(store);
  v.set_created_ns(1'700'000'000'000'000'000);
  return v;
}

TEST(RenderVolumesTest, TableIsSortedByNameWithHumanSizes) {
  std::vector<meta::v1::Volume> volumes = {
      MakeVolume("scratch", 2, 4 << 20, "file:///srv/scratch"),
      MakeVolume("archive", 1, 64 << 10, "s3://bucket/archive?region=eu-west-1"),
  };
  EXPECT_THAT(Lines(RenderVolumeTable(volumes)),
              ElementsAre("NAME     ID  BLOCK-SIZE  STORE",
                          "archive  1   64 KiB      s3://bucket/archive?region=eu-west-1",
                          "scratch  2   4 MiB       file:///srv/scratch"));
}

TEST(RenderVolumesTest, EmptyListSaysSo) {
  EXPECT_EQ(RenderVolumeTable({}), "no volumes\n");
}

TEST(RenderVolumesTest, JsonParsesBackToTheSameVolumes) {
  std::vector<meta::v1::Volume> volumes = {MakeVolume("a", 7, 1 << 20, "file:///x")};
  const std::string json = RenderVolumesJson(volumes);
  meta::v1::ListVolumesResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok()) << json;
  ASSERT_EQ(back.volumes_size(), 1);
  EXPECT_EQ(back.volumes(0).SerializeAsString(), volumes[0].SerializeAsString());
  // Scripts can rely on every field being present, even zero ones.
  EXPECT_THAT(RenderVolumesJson({MakeVolume("z", 0, 0, "")}), HasSubstr("\"block_size\": 0"));
  EXPECT_THAT(RenderVolumesJson({}), HasSubstr("\"volumes\": []"));
}

TEST(RenderVolumesTest, CreatedVolumeShowsNameIdSizeAndStore) {
  const std::string text = RenderCreatedVolume(MakeVolume("scratch", 3, 4 << 20, "file:///b"));
  EXPECT_THAT(text, HasSubstr("created volume scratch\n"));
  EXPECT_THAT(text, HasSubstr("id:"));
  EXPECT_THAT(text, HasSubstr("4 MiB (4194304 bytes)"));
  EXPECT_THAT(text, HasSubstr("file:///b"));
}

status::v1::MountStatus SampleStatus(absl::Time now) {
  status::v1::MountStatus s;
  s.set_mount_point("/mnt/scratch");
  s.set_volume("scratch");
  s.set_volume_id(3);
  s.set_meta_address("10.0.0.5:7420");
  s.set_store_url("s3://bucket/scratch");
  s.set_block_size(4 << 20);
  s.set_session_id(42);
  s.set_pid(1234);
  s.set_started_ns(absl::ToUnixNanos(now - absl::Hours(2) - absl::Minutes(3)));
  s.set_updated_ns(absl::ToUnixNanos(now - absl::Seconds(3)));
  s.set_meta_reachable(true);
  s.set_version("0.1.0");
  auto* direct = s.add_routes();
  direct->set_name("direct");
  direct->set_kind("store");
  direct->set_target("s3://bucket/scratch");
  direct->set_healthy(true);
  direct->set_selected(false);
  direct->set_rtt_us(48'000);
  direct->set_reason("slower than proxy rack-a");
  auto* proxy = s.add_routes();
  proxy->set_name("rack-a");
  proxy->set_kind("proxy");
  proxy->set_target("10.0.0.9:7430");
  proxy->set_healthy(true);
  proxy->set_selected(true);
  proxy->set_rtt_us(900);
  proxy->set_reason("lowest RTT");
  auto* st = s.mutable_stats();
  st->set_block_cache_hits(935);
  st->set_block_cache_misses(65);
  st->set_block_cache_bytes(412ull << 20);
  st->set_dirty_bytes(3 << 20);
  st->set_bytes_read(5ull << 30);
  st->set_read_ops(3456);
  st->set_bytes_written(1536);
  st->set_write_ops(2);
  st->set_blocks_uploaded(17);
  st->set_bytes_uploaded(17ull << 20);
  st->set_block_fetches(3);
  st->set_range_fetches(40);
  st->set_bytes_fetched(14ull << 20);
  st->set_block_upload_errors(1);
  st->set_meta_calls(4567);
  st->set_meta_errors(2);
  st->set_deferred_attrs(120);
  st->set_checksum_mismatches(0);
  return s;
}

TEST(RenderMountStatusTest, ShowsIdentityRoutesAndStats) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  MetaProbe probe;
  probe.result = MetaProbe::Result::kHealthy;
  probe.latency = absl::Microseconds(2100);
  const std::string text = RenderMountStatus(SampleStatus(now), probe, now);
  const std::vector<std::string> lines = Lines(text);
  EXPECT_EQ(lines[0], "/mnt/scratch");
  EXPECT_THAT(text, HasSubstr("volume:"));
  EXPECT_THAT(text, HasSubstr("scratch (id 3)"));
  EXPECT_THAT(text, HasSubstr("10.0.0.5:7420"));
  EXPECT_THAT(text, HasSubstr("from here:       reachable (2.1 ms)"));
  EXPECT_THAT(text, HasSubstr("from the mount:  reachable"));
  EXPECT_THAT(text, HasSubstr("session:           42"));
  EXPECT_THAT(text, HasSubstr("uptime:            2h 3m"));
  EXPECT_THAT(text, HasSubstr("block size:        4 MiB"));
  EXPECT_THAT(text, HasSubstr("store:             s3://bucket/scratch"));
  EXPECT_THAT(text, HasSubstr("status updated:    3s ago\n"));
  // The routing table: every route with why it is or is not used.
  EXPECT_THAT(text, HasSubstr(
      "  NAME    KIND   TARGET               HEALTHY  SELECTED  RTT      REASON\n"
      "  direct  store  s3://bucket/scratch  yes      no        48.0 ms  slower than proxy rack-a\n"
      "  rack-a  proxy  10.0.0.9:7430        yes      yes       900 us   lowest RTT\n"));
  EXPECT_THAT(text, HasSubstr("cache hit ratio:      93.5% (935 hits, 65 misses)"));
  EXPECT_THAT(text, HasSubstr("cached:               412 MiB"));
  EXPECT_THAT(text, HasSubstr("dirty:                3 MiB"));
  EXPECT_THAT(text, HasSubstr("read:                 5 GiB in 3456 ops"));
  EXPECT_THAT(text, HasSubstr("written:              1.5 KiB in 2 ops"));
  EXPECT_THAT(text, HasSubstr("upload errors:        1"));
  EXPECT_THAT(text, HasSubstr("blocks uploaded:      17 (17 MiB)"));
  EXPECT_THAT(text, HasSubstr("fetched:              14 MiB in 3 whole blocks and 40 ranges"));
  EXPECT_THAT(text, HasSubstr("metadata calls:       4567 (2 errors)"));
  EXPECT_THAT(text, HasSubstr("attrs with commits:   120 (chmod/chown/utimes sent with"));
  EXPECT_THAT(text, HasSubstr("checksum mismatches:  0"));
  EXPECT_THAT(text, Not(HasSubstr("may be hung")));
}

TEST(RenderMountStatusTest, ReportsUnreachableServerBothWays) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  s.set_meta_reachable(false);
  s.set_last_meta_error("connection refused");
  MetaProbe probe;
  probe.result = MetaProbe::Result::kUnreachable;
  probe.detail = "Couldn't connect to server";
  const std::string text = RenderMountStatus(s, probe, now);
  EXPECT_THAT(text, HasSubstr("from here:       UNREACHABLE: Couldn't connect to server"));
  EXPECT_THAT(text, HasSubstr("from the mount:  UNREACHABLE: connection refused"));

  probe.result = MetaProbe::Result::kUnhealthy;
  probe.detail = "HTTP 503: draining";
  EXPECT_THAT(RenderMountStatus(s, probe, now),
              HasSubstr("reachable but unhealthy: HTTP 503: draining"));
}

TEST(RenderMountStatusTest, SaysWhenNamesAreDurable) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now),
              HasSubstr("names durable:   at each change's reply\n"));
  s.set_namespace_sync_ms(250);
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now),
              HasSubstr("names durable:   within 250ms, at data commits and fsync "
                        "(nighfs-meta --namespace-sync=batched)\n"));
}

TEST(RenderMountStatusTest, FlagsAStatusFileThatIsNoLongerRefreshed) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  s.set_updated_ns(absl::ToUnixNanos(now - absl::Minutes(2)));
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now),
              HasSubstr("2m 0s ago (not refreshed lately: the mount daemon may be hung)"));
}

// Issue 10: status said a store was healthy while every upload failed. A route shows what the
// mount's own requests found: counts, recent failures, the last error and when.
TEST(RenderMountStatusTest, RouteShowsRequestsErrorsAndTheLastError) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  auto* direct = s.mutable_routes(0);
  direct->set_healthy(false);
  direct->set_requests(120);
  direct->set_errors(7);
  direct->set_errors_last_minute(5);
  direct->set_last_error("UNAVAILABLE: S3 PUT blk/01/x: connection refused");
  direct->set_last_error_ns(absl::ToUnixNanos(now - absl::Seconds(4)));
  direct->set_last_success_ns(absl::ToUnixNanos(now - absl::Minutes(2) - absl::Seconds(5)));
  const std::string text = RenderMountStatus(s, MetaProbe(), now);
  EXPECT_THAT(text, HasSubstr("  direct  store  s3://bucket/scratch  no "));
  EXPECT_THAT(text, HasSubstr("  direct: 120 requests, 7 errors (5 in the last minute); "
                              "last success 2m 5s ago\n"
                              "    last error 4s ago: UNAVAILABLE: S3 PUT blk/01/x: "
                              "connection refused\n"));
  // A route that never failed has no error line; one without traffic no counter line at all.
  EXPECT_THAT(text, Not(HasSubstr("rack-a: ")));
  direct->clear_last_error();
  direct->set_last_success_ns(0);
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now),
              AllOf(HasSubstr("last success never\n"), Not(HasSubstr("last error"))));
}

// Proxy groups (issue 13): the mount's own routing text, indented under a heading with the
// configuration in use; nothing of it recomputed here.
TEST(RenderMountStatusTest, ProxyGroupsShowTheMountsRoutingText) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now), Not(HasSubstr("PROXY GROUPS")));
  status::v1::Routing* r = s.mutable_routing();
  r->set_routes_version(4);
  r->set_probe_interval_us(1'000'000);
  r->set_probe_timeout_us(500'000);
  r->set_text("route:    proxy group 1 onprem/dc1: lowest RTT\n"
              "group 1 onprem/dc1: healthy, rtt 1.02 ms  <- selected\n"
              "  p1:7430  ok  rtt last 1.01 ms smoothed 1.02 ms  [no requests]\n");
  std::string text = RenderMountStatus(s, MetaProbe(), now);
  EXPECT_THAT(text, HasSubstr("\n  PROXY GROUPS (routes version 4, probe every 1s, timeout 500ms)\n"
                              "  route:    proxy group 1 onprem/dc1: lowest RTT\n"
                              "  group 1 onprem/dc1: healthy, rtt 1.02 ms  <- selected\n"
                              "    p1:7430  ok  rtt last 1.01 ms smoothed 1.02 ms  [no requests]\n"));
  EXPECT_THAT(text, Not(HasSubstr("refresh FAILED")));
  (void)Lines(text);
  r->set_last_refresh_error("UNAVAILABLE: meta down");
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now),
              HasSubstr("  configuration refresh FAILED (the last routes stay in use): "
                        "UNAVAILABLE: meta down\n"));
}

TEST(RenderMountStatusTest, NoRoutesAndNoCacheTrafficAreSaidPlainly) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  s.clear_routes();
  s.clear_stats();
  const std::string text = RenderMountStatus(s, MetaProbe(), now);
  EXPECT_THAT(text, HasSubstr("ROUTES\n  (none reported)\n"));
  EXPECT_THAT(text, HasSubstr("cache hit ratio:      n/a (0 hits, 0 misses)"));
}

TEST(RenderMountStatusTest, ShowsMemoryByKindAndWhatIsPending) {
  const absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  status::v1::MountStatus s = SampleStatus(now);
  EXPECT_THAT(RenderMountStatus(s, MetaProbe(), now), Not(HasSubstr("PENDING")));
  auto* m = s.mutable_memory();
  m->set_rss_bytes(300ull << 20);
  m->set_budget_bytes(768ull << 20);
  m->set_cache_bytes(200ull << 20);
  m->set_dirty_bytes(64ull << 20);
  m->set_uploading_bytes(16ull << 20);
  s.mutable_stats()->set_pending_files(1);
  s.mutable_stats()->set_pending_bytes(5 << 20);
  auto* f = s.add_pending();
  f->set_ino(42);
  f->set_bytes(5 << 20);
  f->set_since_ns(absl::ToUnixNanos(now - absl::Seconds(75)));
  f->set_attempts(6);
  f->set_next_attempt_ns(absl::ToUnixNanos(now + absl::Seconds(8)));
  f->set_last_error("store unreachable");
  const std::string text = RenderMountStatus(s, MetaProbe(), now);
  EXPECT_THAT(text, HasSubstr("MEMORY\n"));
  EXPECT_THAT(text, HasSubstr("resident:"));
  EXPECT_THAT(text, HasSubstr("budget 768"));
  EXPECT_THAT(text, HasSubstr("(16"));
  EXPECT_THAT(text, HasSubstr("PENDING"));
  EXPECT_THAT(text, HasSubstr("1 file(s)"));
  EXPECT_THAT(text, HasSubstr("1m 15s"));
  EXPECT_THAT(text, HasSubstr("in 8s"));
  EXPECT_THAT(text, HasSubstr("store unreachable"));
}

}  // namespace
}  // namespace nighfs::tools
