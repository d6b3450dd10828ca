// The RoutingStore (proxyselect.h): route plans, failover within a deadline, and the state
// (members, groups, selection) that probes and requests update.
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/call_deadline.h"
#include "common/logging.h"
#include "common/retry.h"
#include "proxyselect/estimator.h"
#include "proxyselect/health.h"
#include "proxyselect/prober.h"
#include "proxyselect/proxyselect.h"
#include "proxyselect/rendezvous.h"
#include "proxyselect/route_stats.h"
#include "proxyselect/selector.h"

namespace nighfs::proxyselect {
namespace {

using blockstore::BlockStore;

absl::Status ValidateGroups(const std::vector<GroupConfig>& groups) {
  std::set<std::string> names;
  for (const GroupConfig& g : groups) {
    if (g.name.empty()) return absl::InvalidArgumentError("a proxy group needs a name");
    if (!names.insert(g.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("proxy group '", g.name, "' given twice"));
    }
    if (g.members.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("proxy group '", g.name, "' has no members"));
    }
    std::set<std::string> addresses;
    for (const std::string& a : g.members) {
      if (a.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("proxy group '", g.name, "' has an empty member address"));
      }
      if (!addresses.insert(a).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("proxy group '", g.name, "' lists ", a, " twice"));
      }
    }
  }
  return absl::OkStatus();
}

// Whether a failure is the route's (try the next one) rather than an answer about the call
// (NotFound, a bad key, a denied token, a conflicting write: the same everywhere).
bool IsRouteFailure(const absl::Status& s) {
  return IsRetryable(s) || s.code() == absl::StatusCode::kUnknown ||
         s.code() == absl::StatusCode::kCancelled;
}

// Back-pressure (503 SlowDown): route around it, but the member is healthy.
bool EjectsMember(const absl::Status& s) {
  return s.code() != absl::StatusCode::kResourceExhausted;
}

// One place a call may go. Shared: a call in flight keeps it (and its store) alive after
// SetGroups dropped the member, and the fast path copies one pointer, not three fields.
struct RouteTarget {
  std::string address;  // "" = direct
  std::shared_ptr<BlockStore> store;  // null when the factory failed
  RouteStats stats;
};
using Route = std::shared_ptr<RouteTarget>;

struct Member {
  std::string address;
  uint64_t hash = 0;
  Route target = std::make_shared<RouteTarget>();
  std::string store_error;
  RttEstimator estimator;
  MemberHealth health;

  Member(EstimatorOptions e, HealthOptions h) : estimator(e), health(h) {}
  bool usable() const { return target->store != nullptr && health.healthy(); }
};

struct Group {
  std::string name;
  std::vector<std::string> addresses;
  std::vector<uint64_t> hashes;  // MemberHash of each address
  // The members, by index as above: owned by members_, which outlives every Group naming them
  // (SetGroups replaces groups_ before it erases members).
  std::vector<Member*> members;
};

uint64_t PayloadBytes(const absl::StatusOr<std::string>& r) { return r.ok() ? r->size() : 0; }
template <class T>
uint64_t PayloadBytes(const T&) { return 0; }

class RoutingStoreImpl : public RoutingStore {
 public:
  explicit RoutingStoreImpl(RoutingOptions options)
      : options_(std::move(options)),
        selector_(options_.selector),
        direct_(std::make_shared<RouteTarget>()) {
    direct_->store = options_.direct;
  }

  ~RoutingStoreImpl() override { prober_.reset(); }

  absl::Status Init() {
    if (!options_.member_store_factory) {
      return absl::InvalidArgumentError("proxyselect: no member store factory");
    }
    if (options_.start_prober && options_.pinger == nullptr) {
      return absl::InvalidArgumentError("proxyselect: no pinger for the prober");
    }
    if (absl::Status s = SetGroups(options_.groups); !s.ok()) return s;
    if (options_.start_prober) {
      ProberOptions po;
      po.interval = options_.probe_interval;
      po.timeout = options_.probe_timeout;
      po.clock = options_.clock;
      prober_ = std::make_unique<Prober>(
          options_.pinger, po,
          [this](const std::string& address, const absl::StatusOr<absl::Duration>& rtt,
                 absl::Time when) { OnProbe(address, rtt, when); },
          [this] { Reselect(); });
      prober_->SetMembers(AllAddresses());
      prober_->Start();
    }
    return absl::OkStatus();
  }

  absl::Status SetGroups(std::vector<GroupConfig> groups) override {
    if (absl::Status s = ValidateGroups(groups); !s.ok()) return s;
    // One change at a time: the members made below must still be missing when installed.
    absl::MutexLock config_lock(&config_mu_);
    // New members' stores are made outside the lock: a factory may resolve names or connect.
    std::vector<std::string> fresh;
    {
      absl::ReaderMutexLock lock(&mu_);
      for (const GroupConfig& g : groups) {
        for (const std::string& a : g.members) {
          if (members_.count(a) == 0) fresh.push_back(a);
        }
      }
    }
    std::map<std::string, std::unique_ptr<Member>> made;
    for (const std::string& a : fresh) {
      if (made.count(a) != 0) continue;
      auto m = std::make_unique<Member>(options_.estimator, options_.health);
      m->address = a;
      m->target->address = a;
      m->hash = MemberHash(a);
      absl::StatusOr<std::unique_ptr<BlockStore>> store = options_.member_store_factory(a);
      if (store.ok() && *store != nullptr) {
        m->target->store = std::shared_ptr<BlockStore>(std::move(*store));
      } else {
        m->store_error = store.ok() ? "factory returned no store" : store.status().ToString();
      }
      made.emplace(a, std::move(m));
    }
    std::vector<std::string> addresses;
    {
      absl::MutexLock lock(&mu_);
      std::vector<Group> next;
      std::set<std::string> keep;
      for (const GroupConfig& g : groups) {
        Group group;
        group.name = g.name;
        group.addresses = g.members;
        for (const std::string& a : g.members) {
          group.hashes.push_back(MemberHash(a));
          keep.insert(a);
          auto m = members_.find(a);
          if (m == members_.end()) m = members_.emplace(a, std::move(made.at(a))).first;
          group.members.push_back(m->second.get());
        }
        next.push_back(std::move(group));
      }
      groups_ = std::move(next);
      // A member that left: calls in flight keep its store alive (shared_ptr in their route).
      for (auto it = members_.begin(); it != members_.end();) {
        it = keep.count(it->first) ? std::next(it) : members_.erase(it);
      }
      ReselectLocked(options_.clock());
      addresses = AllAddressesLocked();
    }
    if (prober_ != nullptr) prober_->SetMembers(addresses);
    return absl::OkStatus();
  }

  RoutingSnapshot Snapshot() const override {
    absl::ReaderMutexLock lock(&mu_);
    RoutingSnapshot snap;
    for (const Group& g : groups_) {
      GroupStatus gs;
      gs.name = g.name;
      std::vector<absl::Duration> estimates;
      for (const Member* member : g.members) {
        const Member& m = *member;
        MemberStatus ms;
        ms.address = m.address;
        ms.healthy = m.usable();
        ms.why = m.target->store == nullptr ? absl::StrCat("no store: ", m.store_error) : m.health.why();
        if (m.estimator.estimate()) {
          ms.measured = true;
          ms.last_rtt = *m.estimator.last();
          ms.smoothed_rtt = *m.estimator.estimate();
          if (ms.healthy) estimates.push_back(ms.smoothed_rtt);
        }
        gs.healthy = gs.healthy || ms.healthy;
        ms.counters = m.target->stats.Get();
        gs.members.push_back(std::move(ms));
      }
      if (std::optional<absl::Duration> rtt = GroupRtt(estimates)) {
        gs.measured = true;
        gs.rtt = *rtt;
      }
      if (!gs.healthy) gs.why = "no healthy member";
      snap.groups.push_back(std::move(gs));
    }
    snap.selected_group = selector_.current().group;
    snap.selected_why = selector_.current().reason;
    snap.direct_configured = options_.direct != nullptr;
    snap.direct_active = snap.selected_group.empty();
    if (options_.direct == nullptr) {
      snap.direct_why = snap.direct_active
                            ? absl::StrCat("needed but missing: ", options_.direct_missing_reason)
                            : absl::StrCat("not configured: ", options_.direct_missing_reason);
    } else {
      snap.direct_why = snap.direct_active ? absl::StrCat("active: ", snap.selected_why)
                                           : "standby: a proxy group serves";
    }
    snap.direct_counters = direct_->stats.Get();
    snap.switches.assign(selector_.switches().begin(), selector_.switches().end());
    return snap;
  }

  void ProbeRoundForTest() override {
    for (const std::string& a : AllAddresses()) {
      absl::StatusOr<absl::Duration> rtt =
          options_.pinger != nullptr ? options_.pinger->Ping(a)
                                     : absl::StatusOr<absl::Duration>(
                                           absl::FailedPreconditionError("no pinger"));
      OnProbe(a, rtt, options_.clock());
    }
    Reselect();
  }

  void ReselectForTest() override { Reselect(); }

  // BlockStore.
  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    return Run<std::string>(key, [&](BlockStore& s) { return s.Get(key, offset, length); });
  }
  absl::Status Put(std::string_view key, std::string_view data) override {
    return Run<absl::Status>(key, [&](BlockStore& s) { return s.Put(key, data); }, data.size());
  }
  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override {
    return Run<std::string>(key, [&](BlockStore& s) { return s.PutAndLocate(key, data); },
                            data.size());
  }
  absl::Status Delete(std::string_view key) override {
    return Run<absl::Status>(key, [&](BlockStore& s) { return s.Delete(key); });
  }
  absl::StatusOr<blockstore::ObjectInfo> Head(std::string_view key) override {
    return Run<blockstore::ObjectInfo>(key, [&](BlockStore& s) { return s.Head(key); });
  }
  // Proxies serve blocks by key and do not list: listing needs the object store itself.
  absl::StatusOr<blockstore::ListPage> List(std::string_view prefix, std::string_view page_token,
                                            int max_keys) override {
    if (options_.direct == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "listing needs the object store, which this mount cannot reach directly (",
          options_.direct_missing_reason, ")"));
    }
    return options_.direct->List(prefix, page_token, max_keys);
  }
  // One pass over the routes, without rounds of backoff: a mount checking its store at start-up
  // wants the answer now, not after the whole request deadline.
  absl::Status Check() override {
    return Run<absl::Status>("", [&](BlockStore& s) { return s.Check(); }, 0, /*max_rounds=*/1);
  }
  std::string Describe() const override {
    absl::ReaderMutexLock lock(&mu_);
    std::vector<std::string> parts;
    for (const Group& g : groups_) {
      parts.push_back(absl::StrCat(g.name, " [", absl::StrJoin(g.addresses, ","), "]"));
    }
    return absl::StrCat("proxy groups {", absl::StrJoin(parts, "; "), "}, then ",
                        options_.direct != nullptr ? options_.direct->Describe()
                                                   : "no direct store");
  }

 private:
  std::vector<std::string> AllAddresses() const {
    absl::ReaderMutexLock lock(&mu_);
    return AllAddressesLocked();
  }
  std::vector<std::string> AllAddressesLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    std::vector<std::string> out;
    for (const auto& [a, m] : members_) out.push_back(a);
    return out;
  }

  void Reselect() {
    absl::MutexLock lock(&mu_);
    ReselectLocked(options_.clock());
  }

  void OnProbe(const std::string& address, const absl::StatusOr<absl::Duration>& rtt,
               absl::Time when) {
    absl::MutexLock lock(&mu_);
    auto it = members_.find(address);
    if (it == members_.end()) return;  // left meanwhile
    Member& m = *it->second;
    if (rtt.ok()) {
      m.estimator.AddSample(when, *rtt);
      m.health.OnSuccess(when, Source::kProbe);
    } else {
      m.health.OnFailure(when, Source::kProbe, rtt.status());
    }
    ReselectLocked(when);
  }

  void OnRequestFailure(const std::string& address, const absl::Status& status) {
    const absl::Time now = options_.clock();
    absl::MutexLock lock(&mu_);
    auto it = members_.find(address);
    if (it == members_.end()) return;
    it->second->health.OnFailure(now, Source::kRequest, status);
    ReselectLocked(now);
  }

  void ReselectLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<GroupView> views;
    views.reserve(groups_.size());
    for (const Group& g : groups_) {
      GroupView v;
      v.name = g.name;
      std::vector<absl::Duration> estimates;
      std::vector<std::string> whys;
      for (const Member* member : g.members) {
        const Member& m = *member;
        if (m.usable()) {
          v.healthy = true;
          if (std::optional<absl::Duration> e = m.estimator.estimate()) estimates.push_back(*e);
        } else {
          whys.push_back(absl::StrCat(
              m.address, " ", m.target->store == nullptr ? absl::StrCat("no store: ", m.store_error)
                                         : m.health.why()));
        }
      }
      v.rtt = GroupRtt(std::move(estimates));
      if (!v.healthy) v.why = absl::StrJoin(whys, "; ");
      views.push_back(std::move(v));
    }
    const Selection& s = selector_.Update(now, views);
    if (s.switched) {
      NIGHFS_LOG(INFO) << "proxyselect: "
                       << (!s.group.empty()           ? "routing through group " + s.group
                           : options_.direct != nullptr ? std::string("going direct")
                                                        : std::string("no proxy group can serve"))
                       << ": " << s.reason;
    }
  }

  // The first route for `id`, the fast path of every call: the home member in the selected
  // group, or the direct store when no group is selected. Plan() is only built after it failed.
  std::optional<Route> FirstRoute(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    const Group* g = SelectedLocked();
    if (g == nullptr) {
      if (options_.direct == nullptr) return std::nullopt;
      return direct_;
    }
    const int home = RendezvousHome(g->hashes, id, [&](size_t i) { return g->members[i]->usable(); });
    if (home < 0) return std::nullopt;
    const Member& m = *g->members[home];
    return m.target;
  }

  const Group* SelectedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    const std::string& name = selector_.current().group;
    if (name.empty()) return nullptr;
    for (const Group& g : groups_) {
      if (g.name == name) return &g;
    }
    return nullptr;
  }

  // Every route for `id`, in order: the selected group's healthy members by rendezvous rank,
  // the other healthy groups' (nearest first), the direct store; without a direct store, the
  // ejected members as a last resort (better a slim chance than a certain error).
  std::vector<Route> Plan(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::ReaderMutexLock lock(&mu_);
    std::vector<const Group*> order;
    if (const Group* g = SelectedLocked()) order.push_back(g);
    std::vector<std::pair<absl::Duration, const Group*>> others;
    for (const Group& g : groups_) {
      if (!order.empty() && order[0] == &g) continue;
      std::vector<absl::Duration> estimates;
      for (const Member* m : g.members) {
        if (m->usable() && m->estimator.estimate()) estimates.push_back(*m->estimator.estimate());
      }
      others.emplace_back(GroupRtt(std::move(estimates)).value_or(absl::InfiniteDuration()), &g);
    }
    std::stable_sort(others.begin(), others.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [rtt, g] : others) order.push_back(g);

    std::vector<Route> routes;
    absl::flat_hash_set<std::string> seen;
    std::vector<const Member*> ejected;
    for (const Group* g : order) {
      for (size_t i : RendezvousOrder(g->hashes, id)) {
        const Member& m = *g->members[i];
        if (m.target->store == nullptr || !seen.insert(m.address).second) continue;
        if (m.health.healthy()) {
          routes.push_back(m.target);
        } else {
          ejected.push_back(&m);
        }
      }
    }
    if (options_.direct != nullptr) {
      routes.push_back(direct_);
    } else {
      for (const Member* m : ejected) routes.push_back(m->target);
    }
    return routes;
  }

  // Calls `fn` on the routes for `key` in order until one answers, within the deadline; rounds
  // of the whole chain are repeated with backoff while every route fails.
  template <class T, class Fn>
  auto Run(std::string_view key, Fn fn, uint64_t bytes_in = 0, int max_rounds = 0)
      -> std::conditional_t<std::is_same_v<T, absl::Status>, absl::Status, absl::StatusOr<T>> {
    using Result =
        std::conditional_t<std::is_same_v<T, absl::Status>, absl::Status, absl::StatusOr<T>>;
    const uint64_t id = KeyId(key);
    const absl::Time deadline = options_.clock() + options_.request_deadline;
    absl::Duration backoff = options_.initial_backoff;
    std::vector<std::string> failures;  // "route: status", for the final error
    auto attempt = [&](const Route& r, bool* done) -> Result {
      const absl::Time t0 = options_.clock();
      // The route's own budget (call_deadline.h): what is left of the request's, and for a
      // member no more than member_attempt_timeout, so that a member that stopped answering
      // costs one attempt's time before the next route is tried, whatever its own retries.
      absl::Duration budget = deadline - t0;
      if (!r->address.empty()) budget = std::min(budget, options_.member_attempt_timeout);
      blockstore::ScopedCallDeadline bounded(absl::Now() + budget);
      Result result = fn(*r->store);
      const absl::Duration latency = options_.clock() - t0;
      const absl::Status& status = StatusOf(result);
      const bool failed = !status.ok() && status.code() != absl::StatusCode::kNotFound;
      r->stats.Record(latency, bytes_in + PayloadBytes(result), failed);
      *done = status.ok() || !IsRouteFailure(status);
      if (!*done) {
        failures.push_back(
            absl::StrCat(r->address.empty() ? "direct" : r->address, ": ", status.ToString()));
        if (!r->address.empty() && EjectsMember(status)) OnRequestFailure(r->address, status);
      }
      return result;
    };

    // The first route's store, so that round 0 of the plan does not try it twice in a row.
    const BlockStore* tried_first = nullptr;
    if (std::optional<Route> first = FirstRoute(id)) {
      bool done = false;
      Result result = attempt(*first, &done);
      if (done) return result;
      tried_first = (*first)->store.get();
    }
    for (int round = 0;; ++round) {
      std::vector<Route> plan = Plan(id);
      if (plan.empty() && tried_first == nullptr) {
        return absl::UnavailableError(absl::StrCat(
            "no route for ", std::string(key), ": no usable proxy group member and ",
            options_.direct_missing_reason));
      }
      for (const Route& r : plan) {
        // The first route just failed; a plan made after its ejection skips it anyway.
        if (round == 0 && r->store.get() == tried_first) continue;
        if (options_.clock() >= deadline) break;
        bool done = false;
        Result result = attempt(r, &done);
        if (done) return result;
      }
      if (round + 1 == max_rounds || options_.clock() + backoff >= deadline) break;
      options_.sleep(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    // Keep the last few failures: a long outage would otherwise make a huge message.
    if (failures.size() > 4) failures.erase(failures.begin(), failures.end() - 4);
    return absl::UnavailableError(absl::StrCat(
        "every route failed for ", std::string(key), " within ",
        absl::FormatDuration(options_.request_deadline), " (last: ",
        absl::StrJoin(failures, "; "), ")",
        options_.direct == nullptr ? absl::StrCat("; no direct route: ",
                                                  options_.direct_missing_reason)
                                   : ""));
  }

  static const absl::Status& StatusOf(const absl::Status& s) { return s; }
  template <class T>
  static const absl::Status& StatusOf(const absl::StatusOr<T>& s) { return s.status(); }

  const RoutingOptions options_;
  // Serializes SetGroups. Acquired before mu_.
  absl::Mutex config_mu_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Member>> members_ ABSL_GUARDED_BY(mu_);
  std::vector<Group> groups_ ABSL_GUARDED_BY(mu_);
  GroupSelector selector_ ABSL_GUARDED_BY(mu_);
  // The direct route (store null when the mount has none).
  const Route direct_;
  // Last: destroyed first, so no probe result arrives in a half-destroyed router.
  std::unique_ptr<Prober> prober_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RoutingStore>> RoutingStore::Create(RoutingOptions options) {
  auto store = std::make_unique<RoutingStoreImpl>(std::move(options));
  if (absl::Status s = store->Init(); !s.ok()) return s;
  return store;
}

}  // namespace nighfs::proxyselect
