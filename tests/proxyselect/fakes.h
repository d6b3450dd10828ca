// Fakes for proxyselect tests and the benchmark: a settable clock whose sleep advances it, a
// pinger answering programmed RTTs, and member stores (fault-injecting, over memory stores)
// that report themselves as the holder of what they write, as a proxy does.
#ifndef NIGHFS_TESTS_PROXYSELECT_FAKES_H_
#define NIGHFS_TESTS_PROXYSELECT_FAKES_H_

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "blockstore/store_wrapper.h"
#include "proxyselect/proxyselect.h"

namespace nighfs::proxyselect::testing {

class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);
};

// Each address answers its programmed RTT (times 1 ± jitter, from a seeded generator) or error;
// an address never programmed answers Unavailable.
class FakePinger : public Pinger {
 public:
  explicit FakePinger(uint32_t seed = 1) : rng_(seed) {}
  absl::StatusOr<absl::Duration> Ping(const std::string& address) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    auto it = answers_.find(address);
    if (it == answers_.end()) return absl::UnavailableError("no such proxy");
    if (!it->second.ok()) return it->second.status();
    std::uniform_real_distribution<double> f(1 - jitter_, 1 + jitter_);
    return *it->second * f(rng_);
  }
  void Set(const std::string& address, absl::StatusOr<absl::Duration> answer) {
    absl::MutexLock lock(&mu_);
    answers_.insert_or_assign(address, std::move(answer));
  }
  void SetJitter(double jitter) {
    absl::MutexLock lock(&mu_);
    jitter_ = jitter;
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, absl::StatusOr<absl::Duration>> answers_ ABSL_GUARDED_BY(mu_);
  double jitter_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937 rng_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

// A proxy as the router sees it: writes land in `backing` and PutAndLocate names the proxy.
class HolderStore : public blockstore::BlockStoreWrapper {
 public:
  HolderStore(std::string address, std::shared_ptr<blockstore::BlockStore> backing)
      : BlockStoreWrapper(std::move(backing)), address_(std::move(address)) {}
  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override {
    if (absl::Status s = Put(key, data); !s.ok()) return s;
    return address_;
  }

 private:
  const std::string address_;
};

// The member stores of a test, by address: fault-injecting, each over its own memory store, or
// all over one shared store (proxies in front of one bucket).
class MemberStores {
 public:
  explicit MemberStores(std::shared_ptr<blockstore::BlockStore> shared = nullptr)
      : shared_(std::move(shared)) {}

  MemberStoreFactory Factory() {
    return [this](const std::string& address)
               -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
      if (address.find("unresolvable") != std::string::npos) {
        return absl::InvalidArgumentError("cannot resolve " + address);
      }
      return std::make_unique<blockstore::BlockStoreWrapper>(
          std::shared_ptr<blockstore::BlockStore>(Get(address)));
    };
  }
  // The member's store (made on first use, kept across SetGroups).
  std::shared_ptr<blockstore::FaultInjectingStore> Get(const std::string& address) {
    absl::MutexLock lock(&mu_);
    auto& s = stores_[address];
    if (s == nullptr) {
      std::shared_ptr<blockstore::BlockStore> backing =
          shared_ != nullptr ? shared_
                             : std::shared_ptr<blockstore::BlockStore>(blockstore::NewMemoryStore());
      s = std::make_shared<blockstore::FaultInjectingStore>(
          std::make_unique<HolderStore>(address, backing));
    }
    return s;
  }

 private:
  const std::shared_ptr<blockstore::BlockStore> shared_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<blockstore::FaultInjectingStore>> stores_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::proxyselect::testing

#endif  // NIGHFS_TESTS_PROXYSELECT_FAKES_H_
