#include "mount/routing.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "blockstore/store_wrapper.h"
#include "common/logging.h"
#include "common/status_macros.h"
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

// Forwards every call to the current target (the router, or the direct store while no group is
// configured). Each call holds its own reference, so a target replaced meanwhile lives until
// the calls on it return.
class MountRouting::Front : public blockstore::BlockStore {
 public:
  explicit Front(std::shared_ptr<blockstore::BlockStore> target) : target_(std::move(target)) {}
  void Set(std::shared_ptr<blockstore::BlockStore> target) {
    absl::MutexLock l(&mu_);
    target_ = std::move(target);
  }

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    return Target()->Get(key, offset, length);
  }
  absl::Status Put(std::string_view key, std::string_view data) override {
    return Target()->Put(key, data);
  }
  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override {
    return Target()->PutAndLocate(key, data);
  }
  absl::Status Delete(std::string_view key) override { return Target()->Delete(key); }
  absl::StatusOr<blockstore::ObjectInfo> Head(std::string_view key) override {
    return Target()->Head(key);
  }
  absl::StatusOr<blockstore::ListPage> List(std::string_view prefix, std::string_view page_token,
                                            int max_keys) override {
    return Target()->List(prefix, page_token, max_keys);
  }
  absl::Status Check() override { return Target()->Check(); }
  std::string Describe() const override { return Target()->Describe(); }

 private:
  std::shared_ptr<blockstore::BlockStore> Target() const {
    absl::MutexLock l(&mu_);
    return target_;
  }

  mutable absl::Mutex mu_;
  std::shared_ptr<blockstore::BlockStore> target_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<MountRouting>> MountRouting::CreateWith(
    MountRoutingOptions options, const pb::GetVolumeRoutesResponse& routes) {
  std::vector<proxyselect::GroupConfig> groups = GroupsFromRoutes(routes);
  if (groups.empty() && options.direct == nullptr) return nullptr;
  std::unique_ptr<MountRouting> r(new MountRouting(std::move(options), routes.routes_version()));
  if (!groups.empty()) {
    RETURN_IF_ERROR(r->Apply(std::move(groups), routes.routes_version()));
  }
  return r;
}

absl::StatusOr<std::shared_ptr<proxyselect::RoutingStore>> MountRouting::MakeRouter(
    std::vector<proxyselect::GroupConfig> groups) {
  const MountRoutingOptions& o = options_;
  proxyselect::RoutingOptions ro;
  ro.groups = std::move(groups);
  ro.member_store_factory = o.member_store_factory;
  if (!ro.member_store_factory) {
    blockstore::ProxyStores* members = members_.get();
    ro.member_store_factory = [members](const std::string& address)
        -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
      absl::StatusOr<blockstore::ProxyStore*> p = members->For(address);
      if (!p.ok()) return p.status();
      // The ProxyStores owns the store (and its connections) for the mount's life.
      return std::make_unique<blockstore::BlockStoreWrapper>(
          std::shared_ptr<blockstore::BlockStore>(*p, [](blockstore::BlockStore*) {}));
    };
  }
  ro.pinger = o.pinger != nullptr ? o.pinger : std::make_shared<ProxyStoresPinger>(members_.get());
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
  return std::shared_ptr<proxyselect::RoutingStore>(*std::move(router));
}

MountRouting::MountRouting(MountRoutingOptions options, uint64_t version)
    : options_(std::move(options)), version_(version) {
  blockstore::ProxyStoreOptions m = options_.member_options;
  m.retry = kMemberRetry;
  m.request_timeout = std::min(m.request_timeout, absl::Seconds(5));
  m.connect_timeout = std::min(m.connect_timeout, absl::Seconds(1));
  m.ping_timeout = options_.probe_timeout;
  members_ = std::make_unique<blockstore::ProxyStores>(std::move(m));
  front_ = std::make_unique<Front>(options_.direct);
}

// The router (and its prober, which pings through members_) goes first.
MountRouting::~MountRouting() {
  front_->Set(nullptr);
  absl::MutexLock l(&mu_);
  router_.reset();
}

blockstore::BlockStore* MountRouting::store() const { return front_.get(); }

std::shared_ptr<proxyselect::RoutingStore> MountRouting::routing_store() const {
  absl::MutexLock l(&mu_);
  return router_;
}

bool MountRouting::active() const { return routing_store() != nullptr; }

proxyselect::RoutingSnapshot MountRouting::Snapshot() const {
  if (std::shared_ptr<proxyselect::RoutingStore> r = routing_store()) return r->Snapshot();
  proxyselect::RoutingSnapshot s;
  s.direct_configured = options_.direct != nullptr;
  s.direct_active = true;
  s.direct_why = "the volume has no proxy group";
  return s;
}

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

// Under refresh_mu_ (or from CreateWith, before anyone else can call).
absl::Status MountRouting::Apply(std::vector<proxyselect::GroupConfig> groups, uint64_t version) {
  std::shared_ptr<proxyselect::RoutingStore> router = routing_store();
  if (groups.empty()) {
    if (router != nullptr && options_.direct == nullptr) {
      NIGHFS_LOG(WARNING) << "the volume has no proxy group any more (routes version " << version
                          << "), and this mount has no direct store: keeping the last groups";
    } else if (router != nullptr) {
      NIGHFS_LOG(INFO) << "the volume has no proxy group any more (routes version " << version
                       << "): going straight to the object store";
      front_->Set(options_.direct);
      absl::MutexLock l(&mu_);
      router_.reset();  // its prober stops once the calls in flight on it are done
    }
  } else if (router != nullptr) {
    RETURN_IF_ERROR(router->SetGroups(std::move(groups)));
    NIGHFS_LOG(INFO) << "proxy-group routes version " << version << " applied";
  } else {
    absl::StatusOr<std::shared_ptr<proxyselect::RoutingStore>> made = MakeRouter(std::move(groups));
    if (!made.ok()) return made.status();
    {
      absl::MutexLock l(&mu_);
      router_ = *made;
    }
    front_->Set(*made);
    NIGHFS_LOG(INFO) << "proxy-group routes version " << version
                     << " applied: block I/O now goes through proxy groups";
  }
  absl::MutexLock l(&mu_);
  version_ = version;
  return absl::OkStatus();
}

absl::Status MountRouting::Refresh() {
  pb::GetVolumeRoutesRequest req;
  req.set_volume_id(options_.volume_id);
  absl::StatusOr<pb::GetVolumeRoutesResponse> routes = options_.meta->GetVolumeRoutes(req);
  if (!routes.ok()) return routes.status();
  return Apply(GroupsFromRoutes(*routes), routes->routes_version());
}

void MountRouting::FillStatus(status::v1::Routing* out) const {
  FillRoutingStatus(Snapshot(), out);
  absl::MutexLock l(&mu_);
  out->set_routes_version(version_);
  out->set_last_refresh_error(last_error_);
  out->set_probe_interval_us(Us(options_.probe_interval));
  out->set_probe_timeout_us(Us(options_.probe_timeout));
}

}  // namespace nighfs::fs
