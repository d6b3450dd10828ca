// A user-space TCP relay that makes loopback look like a WAN or a failing network, for tests and
// benchmarks (`tc netem` is not available on these machines): put it between a client and a
// server and add one-way delay, jitter and a bandwidth cap, or make it refuse, reset or
// black-hole connections. Protocol-blind: it relays bytes (HTTP, TLS, anything over TCP).
//
//   RelayOptions o;
//   o.upstream_port = s3rver->port();
//   o.params.delay = absl::Milliseconds(15);       // each way: +30 ms round trip
//   o.params.bandwidth = 100 << 20;                // bytes/s per direction
//   auto relay = Relay::Start(o);
//   ... point the client at (*relay)->address() ...
//   (*relay)->SetMode(RelayMode::kBlackHole);      // the server "disappears": no reply, no close
//
// How bytes move: per connection and direction, one thread reads chunks (up to 64 KiB) from
// the source and stamps each with its release time (arrival + delay ± jitter, never before the
// previous chunk's: TCP keeps order); another writes each chunk to the destination once its
// time has come and the direction's bandwidth allows it. Delay is therefore a pipe, not a
// per-connection sleep: a stream's throughput is limited by the bandwidth cap (and by
// `max_queued_bytes` / delay), not by the delay. The cap of a direction is shared by all
// connections (one link), and a chunk's transmission time is size / bandwidth.
//
// Modes apply to new connections at accept and to open ones at once:
// - kForward: relay (open connections frozen by kBlackHole resume, in order, nothing lost:
//   a partition that heals).
// - kRefuse: a new connection is accepted and closed at once (the client reads EOF); open
//   connections are closed (FIN both ways), as a server process that exits.
// - kReset: a new connection is accepted and reset (RST); open connections are reset both ways.
// - kBlackHole: a new connection is accepted and never read, answered or closed; open ones
//   stop relaying in both directions (bytes are held, never dropped) and are never closed.
//   Leaving kBlackHole applies the new mode to all of them (kForward: they connect upstream
//   and relay what the client sent meanwhile).
// If the upstream cannot be reached when a connection is forwarded, the client is reset.
//
// Thread-safe: the setters and counters may be called from any thread while connections run.
#ifndef NIGHFS_TESTS_RELAY_RELAY_H_
#define NIGHFS_TESTS_RELAY_RELAY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nighfs::testing {

enum class RelayMode { kForward, kRefuse, kReset, kBlackHole };

// "forward", "refuse", "reset", "blackhole" (also "black-hole"), both ways.
std::string_view RelayModeName(RelayMode mode);
absl::StatusOr<RelayMode> ParseRelayMode(std::string_view name);

struct RelayParams {
  absl::Duration delay = absl::ZeroDuration();  // added to each direction (one-way)
  double jitter_percent = 0;                    // each chunk's delay varies by ± this % (0-100)
  uint64_t bandwidth = 0;                       // bytes/s per direction, all connections; 0 = no cap
  RelayMode mode = RelayMode::kForward;
};

struct RelayOptions {
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;  // 0: a free port (see Relay::port())
  std::string upstream_host = "127.0.0.1";
  int upstream_port = 0;
  RelayParams params;
  // Bytes read from a source but not yet written, per connection and direction, before the
  // relay stops reading (TCP back-pressure). Bounds a stream at max_queued_bytes / delay.
  size_t max_queued_bytes = size_t{32} << 20;
  absl::Duration connect_timeout = absl::Seconds(5);
};

class Relay {
 public:
  // Listens (SO_REUSEADDR) and serves until destroyed. InvalidArgument for bad options,
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Relay>> Start(const RelayOptions& options);
  // Stops accepting, resets every connection, joins every thread.
  virtual ~Relay() = default;

  virtual int port() const = 0;
  // "HOST:PORT" of the listening socket, e.g. "127.0.0.1:43211".
  virtual std::string address() const = 0;

  // Take effect for the next chunk read (delay, jitter) or sent (bandwidth, mode).
  virtual void SetDelay(absl::Duration one_way) = 0;
  virtual void SetJitterPercent(double percent) = 0;
  virtual void SetBandwidth(uint64_t bytes_per_second) = 0;
  virtual void SetMode(RelayMode mode) = 0;
  virtual void Set(const RelayParams& params) = 0;
  virtual RelayParams params() const = 0;

  // Connections accepted since start (all modes).
  virtual uint64_t connections_accepted() const = 0;
  // Connections relaying or held now (forwarded ones not yet finished, black-holed ones).
  virtual uint64_t connections_open() const = 0;
  // Bytes written to the upstream (client -> server) and to clients (server -> client).
  virtual uint64_t bytes_upstream() const = 0;
  virtual uint64_t bytes_downstream() const = 0;
};

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_RELAY_RELAY_H_
