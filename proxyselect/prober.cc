#include "proxyselect/prober.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nighfs::proxyselect {

Prober::Prober(std::shared_ptr<Pinger> pinger, ProberOptions options, ResultFn on_result,
               std::function<void()> on_tick)
    : pinger_(std::move(pinger)),
      options_(std::move(options)),
      on_result_(std::move(on_result)),
      on_tick_(std::move(on_tick)) {}

Prober::~Prober() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& [address, m] : members_) m->removed = true;
  }
  if (scheduler_.joinable()) scheduler_.join();
  std::vector<std::unique_ptr<Member>> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [address, m] : members_) all.push_back(std::move(m));
    members_.clear();
    for (auto& m : retired_) all.push_back(std::move(m));
    retired_.clear();
  }
  for (auto& m : all) {
    if (m->worker.joinable()) m->worker.join();
  }
}

void Prober::SetMembers(const std::vector<std::string>& addresses) {
  const std::set<std::string> wanted(addresses.begin(), addresses.end());
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  for (auto it = members_.begin(); it != members_.end();) {
    if (wanted.count(it->first) == 0) {
      it->second->removed = true;
      retired_.push_back(std::move(it->second));
      it = members_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& address : wanted) {
    if (members_.count(address) != 0) continue;
    // Back before its last ping returned: revive it rather than start a second ping to it
    // (its worker checks `removed` only once that ping is over).
    auto old = std::find_if(retired_.begin(), retired_.end(), [&](const auto& m) {
      return m->address == address && m->in_flight;
    });
    if (old != retired_.end()) {
      (*old)->removed = false;
      members_.emplace(address, std::move(*old));
      retired_.erase(old);
      continue;
    }
    auto m = std::make_unique<Member>();
    m->address = address;
    Member* raw = m.get();
    m->worker = std::thread([this, raw] { WorkerLoop(raw); });
    members_.emplace(address, std::move(m));
  }
}

void Prober::WorkerLoop(Member* m) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      // Removal and shutdown both set `removed`, so the member alone says when to wake.
      mu_.Await(absl::Condition(
          +[](Member* m) { return m->requested || m->removed; }, m));
      if (m->removed) return;
      m->requested = false;
    }
    absl::StatusOr<absl::Duration> rtt = pinger_->Ping(m->address);
    const absl::Time when = options_.clock();
    bool report = false;
    {
      absl::MutexLock lock(&mu_);
      m->in_flight = false;
      report = !m->timed_out && !m->removed && !stopping_;
      m->timed_out = false;
    }
    if (report) on_result_(m->address, rtt, when);
  }
}

void Prober::Tick(absl::Time now) {
  std::vector<std::string> late;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (auto& [address, m] : members_) {
      if (m->in_flight) {
        if (!m->timed_out && now - m->started >= options_.timeout) {
          m->timed_out = true;
          late.push_back(address);
        }
        continue;
      }
      if (now < m->next_due) continue;
      m->in_flight = true;
      m->requested = true;
      m->started = now;
      m->next_due = now + options_.interval;
    }
    // Join the workers of removed members whose last ping has returned.
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (!(*it)->in_flight) {
        std::unique_ptr<Member> m = std::move(*it);
        it = retired_.erase(it);
        mu_.Unlock();
        m->worker.join();
        mu_.Lock();
        it = retired_.begin();  // the list may have changed meanwhile
      } else {
        ++it;
      }
    }
  }
  for (const std::string& address : late) {
    on_result_(address,
               absl::DeadlineExceededError(absl::StrCat(
                   "no answer to ping within ", absl::FormatDuration(options_.timeout))),
               now);
  }
}

void Prober::Start() {
  scheduler_ = std::thread([this] {
    // Ticks often enough that a probe is late by at most a few percent of the interval or
    // timeout, and never busier than every 5 ms.
    const absl::Duration step = std::clamp(std::min(options_.interval, options_.timeout) / 20,
                                           absl::Milliseconds(5), absl::Milliseconds(100));
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        // AwaitWithDeadline, not AwaitWithTimeout: the latter calls the former through the PLT,
        // which the TSan shim for Debian's abseil (tests/sanitizers) would annotate twice.
        if (mu_.AwaitWithDeadline(absl::Condition(&stopping_), absl::Now() + step)) return;
      }
      Tick(options_.clock());
      if (on_tick_) on_tick_();
    }
  });
}

int Prober::InFlightForTest() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [address, m] : members_) n += m->in_flight ? 1 : 0;
  return n;
}

}  // namespace nighfs::proxyselect
