// Proxy-group routing of a mount's block I/O (issue 13), wired from the metadata server's
// configuration: GetVolumeRoutes at mount, again whenever a heartbeat reports another
// routes_version (no remount), into a proxyselect::RoutingStore whose members are ProxyStores
// with a small retry budget of their own (the routing store owns retries and failover), and
// the RoutingStore snapshot into status.proto's Routing, as it is. A mount whose volume has no
// group (at mount time, or after the last one is removed) goes straight to the object store
// through the same MountRouting, and starts routing through groups associated later, again
// without a remount.
#ifndef NIGHFS_MOUNT_ROUTING_H_
#define NIGHFS_MOUNT_ROUTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "blockstore/counting_store.h"
#include "blockstore/proxy_store.h"
#include "metadata_client/meta_api.h"
#include "proxyselect/proxyselect.h"
#include "status.pb.h"

namespace nighfs::fs {

// A group's name in status and switch records: "ID provider/region" ("ID" alone when both
// codes are empty), unique since ids are.
std::string ProxyGroupName(const meta::v1::ProxyGroup& group);
// The routing groups of a GetVolumeRoutes reply (groups without members are left out: they
// cannot serve, and RoutingStore refuses them).
std::vector<proxyselect::GroupConfig> GroupsFromRoutes(
    const meta::v1::GetVolumeRoutesResponse& routes);

// The "proxy groups" route of status.proto (a summary line in the ROUTES table; the details
// are in Routing): health from the mount's real requests through the router (`store`), the
// route in use and its RTT from the snapshot.
void FillGroupsRoute(const blockstore::CountingStore& store,
                     const proxyselect::RoutingSnapshot& snapshot, status::v1::Route* r);

// The snapshot into status.proto, field by field (nothing recomputed), with its text.
void FillRoutingStatus(const proxyselect::RoutingSnapshot& snapshot, status::v1::Routing* out);

struct MountRoutingOptions {
  MetaApi* meta = nullptr;  // must outlive the MountRouting
  uint64_t volume_id = 0;
  // Volume name, token and CA of the member ProxyStores (address ignored). Their retry
  // budget is made small here (kMemberRetry): failing over beats waiting on one member.
  blockstore::ProxyStoreOptions member_options;
  // The volume's object store, or null without store credentials (then direct_missing_reason).
  std::shared_ptr<blockstore::BlockStore> direct;
  std::string direct_missing_reason;
  absl::Duration probe_interval = absl::Seconds(1);
  absl::Duration probe_timeout = absl::Milliseconds(500);
  absl::Duration route_deadline = absl::Seconds(60);
  // Tests: a fake pinger and member stores, no prober thread.
  std::shared_ptr<proxyselect::Pinger> pinger;
  proxyselect::MemberStoreFactory member_store_factory;
  bool start_prober = true;
  std::function<absl::Time()> clock;  // null: absl::Now
};

// Thread-safe.
class MountRouting {
 public:
  // Calls GetVolumeRoutes. Without a group with members the MountRouting sends every call to
  // `direct` until groups appear; nullptr (not an error) when there is no direct store either:
  // nothing to route. An error of the call is returned (the caller decides).
  static absl::StatusOr<std::unique_ptr<MountRouting>> Create(MountRoutingOptions options);
  // As Create, with routes already fetched (the mount fetches them before it forks, and starts
  // the prober thread after).
  static absl::StatusOr<std::unique_ptr<MountRouting>> CreateWith(
      MountRoutingOptions options, const meta::v1::GetVolumeRoutesResponse& routes);
  ~MountRouting();

  // The BlockStore of the file system: the router while groups are configured, else direct.
  blockstore::BlockStore* store() const;
  // Whether calls go through proxy groups (false: straight to the direct store, no group).
  bool active() const;
  // From each heartbeat reply: a routes_version other than the one in use fetches the routes
  // again and applies them (RoutingStore::SetGroups, or a new router when there was none). A
  // failed fetch is kept for status and tried again at the next heartbeat. An empty
  // configuration sends calls straight to the direct store (calls in flight finish on the old
  // router); without a direct store the last groups are kept, as the only way to the blocks.
  void OnRoutesVersion(uint64_t version);
  uint64_t routes_version() const;

  void FillStatus(status::v1::Routing* out) const;
  // Without groups: no group, direct active and why.
  proxyselect::RoutingSnapshot Snapshot() const;
  // The router; null while no group is configured.
  std::shared_ptr<proxyselect::RoutingStore> routing_store() const;

 private:
  class Front;  // the store() the file system holds: forwards to the router or direct

  MountRouting(MountRoutingOptions options, uint64_t version);
  absl::StatusOr<std::shared_ptr<proxyselect::RoutingStore>> MakeRouter(
      std::vector<proxyselect::GroupConfig> groups);
  absl::Status Apply(std::vector<proxyselect::GroupConfig> groups, uint64_t version);
  absl::Status Refresh();

  const MountRoutingOptions options_;
  std::unique_ptr<blockstore::ProxyStores> members_;
  std::unique_ptr<Front> front_;
  mutable absl::Mutex mu_;
  // Shared with Front, so that calls in flight keep a router that was just dropped alive.
  std::shared_ptr<proxyselect::RoutingStore> router_ ABSL_GUARDED_BY(mu_);
  absl::Mutex refresh_mu_;  // one refresh at a time
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_ROUTING_H_
