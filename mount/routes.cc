#include "mount/routes.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace nighfs::fs {
namespace {

// What the mount's own requests through a route found: counters, the last failure, health.
void FillRouteCounters(const blockstore::StoreHealth& h, status::v1::Route* r) {
  r->set_healthy(h.healthy);
  r->set_requests(h.requests);
  r->set_errors(h.errors);
  r->set_errors_last_minute(h.errors_last_minute);
  r->set_last_error(h.last_error);
  if (h.last_error_time != absl::InfinitePast()) {
    r->set_last_error_ns(absl::ToUnixNanos(h.last_error_time));
  }
  if (h.last_success_time != absl::InfinitePast()) {
    r->set_last_success_ns(absl::ToUnixNanos(h.last_success_time));
  }
}

}  // namespace

ProxyPinger::ProxyPinger(blockstore::ProxyStore* proxy, absl::Duration interval)
    : proxy_(proxy), interval_(interval) {
  thread_ = std::thread([this] { Loop(); });
}

ProxyPinger::~ProxyPinger() {
  stop_.Notify();
  thread_.join();
}

PingResult ProxyPinger::Last() const {
  absl::MutexLock l(&mu_);
  return last_;
}

void ProxyPinger::Loop() {
  do {
    absl::StatusOr<absl::Duration> rtt = proxy_->Ping();
    bool was_ok = true;
    {
      absl::MutexLock l(&mu_);
      was_ok = last_.status.ok();
      last_.answered = true;
      last_.status = rtt.status();
      if (rtt.ok()) last_.rtt = *rtt;
    }
    // Changes only: a proxy down for an hour is not hundreds of lines of log.
    if (was_ok && !rtt.ok()) {
      NIGHFS_LOG(WARNING) << proxy_->Describe() << " stopped answering pings: " << rtt.status();
    } else if (!was_ok && rtt.ok()) {
      NIGHFS_LOG(INFO) << proxy_->Describe() << " answers pings again (" << *rtt << ")";
    }
  } while (!stop_.WaitForNotificationWithTimeout(interval_));
}

void FillDirectRoute(const blockstore::CountingStore& store, status::v1::Route* r) {
  FillRouteCounters(store.Health(), r);
  r->set_name("direct");
  r->set_kind("store");
  r->set_target(store.Describe());
  r->set_selected(true);
  r->set_reason(
      "no proxy groups are associated with this volume: blocks go straight to the object store");
}

void FillProxyRoute(const blockstore::CountingStore& store, std::string_view target,
                    const PingResult& ping, status::v1::Route* r) {
  FillRouteCounters(store.Health(), r);
  r->set_name("proxy");
  r->set_kind("proxy");
  r->set_target(std::string(target));
  r->set_selected(true);
  if (!ping.answered) {
    r->set_reason("-o proxy: every block request goes through this proxy (not pinged yet)");
  } else if (ping.status.ok()) {
    r->set_rtt_us(std::max<int64_t>(1, absl::ToInt64Microseconds(ping.rtt)));
    r->set_reason("-o proxy: every block request goes through this proxy");
  } else {
    r->set_healthy(false);
    r->set_reason(absl::StrCat("-o proxy (no other route): its ping fails: ",
                               ping.status.message()));
  }
}

}  // namespace nighfs::fs
