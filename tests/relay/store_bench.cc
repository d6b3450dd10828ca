// nighfs-store-bench: the raw ceiling of an object store as nighfs's own client sees it: N
// threads PUT objects of one size through blockstore::OpenBlockStore (SigV4, the pooled HTTP
// client) for a while, then GET back what they PUT for as long, each GET checked byte for byte.
// For scripts/bench.sh (issue 14: "the store's own 8-stream ceiling"); not installed.
//
//   nighfs-store-bench --store 's3://bucket/ceiling?endpoint=http://127.0.0.1:PORT&region=us-east-1'
//     --credentials creds --threads 8 --size 4194304 --seconds 5
//
// Prints two lines, the PUT phase then the GET phase:
//   "op=put threads=8 size=4194304 seconds=5.00 objects=N errors=0 MB/s=X objects/s=Y"
// A failed request, or a GET whose body is not exactly what was PUT under that key, is an error
// and not throughput; the first error goes to stderr and the exit status is 1.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "tests/relay/bench_util.h"

namespace {

namespace bs = nighfs::blockstore;

using nighfs::relaybench::Payload;
using nighfs::relaybench::Totals;

// Every object of thread t carries the thread's Payload(size, t + 1) with its first 16 bytes
// overwritten by (thread, index), so that a GET answered with another object's bytes is caught.
void Stamp(std::string* body, uint64_t thread, uint64_t index) {
  std::memcpy(body->data(), &thread, 8);
  std::memcpy(body->data() + 8, &index, 8);
}

std::string Key(const std::string& prefix, size_t size, int thread, uint64_t index) {
  return absl::StrCat(prefix, "/", size, "/", thread, "/", index);
}

void Report(const char* op, int threads, size_t size, absl::Duration took, const Totals& t) {
  const double secs = absl::ToDoubleSeconds(took);
  std::printf("op=%s threads=%d size=%zu seconds=%.2f objects=%lu errors=%lu MB/s=%.1f "
              "objects/s=%.1f\n",
              op, threads, size, secs, static_cast<unsigned long>(t.requests.load()),
              static_cast<unsigned long>(t.errors.load()),
              static_cast<double>(t.bytes.load()) / 1e6 / secs,
              static_cast<double>(t.requests.load()) / secs);
  std::fflush(stdout);
}

bool PrintFirstError(const char* op, Totals& t) {
  absl::MutexLock lock(&t.mu);
  if (t.first_error.empty()) return false;
  std::fprintf(stderr, "nighfs-store-bench: %s: first error: %s\n", op, t.first_error.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nighfs-store-bench: parallel PUT then verified GET of objects of one size"};
  std::string url;
  std::string credentials_file;
  std::string prefix = "ceiling";
  int threads = 8;
  size_t size = 4 << 20;
  double seconds = 5;
  app.add_option("--store", url, "store URL (s3://..., file://...)")->required();
  app.add_option("--credentials", credentials_file, "KEY=VALUE credentials file (mode 0600)");
  app.add_option("--prefix", prefix, "key prefix (distinct per run: keys are written once)");
  app.add_option("--threads", threads, "parallel requests");
  app.add_option("--size", size, "bytes per object (at least 16)");
  app.add_option("--seconds", seconds, "duration of each phase");
  CLI11_PARSE(app, argc, argv);
  if (threads < 1 || size < 16 || seconds <= 0) {
    std::fprintf(stderr, "nighfs-store-bench: bad --threads/--size/--seconds\n");
    return 2;
  }
  auto creds = bs::LoadCredentials(credentials_file);
  if (!creds.ok()) {
    std::fprintf(stderr, "nighfs-store-bench: %s\n", creds.status().ToString().c_str());
    return 1;
  }
  auto store = bs::OpenBlockStore(url, *creds);
  if (!store.ok()) {
    std::fprintf(stderr, "nighfs-store-bench: %s\n", store.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = (*store)->Check(); !s.ok()) {
    std::fprintf(stderr, "nighfs-store-bench: %s\n", s.ToString().c_str());
    return 1;
  }
  bs::BlockStore& st = **store;
  const absl::Duration phase = absl::Seconds(seconds);

  // PUT: each thread writes objects 0, 1, 2, ... under its own folder until the deadline.
  std::vector<uint64_t> written(threads, 0);  // objects thread t PUT successfully: 0..n-1
  Totals put;
  absl::Time start = absl::Now();
  {
    const absl::Time end = start + phase;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        std::string body = Payload(size, t + 1);
        for (uint64_t i = 0; absl::Now() < end; ++i) {
          Stamp(&body, t, i);
          if (absl::Status s = st.Put(Key(prefix, size, t, i), body); !s.ok()) {
            put.Error(absl::StrCat("PUT ", Key(prefix, size, t, i), ": ", s.ToString()));
            return;  // later keys would leave a hole in 0..n-1
          }
          written[t] = i + 1;
          ++put.requests;
          put.bytes += size;
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  Report("put", threads, size, absl::Now() - start, put);
  bool failed = PrintFirstError("put", put);

  // GET: each thread reads every thread's objects in turn, starting at a different place, and
  // compares each body with what was PUT under that key.
  std::vector<std::pair<int, uint64_t>> objects;
  for (int t = 0; t < threads; ++t) {
    for (uint64_t i = 0; i < written[t]; ++i) objects.emplace_back(t, i);
  }
  if (objects.empty()) {
    std::fprintf(stderr, "nighfs-store-bench: no object was written\n");
    return 1;
  }
  std::vector<std::string> bodies;
  for (int t = 0; t < threads; ++t) bodies.push_back(Payload(size, t + 1));
  Totals get;
  start = absl::Now();
  {
    const absl::Time end = start + phase;
    std::vector<std::thread> pool;
    for (int g = 0; g < threads; ++g) {
      pool.emplace_back([&, g] {
        for (size_t n = g * objects.size() / threads; absl::Now() < end; ++n) {
          const auto [t, i] = objects[n % objects.size()];
          const std::string key = Key(prefix, size, t, i);
          auto got = st.Get(key);
          if (!got.ok()) {
            get.Error(absl::StrCat("GET ", key, ": ", got.status().ToString()));
            continue;
          }
          uint64_t stamp[2] = {static_cast<uint64_t>(t), i};
          if (got->size() != size || std::memcmp(got->data(), stamp, 16) != 0 ||
              std::string_view(*got).substr(16) != std::string_view(bodies[t]).substr(16)) {
            get.Error(absl::StrCat("GET ", key, ": ", got->size(), " bytes, not the ", size,
                                   " bytes PUT"));
            continue;
          }
          ++get.requests;
          get.bytes += size;
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  Report("get", threads, size, absl::Now() - start, get);
  failed = PrintFirstError("get", get) || failed;
  return failed ? 1 : 0;
}
