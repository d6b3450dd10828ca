#include "mount/routing.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "blockstore/store_wrapper.h"
#include "common/logging.h"
#include "mount/routes.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;

// A member's own budget: one retry, a few seconds in all. The routing store retries on the
// next route within its deadline, so waiting long on one member would only delay failover.
constexpr RetryPolicy kMemberRetry = {.max_attempts = 2,
                                      .initial_backoff = absl::Milliseconds(50),
                                      .max_backoff = absl::Milliseconds(200),
                                      .deadline = absl::Seconds(3)};

// GET /ping through the member's ProxyStore (its own kept-alive connection).
class ProxyStoresPinger : public proxyselect::Pinger {
 public:
  explicit ProxyStoresPinger(blockstore::ProxyStores* stores) : stores_(stores) {}
  absl::StatusOr<absl::Duration> Ping(const std::string& address) override {
    absl::StatusOr<blockstore::ProxyStore*> p = stores_->For(address);
    if (!p.ok()) return p.status();
    return (*p)->Ping();
  }

 private:
  blockstore::ProxyStores* const stores_;
};

int64_t Us(absl::Duration d) { return absl::ToInt64Microseconds(d); }

void FillCounters(const proxyselect::RouteCounters& c, status::v1::RouteCounters* out) {
  out->set_requests(c.requests);
  out->set_bytes(c.bytes);
  out->set_errors(c.errors);
  out->set_p50_us(Us(c.p50));
  out->set_p99_us(Us(c.p99));
}

}  // namespace

std::string ProxyGroupName(const pb::ProxyGroup& group) {
  if (group.provider_code().empty() && group.region_code().empty()) {
    return absl::StrCat(group.id());
  }
  return absl::StrCat(group.id(), " ", group.provider_code(), "/", group.region_code());
}

std::vector<proxyselect::GroupConfig> GroupsFromRoutes(const pb::GetVolumeRoutesResponse& routes) {
  std::vector<proxyselect::GroupConfig> groups;
  for (const pb::ProxyGroup& g : routes.groups()) {
    if (g.addresses().empty()) continue;
    proxyselect::GroupConfig c;
    c.name = ProxyGroupName(g);
    c.members.assign(g.addresses().begin(), g.addresses().end());
    groups.push_back(std::move(c));
  }
  return groups;
}

void FillGroupsRoute(const blockstore::CountingStore& store,
                     const proxyselect::RoutingSnapshot& snapshot, status::v1::Route* r) {
  FillDirectRoute(store, r);
  r->set_name("proxy groups");
  r->set_kind("proxy");
  r->set_selected(true);
  if (snapshot.selected_group.empty()) {
    r->set_target(snapshot.direct_configured ? absl::StrCat("direct: ", store.Describe())
                                             : std::string("none (no direct store)"));
    r->set_reason(absl::StrCat("no group can serve: ", snapshot.direct_why));
    return;
  }
  r->set_target(absl::StrCat("group ", snapshot.selected_group));
  for (const proxyselect::GroupStatus& g : snapshot.groups) {
    if (g.name == snapshot.selected_group && g.measured) {
      r->set_rtt_us(std::max<int64_t>(1, Us(g.rtt)));
    }
  }
  r->set_reason(snapshot.selected_why);
}

void FillRoutingStatus(const proxyselect::RoutingSnapshot& s, status::v1::Routing* out) {
  for (const proxyselect::GroupStatus& g : s.groups) {
    status::v1::RoutingGroup* og = out->add_groups();
    og->set_name(g.name);
    og->set_healthy(g.healthy);
    og->set_why(g.why);
    og->set_measured(g.measured);
    og->set_rtt_us(Us(g.rtt));
    og->set_selected(!s.selected_group.empty() && g.name == s.selected_group);
    for (const proxyselect::MemberStatus& m : g.members) {
      status::v1::RoutingMember* om = og->add_members();
      om->set_address(m.address);
      om->set_healthy(m.healthy);
      om->set_why(m.why);
      om->set_measured(m.measured);
      om->set_last_rtt_us(Us(m.last_rtt));
      om->set_smoothed_rtt_us(Us(m.smoothed_rtt));
      FillCounters(m.counters, om->mutable_counters());
    }
  }
  out->set_selected_group(s.selected_group);
  out->set_selected_why(s.selected_why);
  out->set_direct_configured(s.direct_configured);
  out->set_direct_active(s.direct_active);
  out->set_direct_why(s.direct_why);
  FillCounters(s.direct_counters, out->mutable_direct_counters());
  for (const proxyselect::SwitchRecord& w : s.switches) {
    status::v1::RoutingSwitch* ow = out->add_switches();
    ow->set_time_ns(absl::ToUnixNanos(w.time));
    ow->set_from(w.from);
    ow->set_to(w.to);
    ow->set_reason(w.reason);
  }
  out->set_text(proxyselect::FormatRoutingStatus(s));
}

absl::StatusOr<std::unique_ptr<MountRouting>> MountRouting::Create(MountRoutingOptions options) {
  pb::GetVolumeRoutesRequest req;
  req.set_volume_id(options.volume_id);
  absl::StatusOr<pb::GetVolumeRoutesResponse> routes = options.meta->GetVolumeRoutes(req);
  if (!routes.ok()) return routes.status();
  return CreateWith(std::move(options), *routes);
}

absl::StatusOr<std::unique_ptr<MountRouting>> MountRouting::CreateWith(
    MountRoutingOptions options, const pb::GetVolumeRoutesResponse& routes) {
  std::vector<proxyselect::GroupConfig> groups = GroupsFromRoutes(routes);
  if (groups.empty()) return nullptr;

  std::unique_ptr<MountRouting> r(new MountRouting(std::move(options), routes.routes_version()));
  const MountRoutingOptions& o = r->options_;
  proxyselect::RoutingOptions ro;
  ro.groups = std::move(groups);
  ro.member_store_factory = o.member_store_factory;
  if (!ro.member_store_factory) {
    blockstore::ProxyStores* members = r->members_.get();
    ro.member_store_factory = [members](const std::string& address)
        -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
      absl::StatusOr<blockstore::ProxyStore*> p = members->For(address);
      if (!p.ok()) return p.status();
      // The ProxyStores owns the store (and its connections) for the mount's life.
      return std::make_unique<blockstore::BlockStoreWrapper>(
          std::shared_ptr<blockstore::BlockStore>(*p, [](blockstore::BlockStore*) {}));
    };
  }
  ro.pinger = o.pinger != nullptr ? o.pinger
                                  : std::make_shared<ProxyStoresPinger>(r->members_.get());
  ro.direct = o.direct;
  if (o.direct == nullptr) ro.direct_missing_reason = o.direct_missing_reason;
  ro.probe_interval = o.probe_interval;
  ro.probe_timeout = o.probe_timeout;
  ro.request_deadline = o.route_deadline;
  ro.start_prober = o.start_prober;
  if (o.clock) ro.clock = o.clock;
  // Right after start (and after direct), the first groups to answer must not win before the
  // nearer ones had their chance: two probe rounds and a timeout.
  ro.selector.settle_grace = 2 * o.probe_interval + o.probe_timeout;
  absl::StatusOr<std::unique_ptr<proxyselect::RoutingStore>> router =
      proxyselect::RoutingStore::Create(std::move(ro));
  if (!router.ok()) return router.status();
  r->router_ = *std::move(router);
  return r;
}

MountRouting::MountRouting(MountRoutingOptions options, uint64_t version)
    : options_(std::move(options)), version_(version) {
  blockstore::ProxyStoreOptions m = options_.member_options;
  m.retry = kMemberRetry;
  m.request_timeout = std::min(m.request_timeout, absl::Seconds(5));
  m.connect_timeout = std::min(m.connect_timeout, absl::Seconds(1));
  m.ping_timeout = options_.probe_timeout;
  members_ = std::make_unique<blockstore::ProxyStores>(std::move(m));
}

// The router (and its prober, which pings through members_) goes first.
MountRouting::~MountRouting() { router_.reset(); }

blockstore::BlockStore* MountRouting::store() const { return router_.get(); }
proxyselect::RoutingStore& MountRouting::routing_store() const { return *router_; }

uint64_t MountRouting::routes_version() const {
  absl::MutexLock l(&mu_);
  return version_;
}

void MountRouting::OnRoutesVersion(uint64_t version) {
  absl::MutexLock serial(&refresh_mu_);
  {
    absl::MutexLock l(&mu_);
    if (version == version_ && last_error_.empty()) return;
  }
  absl::Status s = Refresh();
  absl::MutexLock l(&mu_);
  last_error_ = s.ok() ? "" : s.ToString();
  if (!s.ok()) NIGHFS_LOG(WARNING) << "refreshing proxy-group routes failed: " << s;
}

absl::Status MountRouting::Refresh() {
  pb::GetVolumeRoutesRequest req;
  req.set_volume_id(options_.volume_id);
  absl::StatusOr<pb::GetVolumeRoutesResponse> routes = options_.meta->GetVolumeRoutes(req);
  if (!routes.ok()) return routes.status();
  std::vector<proxyselect::GroupConfig> groups = GroupsFromRoutes(*routes);
  if (groups.empty()) {
    NIGHFS_LOG(WARNING) << "the volume has no proxy group any more (routes version "
                        << routes->routes_version() << "): keeping the last groups until "
                        << "remounted";
  } else if (absl::Status s = router_->SetGroups(std::move(groups)); !s.ok()) {
    return s;
  } else {
    NIGHFS_LOG(INFO) << "proxy-group routes version " << routes->routes_version() << " applied";
  }
  absl::MutexLock l(&mu_);
  version_ = routes->routes_version();
  return absl::OkStatus();
}

void MountRouting::FillStatus(status::v1::Routing* out) const {
  FillRoutingStatus(router_->Snapshot(), out);
  absl::MutexLock l(&mu_);
  out->set_routes_version(version_);
  out->set_last_refresh_error(last_error_);
  out->set_probe_interval_us(Us(options_.probe_interval));
  out->set_probe_timeout_us(Us(options_.probe_timeout));
}

}  // namespace nighfs::fs
