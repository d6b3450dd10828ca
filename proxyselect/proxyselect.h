// Routing of a mount's block I/O over proxy groups (issue 13): the one header the mount uses.
//
// A RoutingStore is the BlockStore the file system sees. For each call it picks, in order:
// the block's home member in the selected group (rendezvous hashing of the key over the group's
// healthy members), the group's next members, the next nearest healthy groups, and the direct
// object store (when the mount has one). A call that fails on one route with a transient error
// (unavailable, timeout, 5xx, back-pressure) is retried on the next one, all within one deadline;
// NotFound and the caller's own errors (bad key, permission, conflict) are answers and return at
// once. A background prober measures every member's RTT; the group with the lowest RTT is
// selected, with hysteresis (selector.h), members are ejected on failures and readmitted by
// probes with backoff (health.h). Snapshot() is what `nighfs status` shows.
//
// Seams (so that tests need no network and no sleeps): member stores come from a factory, RTT
// probes from a Pinger, time from a clock function and backoff waits from a sleep function.
#ifndef NIGHFS_PROXYSELECT_PROXYSELECT_H_
#define NIGHFS_PROXYSELECT_PROXYSELECT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "proxyselect/estimator.h"
#include "proxyselect/health.h"
#include "proxyselect/selector.h"

namespace nighfs::proxyselect {

// Measures the round-trip time to a member (the real one: blockstore::ProxyStore::Ping, a
// `GET /ping` on a kept-alive connection). Must be thread-safe: pings of different members run
// concurrently (never two of one member). Should bound its own wait (e.g. ProxyStore's
// ping_timeout); the prober counts a ping unanswered after its own timeout as failed anyway.
class Pinger {
 public:
  virtual ~Pinger() = default;
  virtual absl::StatusOr<absl::Duration> Ping(const std::string& address) = 0;
};

struct GroupConfig {
  std::string name;                   // shown in status and switch records, e.g. "dc1" or "3"
  std::vector<std::string> members;   // "HOST:PORT" (as the proxies' --advertise)
};

// Makes the BlockStore of one member (a ProxyStore in the mount). Called once per address while
// it stays configured, under no lock of the router's.
using MemberStoreFactory =
    std::function<absl::StatusOr<std::unique_ptr<blockstore::BlockStore>>(const std::string&)>;

struct RoutingOptions {
  std::vector<GroupConfig> groups;
  MemberStoreFactory member_store_factory;  // required
  // The object store itself, last in every chain; null when the mount has no store credentials
  // (then `direct_missing_reason` says why in status, e.g. "no store credentials").
  std::shared_ptr<blockstore::BlockStore> direct;
  std::string direct_missing_reason = "no direct store configured";
  // Required unless start_prober is false (tests then call ProbeRoundForTest()).
  std::shared_ptr<Pinger> pinger;
  absl::Duration probe_interval = absl::Seconds(1);
  absl::Duration probe_timeout = absl::Seconds(1);
  bool start_prober = true;
  // One call's whole budget across routes and rounds. Each route's call runs under a
  // blockstore::ScopedCallDeadline of what is left of it (call_deadline.h), so a store's own
  // retries never outlast it.
  absl::Duration request_deadline = absl::Seconds(60);
  // The most one attempt on a member may take (its own retries included) before the next
  // route is tried. Long enough for a block over a slow link; a black-holed member costs this.
  absl::Duration member_attempt_timeout = absl::Seconds(5);
  // Backoff between rounds of the chain when every route failed (doubling, capped).
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(1);
  EstimatorOptions estimator;
  HealthOptions health;
  SelectorOptions selector;
  std::function<absl::Time()> clock = [] { return absl::Now(); };
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
};

struct RouteCounters {
  uint64_t requests = 0;
  uint64_t bytes = 0;   // read plus written payload
  uint64_t errors = 0;  // failed calls (NotFound is an answer, not an error)
  absl::Duration p50 = absl::ZeroDuration();  // latency of this route's calls (bucket bound)
  absl::Duration p99 = absl::ZeroDuration();
};

struct MemberStatus {
  std::string address;
  bool healthy = false;
  std::string why;  // "ok" or why ejected
  bool measured = false;
  absl::Duration last_rtt = absl::ZeroDuration();
  absl::Duration smoothed_rtt = absl::ZeroDuration();
  RouteCounters counters;
};

struct GroupStatus {
  std::string name;
  bool healthy = false;
  std::string why;  // "" when healthy
  bool measured = false;
  absl::Duration rtt = absl::ZeroDuration();  // GroupRtt of its healthy members
  std::vector<MemberStatus> members;
};

struct RoutingSnapshot {
  std::vector<GroupStatus> groups;
  std::string selected_group;  // "" = none: direct
  std::string selected_why;
  bool direct_configured = false;
  bool direct_active = false;  // no group can serve: calls go to the direct store (or fail)
  std::string direct_why;      // why direct is (in)active, or why it is missing
  RouteCounters direct_counters;
  std::vector<SwitchRecord> switches;  // oldest first
};

// The snapshot as text for `nighfs status`, readable at a glance (like `ceph status`): the
// route in use and why, the direct route, every group and member with RTTs, health and
// counters, and the last switches. Lines end with '\n'; no secrets are in a snapshot.
std::string FormatRoutingStatus(const RoutingSnapshot& snapshot);

// Thread-safe: every method may be called from any thread.
class RoutingStore : public blockstore::BlockStore {
 public:
  // InvalidArgument for a missing factory, a missing pinger with start_prober, an empty group
  // name or a group without members. Starts the prober thread (start_prober).
  static absl::StatusOr<std::unique_ptr<RoutingStore>> Create(RoutingOptions options);

  // Replaces the group configuration at run time: members that stay keep their RTT history,
  // health and connections; rendezvous hashing moves only the blocks of members that left or
  // joined. Same validation as Create.
  virtual absl::Status SetGroups(std::vector<GroupConfig> groups) = 0;
  virtual RoutingSnapshot Snapshot() const = 0;

  // Pings every member once, synchronously, and re-selects: what the prober thread does per
  // interval, for tests driving a fake clock (start_prober = false).
  virtual void ProbeRoundForTest() = 0;
  // Re-selects with the clock's current time (the prober does this every interval).
  virtual void ReselectForTest() = 0;
};

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_PROXYSELECT_H_
