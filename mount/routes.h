// The routes of a mount's block I/O as `nighfs status` shows them (status.proto Route): the
// "direct" route to the volume's object store, or the proxy of -o proxy=, each with its health
// from the mount's real requests (CountingStore) and, for a proxy, from periodic pings.
#ifndef NIGHFS_MOUNT_ROUTES_H_
#define NIGHFS_MOUNT_ROUTES_H_

#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "blockstore/counting_store.h"
#include "blockstore/proxy_store.h"
#include "status.pb.h"

namespace nighfs::fs {

// The last `GET /ping` of a proxy.
struct PingResult {
  bool answered = false;  // whether any ping has ended yet
  absl::Status status;    // OK, or why the last ping failed
  absl::Duration rtt;     // of the last ping, when OK
};

// Pings `proxy` every `interval` on a thread of its own (so a slow heartbeat or status write
// never leaves the RTT stale), from construction to destruction. Thread-safe. `proxy` must
// outlive it.
class ProxyPinger {
 public:
  ProxyPinger(blockstore::ProxyStore* proxy, absl::Duration interval);
  ~ProxyPinger();
  ProxyPinger(const ProxyPinger&) = delete;
  ProxyPinger& operator=(const ProxyPinger&) = delete;

  PingResult Last() const;

 private:
  void Loop();

  blockstore::ProxyStore* const proxy_;
  const absl::Duration interval_;
  mutable absl::Mutex mu_;
  PingResult last_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

// The "direct" route: blocks go straight to the volume's object store (`store`).
void FillDirectRoute(const blockstore::CountingStore& store, status::v1::Route* r);

// The route of -o proxy=: every block request goes through `store` (a CountingStore over the
// ProxyStore of `target`). Healthy while the mount's requests through it and its pings
// succeed; rtt_us from the last ping (0 before the first answer or after a failed one).
void FillProxyRoute(const blockstore::CountingStore& store, std::string_view target,
                    const PingResult& ping, status::v1::Route* r);

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_ROUTES_H_
