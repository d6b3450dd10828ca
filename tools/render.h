// What the nighfs CLI prints: volumes and mount status as text for people (tables, sizes in
// KiB/MiB/GiB) and as JSON for scripts. Pure functions of their inputs, so tests can check the
// output without a server or a mount.
#ifndef NIGHFS_TOOLS_RENDER_H_
#define NIGHFS_TOOLS_RENDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "meta.pb.h"
#include "status.pb.h"

namespace nighfs::tools {

// "42s", "5m 12s", "2h 3m", "3d 4h". Negative durations (clock skew) read "0s".
std::string HumanDuration(absl::Duration d);

// A round-trip time given in microseconds: "850 us", "1.2 ms", "-" when 0 (not measured).
std::string FormatRtt(int64_t rtt_us);

// One style for every JSON nighfs prints: every field, and the field names of the .proto, as
// mount.nighfs uses in its status files.
std::string ListJson(const google::protobuf::Message& list);

// "created volume NAME" followed by its id, block size, store and creation time.
std::string RenderCreatedVolume(const meta::v1::Volume& volume);

// NAME ID BLOCK-SIZE STORE, one row per volume, sorted by name; a line saying there are none
// when the list is empty.
std::string RenderVolumeTable(const std::vector<meta::v1::Volume>& volumes);

// {"volumes": [...]}: the proto3 JSON mapping of ListVolumesResponse with the .proto's field
// names (block_size, store_url), every field present.
std::string RenderVolumesJson(const std::vector<meta::v1::Volume>& volumes);

// A token just created (never its secret), a table of tokens, and the same as JSON.
std::string RenderCreatedToken(const meta::v1::Token& token);
std::string RenderTokenTable(const std::vector<meta::v1::Token>& tokens);
std::string RenderTokensJson(const std::vector<meta::v1::Token>& tokens);

// What `nighfs status` learned by asking the metadata server itself (GET /healthz).
struct MetaProbe {
  enum class Result { kHealthy, kUnhealthy, kUnreachable };
  Result result = Result::kUnreachable;
  std::string detail;  // "HTTP 503: ..." or the transport error
  absl::Duration latency;
};

// How a mount reaches its metadata server, from the URL it uses and its CA file:
// "TLS (verified, CA file /etc/nighfs/ca.pem)", "TLS (verified, system CA store)" or
// "PLAINTEXT (insecure)".
std::string MetaTransport(std::string_view url, std::string_view ca_file);

// How old a status file may get before it is flagged: the daemon rewrites it every ~5 s.
inline constexpr absl::Duration kStatusStaleAfter = absl::Seconds(30);

// The full report of one mount: identity, metadata server (as seen from here and by the mount),
// the routing table with the reason for each route's state, then the counters.
std::string RenderMountStatus(const status::v1::MountStatus& status, const MetaProbe& probe,
                              absl::Time now);

}  // namespace nighfs::tools

#endif  // NIGHFS_TOOLS_RENDER_H_
