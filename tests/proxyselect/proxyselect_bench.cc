// Routing cost per block request: ns per call of a RoutingStore over in-memory member stores,
// against the same call on a memory store directly, with and without proxy groups, on the fast
// path (the selected group's home member) and on the slow one (every group down: the full route
// plan is built for each call). Also the rendezvous hashing alone. A command, not a test:
//   build/tests/proxyselect/proxyselect_bench [iterations]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
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

// CPU ns per call of `fn(i)`: `iterations` calls on each of `threads` threads, the threads'
// CPU time (CLOCK_THREAD_CPUTIME_ID) over all calls. CPU time rather than wall time: this is a
// shared machine, and time spent running other processes is not routing cost; contention
// between the threads (cache lines, locks) still counts.
double ThreadCpuNs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

double NsPerCall(int iterations, int threads, const std::function<void(int)>& fn) {
  for (int i = 0; i < iterations / 20; ++i) fn(i);  // warm-up
  std::vector<double> cpu(threads);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      const double start = ThreadCpuNs();
      for (int i = 0; i < iterations; ++i) fn(i + t * 7919);
      cpu[t] = ThreadCpuNs() - start;
    });
  }
  for (auto& t : ts) t.join();
  double total = 0;
  for (double c : cpu) total += c;
  return total / (static_cast<double>(iterations) * threads);
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

  std::printf("CPU ns per Get of 64 bytes from a memory store (fastest of 7 runs)\n");
  std::printf("%-44s %8s %12s %12s %12s\n", "case", "threads", "store only", "routed",
              "routing");
  auto get = [&](blockstore::BlockStore& store) {
    return [&store, &keys](int i) {
      absl::StatusOr<std::string> r = store.Get(keys[i % kKeys], 0, 64);
      if (!r.ok()) std::abort();
    };
  };
  // The router's calls end in the same memory store as the baseline's; baseline and router
  // runs alternate, and each keeps its fastest, so that the machine's other load (this is a
  // shared box) shows in neither.
  auto row = [&](const std::string& name, int threads, Setup& s) {
    double base = 0, routed = 0;
    for (int run = 0; run < 7; ++run) {
      const double b = NsPerCall(iterations, threads, get(*s.backing));
      const double r = NsPerCall(iterations, threads, get(*s.router));
      base = run == 0 ? b : std::min(base, b);
      routed = run == 0 ? r : std::min(routed, r);
    }
    std::printf("%-44s %8d %12.0f %12.0f %12.0f\n", name.c_str(), threads, base, routed,
                routed - base);
  };

  for (int threads : {1, 2}) {
    struct Case {
      std::string name;
      int groups, members;
      bool down, slow;
    };
    const Case cases[] = {
        {"no groups (direct only)", 0, 0, false, false},
        {"1 group x 3 members", 1, 3, false, false},
        {"3 groups x 8 members", 3, 8, false, false},
        {"3 groups x 32 members", 3, 32, false, false},
        {"3x8, every group down (direct)", 3, 8, true, false},
        {"1x3, one member in back-pressure (failover)", 1, 3, false, true},
    };
    for (const Case& c : cases) {
      Setup s = Make(c.groups, c.members, c.down, c.slow);
      for (const std::string& k : keys) (void)s.backing->Put(k, block);
      row(c.name, threads, s);
    }
  }

  std::printf("\n%-44s %12s\n", "rendezvous home only", "ns/call");
  for (int n : {3, 8, 32}) {
    std::vector<uint64_t> hashes;
    for (int m = 0; m < n; ++m) hashes.push_back(MemberHash(absl::StrCat("p", m, ":7430")));
    volatile int sink = 0;
    double ns = 0;
    for (int run = 0; run < 7; ++run) {
      const double r = NsPerCall(iterations * 4, 1, [&](int i) {
        sink = sink + RendezvousHome(hashes, KeyId(keys[i % kKeys]), [](size_t) { return true; });
      });
      ns = run == 0 ? r : std::min(ns, r);
    }
    std::printf("%-44s %12.1f\n", absl::StrCat(n, " members (key hash included)").c_str(), ns);
  }
}

}  // namespace
}  // namespace nighfs::proxyselect

int main(int argc, char** argv) {
  nighfs::SetLogLevel(nighfs::LogLevel::WARNING);
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 50000;
  nighfs::proxyselect::Run(iterations);
  return 0;
}
