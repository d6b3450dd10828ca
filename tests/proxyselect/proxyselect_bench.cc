// Routing cost per block request: ns per call of a RoutingStore over in-memory member stores,
// against the same call on a memory store directly, with and without proxy groups, on the fast
// path (the selected group's home member) and on the slow one (every group down: the full route
// plan is built for each call). Also the rendezvous hashing alone. A command, not a test:
//   build/tests/proxyselect/proxyselect_bench [iterations]
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "blockstore/fault_store.h"
#include "blockstore/store_wrapper.h"
#include "common/logging.h"
#include "proxyselect/proxyselect.h"
#include "proxyselect/rendezvous.h"
#include "tests/proxyselect/fakes.h"

namespace nighfs::proxyselect {
namespace {

using testing::FakePinger;

constexpr int kKeys = 1024;

std::vector<std::string> Keys() {
  std::vector<std::string> keys;
  for (int i = 0; i < kKeys; ++i) keys.push_back(blockstore::BlockKey(i));
  return keys;
}

// ns per call of `fn(i)` over `iterations` calls on each of `threads` threads (wall time over
// the calls of one thread: with 2 threads on 2 idle cores, contention shows as a rise). The
// fastest of 5 runs: the machine is shared, and the other runs measure its other tenants.
double NsPerCall(int iterations, int threads, const std::function<void(int)>& fn) {
  for (int i = 0; i < iterations / 10; ++i) fn(i);  // warm-up
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    const absl::Time start = absl::Now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&, t] {
        for (int i = 0; i < iterations; ++i) fn(i + t * 7919);
      });
    }
    for (auto& t : ts) t.join();
    const double ns = absl::ToDoubleNanoseconds(absl::Now() - start) / iterations;
    if (run == 0 || ns < best) best = ns;
  }
  return best;
}

struct Setup {
  std::shared_ptr<blockstore::BlockStore> backing;
  std::unique_ptr<RoutingStore> router;
};

// `groups` groups of `members` members each (group g at (g+1) ms), all in front of one memory
// store that is also the direct route.
// With `slow_first`, the first member of every group answers every call with 503 SlowDown
// (back-pressure: routed around, never ejected), so a third of the calls take the full plan.
Setup Make(int groups, int members, bool every_group_down, bool slow_first = false) {
  Setup s;
  s.backing = blockstore::NewMemoryStore();
  auto pinger = std::make_shared<FakePinger>();
  RoutingOptions o;
  for (int g = 0; g < groups; ++g) {
    GroupConfig gc{absl::StrCat("g", g), {}};
    for (int m = 0; m < members; ++m) {
      const std::string a = absl::StrCat("p", g, "-", m, ".example:7430");
      gc.members.push_back(a);
      if (every_group_down) {
        pinger->Set(a, absl::UnavailableError("down"));
      } else {
        pinger->Set(a, absl::Milliseconds(g + 1));
      }
    }
    o.groups.push_back(gc);
  }
  auto backing = s.backing;
  o.member_store_factory = [backing, slow_first](const std::string& address)
      -> absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> {
    if (slow_first && address.find("-0.") != std::string::npos) {
      auto slow = std::make_unique<blockstore::FaultInjectingStore>(
          std::make_unique<blockstore::BlockStoreWrapper>(backing));
      slow->FailNext(blockstore::FaultInjectingStore::Op::kGet,
                     absl::ResourceExhaustedError("503 SlowDown"),
                     blockstore::FaultInjectingStore::kForever);
      return slow;
    }
    return std::make_unique<blockstore::BlockStoreWrapper>(backing);
  };
  o.direct = s.backing;
  o.pinger = pinger;
  o.start_prober = false;
  s.router = std::move(*RoutingStore::Create(std::move(o)));
  s.router->ProbeRoundForTest();
  return s;
}

void Run(int iterations) {
  const std::vector<std::string> keys = Keys();
  const std::string block(4096, 'b');

  std::printf("%-44s %8s %12s %12s\n", "case", "threads", "Get ns/call", "routing ns");
  auto row = [&](const char* name, int threads, blockstore::BlockStore& store, double base) {
    const double ns = NsPerCall(iterations, threads, [&](int i) {
      absl::StatusOr<std::string> r = store.Get(keys[i % kKeys], 0, 64);
      if (!r.ok()) std::abort();
    });
    if (base == 0) {
      std::printf("%-44s %8d %12.0f %12s\n", name, threads, ns, "-");
    } else {
      std::printf("%-44s %8d %12.0f %12.0f\n", name, threads, ns, ns - base);
    }
    return ns;
  };

  for (int threads : {1, 2}) {
    Setup direct_only = Make(0, 0, false);
    for (const std::string& k : keys) (void)direct_only.backing->Put(k, block);
    const double base = row("memory store, no router", threads, *direct_only.backing, 0);
    row("router, no groups (direct)", threads, *direct_only.router, base);
    for (auto [groups, members] : {std::pair{1, 3}, std::pair{3, 8}, std::pair{3, 32}}) {
      Setup s = Make(groups, members, false);
      for (const std::string& k : keys) (void)s.backing->Put(k, block);
      row(absl::StrCat("router, ", groups, " groups x ", members, " members").c_str(), threads,
          *s.router, base);
    }
    Setup down = Make(3, 8, true);
    for (const std::string& k : keys) (void)down.backing->Put(k, block);
    row("router, 3x8, every group down (direct)", threads, *down.router, base);
    Setup slow = Make(1, 3, false, /*slow_first=*/true);
    for (const std::string& k : keys) (void)slow.backing->Put(k, block);
    row("router, 1x3, one member in back-pressure", threads, *slow.router, base);
  }

  std::printf("\n%-44s %12s\n", "rendezvous home only", "ns/call");
  for (int n : {3, 8, 32}) {
    std::vector<uint64_t> hashes;
    for (int m = 0; m < n; ++m) hashes.push_back(MemberHash(absl::StrCat("p", m, ":7430")));
    volatile int sink = 0;
    const double ns = NsPerCall(iterations * 4, 1, [&](int i) {
      sink = sink + RendezvousHome(hashes, KeyId(keys[i % kKeys]), [](size_t) { return true; });
    });
    std::printf("%-44s %12.1f\n", absl::StrCat(n, " members (key hash included)").c_str(), ns);
  }
}

}  // namespace
}  // namespace nighfs::proxyselect

int main(int argc, char** argv) {
  nighfs::SetLogLevel(nighfs::LogLevel::WARNING);
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 100000;
  nighfs::proxyselect::Run(iterations);
  return 0;
}
