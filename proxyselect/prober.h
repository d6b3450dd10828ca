// The RTT prober: pings every member of every group once per interval from a background thread,
// with at most one probe in flight per member, and reports each result (or, after `timeout`
// without an answer, DeadlineExceeded: a black-holed member is noticed within the timeout even
// though its ping is still stuck; the stuck ping's eventual answer is dropped).
//
// Each member has a worker thread of its own that runs its pings, so a member that hangs delays
// nobody else; a scheduler thread (Start()) calls Tick() every few milliseconds. Tests call
// Tick() themselves with a fake clock instead of Start().
#ifndef NIGHFS_PROXYSELECT_PROBER_H_
#define NIGHFS_PROXYSELECT_PROBER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proxyselect/proxyselect.h"

namespace nighfs::proxyselect {

struct ProberOptions {
  absl::Duration interval = absl::Seconds(1);
  absl::Duration timeout = absl::Seconds(1);
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

// Thread-safe. The callbacks run on the prober's threads, under none of its locks.
class Prober {
 public:
  // Called with each probe's result and the time it was known.
  using ResultFn = std::function<void(const std::string& address,
                                      const absl::StatusOr<absl::Duration>& rtt, absl::Time when)>;

  // `on_tick` (may be empty) runs after every scheduler tick (the router re-selects there, so
  // that a hold time ends even between probe results).
  Prober(std::shared_ptr<Pinger> pinger, ProberOptions options, ResultFn on_result,
         std::function<void()> on_tick = {});
  // Stops the threads; waits for pings in flight (the Pinger must bound them).
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // The members to probe. New ones are probed at the next tick; removed ones are no longer
  // probed (a ping of theirs in flight finishes unreported).
  void SetMembers(const std::vector<std::string>& addresses);
  // Starts the scheduler thread.
  void Start();
  // Starts the probes that are due at `now` and times out the late ones.
  void Tick(absl::Time now);

  // Members whose ping is running (for tests).
  int InFlightForTest() const;

 private:
  struct Member {
    std::string address;
    absl::Time next_due = absl::InfinitePast();
    absl::Time started = absl::InfinitePast();
    bool requested = false;  // the worker should ping now
    bool in_flight = false;  // requested or running
    bool timed_out = false;  // reported DeadlineExceeded; the answer will be dropped
    bool removed = false;
    std::thread worker;
  };

  void WorkerLoop(Member* m);

  const std::shared_ptr<Pinger> pinger_;
  const ProberOptions options_;
  const ResultFn on_result_;
  const std::function<void()> on_tick_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Member>> members_ ABSL_GUARDED_BY(mu_);
  // Removed members whose worker has not been joined yet.
  std::vector<std::unique_ptr<Member>> retired_ ABSL_GUARDED_BY(mu_);
  std::thread scheduler_;
};

}  // namespace nighfs::proxyselect

#endif  // NIGHFS_PROXYSELECT_PROBER_H_
