// FormatRoutingStatus (proxyselect.h).
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "proxyselect/proxyselect.h"

namespace nighfs::proxyselect {
namespace {

std::string Ms(absl::Duration d) {
  if (d < absl::Milliseconds(1)) return absl::StrFormat("%.0f us", absl::ToDoubleMicroseconds(d));
  return absl::StrFormat("%.2f ms", absl::ToDoubleMilliseconds(d));
}

std::string Bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return absl::StrFormat("%.1f GiB", b / double(1 << 30));
  if (b >= (uint64_t{1} << 20)) return absl::StrFormat("%.1f MiB", b / double(1 << 20));
  if (b >= (uint64_t{1} << 10)) return absl::StrFormat("%.1f KiB", b / double(1 << 10));
  return absl::StrCat(b, " B");
}

std::string Counters(const RouteCounters& c) {
  if (c.requests == 0) return "no requests";
  return absl::StrCat(c.requests, " req, ", Bytes(c.bytes), ", ", c.errors, " err, p50 ",
                      Ms(c.p50), ", p99 ", Ms(c.p99));
}

}  // namespace

std::string FormatRoutingStatus(const RoutingSnapshot& s) {
  std::string out;
  if (!s.selected_group.empty()) {
    absl::StrAppend(&out, "route:    proxy group ", s.selected_group, ": ", s.selected_why, "\n");
  } else {
    absl::StrAppend(&out, "route:    ",
                    s.direct_configured ? "DIRECT to the object store" : "NONE (no direct store)",
                    ": ", s.selected_why, "\n");
  }
  absl::StrAppend(&out, "direct:   ", s.direct_why);
  if (s.direct_configured) absl::StrAppend(&out, " [", Counters(s.direct_counters), "]");
  absl::StrAppend(&out, "\n");
  for (const GroupStatus& g : s.groups) {
    absl::StrAppend(&out, "group ", g.name, ": ", g.healthy ? "healthy" : "UNHEALTHY",
                    g.measured ? absl::StrCat(", rtt ", Ms(g.rtt)) : g.healthy ? ", not measured yet" : "",
                    g.name == s.selected_group ? "  <- selected" : "",
                    g.healthy ? "" : absl::StrCat(" (", g.why, ")"), "\n");
    for (const MemberStatus& m : g.members) {
      absl::StrAppend(&out, "  ", m.address, "  ", m.healthy ? "ok" : "EJECTED",
                      m.measured ? absl::StrCat("  rtt last ", Ms(m.last_rtt), " smoothed ",
                                                Ms(m.smoothed_rtt))
                                 : "  not measured",
                      "  [", Counters(m.counters), "]",
                      m.healthy ? "" : absl::StrCat("  ", m.why), "\n");
    }
  }
  if (!s.switches.empty()) absl::StrAppend(&out, "switches (oldest first):\n");
  const char* none = s.direct_configured ? "direct" : "none";
  for (const SwitchRecord& w : s.switches) {
    absl::StrAppend(&out, "  ", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", w.time, absl::UTCTimeZone()),
                    "  ", w.from.empty() ? none : w.from, " -> ", w.to.empty() ? none : w.to,
                    ": ", w.reason, "\n");
  }
  return out;
}

}  // namespace nighfs::proxyselect
