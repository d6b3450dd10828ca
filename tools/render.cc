#include "tools/render.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/util/json_util.h"
#include "tools/size.h"
#include "tools/table.h"

namespace nighfs::tools {
namespace {

// "  key:    value" lines with the values aligned.
class KeyValues {
 public:
  explicit KeyValues(int indent) : indent_(indent) {}
  void Add(std::string key, std::string value) {
    rows_.emplace_back(std::move(key), Printable(std::move(value)));
  }
  std::string Render() const {
    size_t width = 0;
    for (const auto& [k, v] : rows_) width = std::max(width, k.size() + 1);
    std::string out;
    for (const auto& [k, v] : rows_) {
      std::string line(static_cast<size_t>(indent_), ' ');
      absl::StrAppend(&line, k, ":", std::string(width - k.size() - 1 + 2, ' '), v);
      while (!line.empty() && line.back() == ' ') line.pop_back();
      absl::StrAppend(&out, line, "\n");
    }
    return out;
  }

 private:
  int indent_;
  std::vector<std::pair<std::string, std::string>> rows_;
};

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string FormatTime(int64_t unix_ns) {
  if (unix_ns <= 0) return "unknown";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::FromUnixNanos(unix_ns),
                          absl::LocalTimeZone());
}

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "n/a";
  return absl::StrFormat("%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

std::string BytesWithExact(uint64_t bytes) {
  if (bytes < 1024) return FormatBytes(bytes);
  return absl::StrCat(FormatBytes(bytes), " (", bytes, " bytes)");
}

// What the mount's own requests found on a route, under the routes table:
//   direct: 120 requests, 3 errors (3 in the last minute); last success 2m 5s ago
//     last error 1s ago: UNAVAILABLE: S3 PUT ...: connection refused
std::string RenderRouteHealth(const status::v1::Route& r, absl::Time now) {
  if (r.requests() == 0 && r.errors() == 0 && r.last_error().empty()) return "";
  auto ago = [&](int64_t ns) {
    return ns > 0 ? absl::StrCat(HumanDuration(now - absl::FromUnixNanos(ns)), " ago")
                  : std::string("never");
  };
  std::string out = absl::StrCat("  ", Printable(r.name()), ": ", r.requests(), " requests, ",
                                 r.errors(), " errors (", r.errors_last_minute(),
                                 " in the last minute); last success ", ago(r.last_success_ns()),
                                 "\n");
  if (!r.last_error().empty()) {
    absl::StrAppend(&out, "    last error ", ago(r.last_error_ns()), ": ",
                    Printable(r.last_error()), "\n");
  }
  return out;
}

}  // namespace

std::string HumanDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) return "0s";
  int64_t s = absl::ToInt64Seconds(d);
  const int64_t days = s / 86400;
  const int64_t hours = (s / 3600) % 24;
  const int64_t minutes = (s / 60) % 60;
  const int64_t seconds = s % 60;
  if (days > 0) return absl::StrCat(days, "d ", hours, "h");
  if (hours > 0) return absl::StrCat(hours, "h ", minutes, "m");
  if (minutes > 0) return absl::StrCat(minutes, "m ", seconds, "s");
  return absl::StrCat(seconds, "s");
}

std::string FormatRtt(int64_t rtt_us) {
  if (rtt_us <= 0) return "-";
  if (rtt_us < 1000) return absl::StrCat(rtt_us, " us");
  if (rtt_us < 10'000'000) return absl::StrFormat("%.1f ms", static_cast<double>(rtt_us) / 1000.0);
  return absl::StrFormat("%.1f s", static_cast<double>(rtt_us) / 1e6);
}

std::string MetaTransport(std::string_view url, std::string_view ca_file) {
  if (url.substr(0, 8) == "https://") {
    return ca_file.empty() ? std::string("TLS (verified, system CA store)")
                           : absl::StrCat("TLS (verified, CA file ", Printable(std::string(ca_file)),
                                          ")");
  }
  return "PLAINTEXT (insecure)";
}

std::string RenderCreatedVolume(const meta::v1::Volume& volume) {
  KeyValues kv(2);
  kv.Add("id", absl::StrCat(volume.id()));
  kv.Add("block size", BytesWithExact(volume.block_size()));
  kv.Add("store", volume.store_url());
  kv.Add("created", FormatTime(volume.created_ns()));
  return absl::StrCat("created volume ", Printable(volume.name()), "\n", kv.Render());
}

std::string RenderVolumeTable(const std::vector<meta::v1::Volume>& volumes) {
  if (volumes.empty()) return "no volumes\n";
  std::vector<const meta::v1::Volume*> sorted;
  for (const auto& v : volumes) sorted.push_back(&v);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name() < b->name(); });
  Table table({"NAME", "ID", "BLOCK-SIZE", "STORE"});
  for (const auto* v : sorted) {
    table.AddRow({v->name(), absl::StrCat(v->id()), FormatBytes(v->block_size()), v->store_url()});
  }
  return table.Render();
}

std::string ListJson(const google::protobuf::Message& list) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a message this program built cannot fail.
  (void)google::protobuf::util::MessageToJsonString(list, &json, options);
  if (json.empty() || json.back() != '\n') json += '\n';
  return json;
}

std::string RenderVolumesJson(const std::vector<meta::v1::Volume>& volumes) {
  meta::v1::ListVolumesResponse list;
  for (const auto& v : volumes) *list.add_volumes() = v;
  return ListJson(list);
}

namespace {

std::string AccessName(meta::v1::Access a) {
  switch (a) {
    case meta::v1::ACCESS_READ: return "read";
    case meta::v1::ACCESS_WRITE: return "write";
    case meta::v1::ACCESS_PROXY: return "proxy";
    default: return "?";
  }
}

// A proxy token is bound to no volume.
std::string TokenVolume(const meta::v1::Token& t) {
  return t.access() == meta::v1::ACCESS_PROXY ? std::string("(proxy)") : t.volume();
}

std::string Expiry(int64_t expires_ns) {
  return expires_ns == 0 ? std::string("never") : FormatTime(expires_ns);
}

}  // namespace

std::string RenderCreatedToken(const meta::v1::Token& t) {
  KeyValues kv(2);
  kv.Add("id", absl::StrCat(t.id()));
  if (!t.name().empty()) kv.Add("name", t.name());
  kv.Add("volume", TokenVolume(t));
  kv.Add("access", AccessName(t.access()));
  kv.Add("subtree", t.path().empty() ? std::string("/") : t.path());
  kv.Add("expires", Expiry(t.expires_ns()));
  return absl::StrCat("created token ", t.id(), "\n", kv.Render());
}

std::string RenderTokenTable(const std::vector<meta::v1::Token>& tokens) {
  if (tokens.empty()) return "no tokens\n";
  Table table({"ID", "NAME", "VOLUME", "ACCESS", "SUBTREE", "CREATED", "EXPIRES"});
  for (const auto& t : tokens) {
    table.AddRow({absl::StrCat(t.id()), t.name(), TokenVolume(t), AccessName(t.access()),
                  t.path().empty() ? std::string("/") : t.path(), FormatTime(t.created_ns()),
                  Expiry(t.expires_ns())});
  }
  return table.Render();
}

std::string RenderTokensJson(const std::vector<meta::v1::Token>& tokens) {
  meta::v1::ListTokensResponse list;
  for (const auto& t : tokens) *list.add_tokens() = t;
  return ListJson(list);
}

namespace {

// The proxy groups of a mount (issue 13): the mount's own words (its RoutingStore snapshot as
// proxyselect::FormatRoutingStatus wrote it), indented under a heading with the configuration.
std::string RenderRouting(const status::v1::Routing& r) {
  std::string out = absl::StrCat(
      "\n  PROXY GROUPS (routes version ", r.routes_version(), ", probe every ",
      absl::FormatDuration(absl::Microseconds(r.probe_interval_us())), ", timeout ",
      absl::FormatDuration(absl::Microseconds(r.probe_timeout_us())), ")\n");
  if (!r.last_refresh_error().empty()) {
    absl::StrAppend(&out, "  configuration refresh FAILED (the last routes stay in use): ",
                    r.last_refresh_error(), "\n");
  }
  for (absl::string_view line : absl::StrSplit(r.text(), '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

}  // namespace

std::string RenderMountStatus(const status::v1::MountStatus& s, const MetaProbe& probe,
                              absl::Time now) {
  std::string out = absl::StrCat(Printable(s.mount_point()), "\n");

  KeyValues kv(2);
  kv.Add("volume", absl::StrCat(s.volume(), " (id ", s.volume_id(), ")"));
  kv.Add("metadata server", s.meta_url().empty() ? s.meta_address() : s.meta_url());
  if (!s.meta_url().empty()) kv.Add("  transport", MetaTransport(s.meta_url(), s.meta_ca_file()));
  switch (probe.result) {
    case MetaProbe::Result::kHealthy:
      kv.Add("  from here", absl::StrCat("reachable (", FormatRtt(absl::ToInt64Microseconds(
                                                          probe.latency)),
                                         ")"));
      break;
    case MetaProbe::Result::kUnhealthy:
      kv.Add("  from here", absl::StrCat("reachable but unhealthy: ", probe.detail));
      break;
    case MetaProbe::Result::kUnreachable:
      kv.Add("  from here", absl::StrCat("UNREACHABLE: ", probe.detail));
      break;
  }
  if (s.meta_reachable()) {
    kv.Add("  from the mount", "reachable");
  } else {
    kv.Add("  from the mount",
           s.last_meta_error().empty()
               ? std::string("UNREACHABLE (operations wait, then fail with EIO)")
               : absl::StrCat("UNREACHABLE: ", s.last_meta_error()));
  }
  kv.Add("  names durable",
         s.namespace_sync_ms() == 0
             ? std::string("at each change's reply")
             : absl::StrCat("within ", absl::FormatDuration(absl::Milliseconds(s.namespace_sync_ms())),
                            ", at data commits and fsync (nighfs-meta --namespace-sync=batched)"));
  kv.Add("session", absl::StrCat(s.session_id()));
  if (!s.token_access().empty()) {
    kv.Add("token", absl::StrCat(s.token_access(), " access, subtree ",
                                 s.token_path().empty() ? std::string("/") : s.token_path()));
  }
  kv.Add("mount pid", absl::StrCat(s.pid()));
  kv.Add("uptime", s.started_ns() > 0
                       ? HumanDuration(now - absl::FromUnixNanos(s.started_ns()))
                       : std::string("unknown"));
  kv.Add("block size", FormatBytes(s.block_size()));
  kv.Add("store", s.store_url());
  if (!s.version().empty()) kv.Add("version", s.version());
  if (s.updated_ns() > 0) {
    const absl::Duration age = now - absl::FromUnixNanos(s.updated_ns());
    std::string updated = absl::StrCat(HumanDuration(age), " ago");
    if (age > kStatusStaleAfter) {
      absl::StrAppend(&updated, " (not refreshed lately: the mount daemon may be hung)");
    }
    kv.Add("status updated", updated);
  }
  absl::StrAppend(&out, kv.Render());

  absl::StrAppend(&out, "\n  ROUTES\n");
  if (s.routes().empty()) {
    absl::StrAppend(&out, "  (none reported)\n");
  } else {
    Table routes({"NAME", "KIND", "TARGET", "HEALTHY", "SELECTED", "RTT", "REASON"});
    for (const auto& r : s.routes()) {
      routes.AddRow({r.name(), r.kind(), r.target(), YesNo(r.healthy()), YesNo(r.selected()),
                     FormatRtt(r.rtt_us()), r.reason()});
    }
    absl::StrAppend(&out, routes.Render(2));
    for (const auto& r : s.routes()) absl::StrAppend(&out, RenderRouteHealth(r, now));
  }
  if (s.has_routing()) absl::StrAppend(&out, RenderRouting(s.routing()));

  const auto& st = s.stats();
  const uint64_t lookups = st.block_cache_hits() + st.block_cache_misses();
  KeyValues stats(2);
  stats.Add("cache hit ratio", absl::StrCat(Percent(st.block_cache_hits(), lookups), " (",
                                            st.block_cache_hits(), " hits, ",
                                            st.block_cache_misses(), " misses)"));
  stats.Add("cached", FormatBytes(st.block_cache_bytes()));
  stats.Add("dirty", FormatBytes(st.dirty_bytes()));
  stats.Add("read", absl::StrCat(FormatBytes(st.bytes_read()), " in ", st.read_ops(), " ops"));
  stats.Add("written",
            absl::StrCat(FormatBytes(st.bytes_written()), " in ", st.write_ops(), " ops"));
  stats.Add("blocks uploaded", absl::StrCat(st.blocks_uploaded(), " (",
                                            FormatBytes(st.bytes_uploaded()), ")"));
  stats.Add("fetched", absl::StrCat(FormatBytes(st.bytes_fetched()), " in ", st.block_fetches(),
                                    " whole blocks and ", st.range_fetches(), " ranges"));
  stats.Add("upload errors", absl::StrCat(st.block_upload_errors()));
  stats.Add("metadata calls", absl::StrCat(st.meta_calls(), " (", st.meta_errors(), " errors)"));
  stats.Add("attrs with commits", absl::StrCat(st.deferred_attrs(), " (chmod/chown/utimes sent with ",
                                               "the file's data)"));
  stats.Add("checksum mismatches", absl::StrCat(st.checksum_mismatches()));
  absl::StrAppend(&out, "\n  STATS\n", stats.Render());

  if (s.has_memory()) {
    const auto& m = s.memory();
    KeyValues mem(2);
    std::string rss = FormatBytes(m.rss_bytes());
    if (m.budget_bytes() > 0) {
      absl::StrAppend(&rss, " (budget ", FormatBytes(m.budget_bytes()),
                      " for cache and writeback)");
    }
    mem.Add("resident", rss);
    mem.Add("block cache", FormatBytes(m.cache_bytes()));
    mem.Add("dirty", absl::StrCat(FormatBytes(m.dirty_bytes()), " (",
                                  FormatBytes(m.uploading_bytes()), " uploading)"));
    mem.Add("readahead", FormatBytes(m.prefetch_bytes()));
    mem.Add("free buffers", FormatBytes(m.pool_free_bytes()));
    if (m.spilled_bytes() > 0) mem.Add("spilled to disk", FormatBytes(m.spilled_bytes()));
    mem.Add("heap", absl::StrCat(FormatBytes(m.heap_in_use_bytes()), " in use, ",
                                 FormatBytes(m.heap_free_bytes()), " free"));
    absl::StrAppend(&out, "\n  MEMORY\n", mem.Render());
  }

  if (st.pending_files() > 0 || !s.pending().empty()) {
    absl::StrAppend(&out, "\n  PENDING (not stored yet: kept and retried; unmount waits)\n");
    absl::StrAppend(&out, "  ", st.pending_files(), " file(s), ",
                    BytesWithExact(st.pending_bytes()), "\n");
    Table pending({"INODE", "BYTES", "WAITING", "ATTEMPTS", "NEXT TRY", "LAST ERROR"});
    for (const auto& f : s.pending()) {
      const absl::Duration next = absl::FromUnixNanos(f.next_attempt_ns()) - now;
      pending.AddRow({absl::StrCat(f.ino()), FormatBytes(f.bytes()),
                      f.since_ns() > 0 ? HumanDuration(now - absl::FromUnixNanos(f.since_ns()))
                                       : std::string("-"),
                      absl::StrCat(f.attempts()),
                      next > absl::ZeroDuration() ? absl::StrCat("in ", HumanDuration(next))
                                                  : std::string("now"),
                      f.last_error()});
    }
    absl::StrAppend(&out, pending.Render(2));
  }
  return out;
}

}  // namespace nighfs::tools
