// nighfs-http-bench: block PUT/GET throughput against nighfs-proxy's S3-shaped API with N
// parallel streams, and raw loopback TCP with the same streams for scale. For
// scripts/bench_proxy.sh; not installed.
//
//   nighfs-http-bench put --url https://127.0.0.1:7430/VOLUME --token-file T --ca-file CA
//     --streams 8 --size 4194304 --seconds 5
//   nighfs-http-bench get ...   (PUTs --blocks blocks first, then GETs them: cached reads)
//   nighfs-http-bench tcp --streams 8 --size 4194304 --seconds 5
//
// Prints one line: "op=put streams=8 size=4194304 seconds=5.00 requests=N errors=E MiB/s=X".
// A request that does not return 200 (or a GET whose body has the wrong size or CRC32C) is
// an error, not throughput; the first error's status and body go to stderr.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "common/crc32c.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "common/token_file.h"
#include "tests/relay/bench_util.h"

namespace {

using nighfs::HttpClient;
using nighfs::HttpClientOptions;
using nighfs::HttpRequest;

using nighfs::relaybench::Payload;
using nighfs::relaybench::Totals;

std::string CrcHeader(const std::string& data) {
  const uint32_t crc = nighfs::Crc32c(data);
  const char be[4] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                      static_cast<char>(crc >> 8), static_cast<char>(crc)};
  return nighfs::Base64Encode(std::string_view(be, 4));
}

class Bench {
 public:
  Bench(std::string url, std::string token, const std::string& ca_file) : url_(std::move(url)),
        token_(std::move(token)) {
    options_.ca_file = ca_file;
    options_.max_idle_connections = 4;
  }

  bool Put(HttpClient* http, uint64_t id, const std::string& data, Totals* t) {
    HttpRequest r;
    r.method = "PUT";
    r.url = absl::StrCat(url_, "/", nighfs::blockstore::BlockKey(id));
    r.headers = {{"Authorization", "Bearer " + token_},
                 {"x-amz-checksum-crc32c", CrcHeader(data)}};
    r.body = data;
    auto resp = http->Do(r);
    if (!resp.ok() || resp->status != 200) {
      t->Error(resp.ok() ? absl::StrCat("PUT ", resp->status, " ", resp->body)
                         : resp.status().ToString());
      return false;
    }
    ++t->requests;
    t->bytes += data.size();
    return true;
  }

  bool Get(HttpClient* http, uint64_t id, size_t size, uint32_t crc, Totals* t) {
    HttpRequest r;
    r.url = absl::StrCat(url_, "/", nighfs::blockstore::BlockKey(id));
    r.headers = {{"Authorization", "Bearer " + token_}};
    auto resp = http->Do(r);
    if (!resp.ok() || resp->status != 200 || resp->body.size() != size ||
        nighfs::Crc32c(resp->body) != crc) {
      t->Error(resp.ok() ? absl::StrCat("GET ", resp->status, " size ", resp->body.size())
                         : resp.status().ToString());
      return false;
    }
    ++t->requests;
    t->bytes += size;
    return true;
  }

  std::unique_ptr<HttpClient> NewClient() const { return HttpClient::Create(options_); }

 private:
  std::string url_;
  std::string token_;
  HttpClientOptions options_;
};

// N sender/receiver socket pairs over 127.0.0.1; counts what the receivers read.
void RunTcp(int streams, size_t size, absl::Duration duration, Totals* t) {
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::listen(lfd, streams);
  socklen_t len = sizeof(a);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  const absl::Time end = absl::Now() + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < streams; ++i) {
    threads.emplace_back([&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return;
      const std::string data = Payload(size, 1);
      while (absl::Now() < end) {
        size_t off = 0;
        while (off < data.size()) {
          const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
          if (n <= 0) break;
          off += static_cast<size_t>(n);
        }
        ++t->requests;
      }
      ::close(fd);
    });
    const int c = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
    threads.emplace_back([c, t] {
      std::string buf(1 << 20, '\0');
      for (;;) {
        const ssize_t n = ::recv(c, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        t->bytes += static_cast<uint64_t>(n);
      }
      ::close(c);
    });
  }
  for (auto& th : threads) th.join();
  ::close(lfd);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nighfs-http-bench: nighfs-proxy PUT/GET throughput, and raw loopback TCP"};
  std::string op;
  std::string url;
  std::string token_file;
  std::string ca_file;
  int streams = 1;
  size_t size = 4 << 20;
  double seconds = 5;
  int blocks = 32;
  uint64_t id_base = uint64_t{1} << 44;
  app.add_option("op", op, "put | get | tcp")->required();
  app.add_option("--url", url, "https://HOST:PORT/VOLUME of the proxy");
  app.add_option("--token-file", token_file, "the volume token (write access)");
  app.add_option("--ca-file", ca_file, "CA of the proxy's certificate");
  app.add_option("--streams", streams, "parallel streams");
  app.add_option("--size", size, "bytes per request (block size)");
  app.add_option("--seconds", seconds, "duration");
  app.add_option("--blocks", blocks, "get: distinct blocks PUT first and read in turn");
  app.add_option("--id-base", id_base, "first block id (distinct per run: keys are immutable)");
  CLI11_PARSE(app, argc, argv);
  if (streams < 1 || size == 0 || seconds <= 0 || blocks < 1) {
    std::fprintf(stderr, "nighfs-http-bench: bad --streams/--size/--seconds/--blocks\n");
    return 2;
  }
  const absl::Duration duration = absl::Seconds(seconds);
  Totals totals;
  absl::Time start;
  if (op == "tcp") {
    start = absl::Now();
    RunTcp(streams, size, duration, &totals);
  } else if (op == "put" || op == "get") {
    if (url.empty() || token_file.empty()) {
      std::fprintf(stderr, "nighfs-http-bench: %s needs --url and --token-file\n", op.c_str());
      return 2;
    }
    auto token = nighfs::ReadPrivateTokenFile(token_file);
    if (!token.ok()) {
      std::fprintf(stderr, "nighfs-http-bench: %s\n", token.status().ToString().c_str());
      return 1;
    }
    Bench bench(url, *token, ca_file);
    std::vector<std::string> data;
    std::vector<uint32_t> crcs;
    if (op == "get") {
      Totals warm;
      auto http = bench.NewClient();
      for (int i = 0; i < blocks; ++i) {
        data.push_back(Payload(size, id_base + i));
        crcs.push_back(nighfs::Crc32c(data.back()));
        if (!bench.Put(http.get(), id_base + i, data.back(), &warm)) {
          absl::MutexLock lock(&warm.mu);
          std::fprintf(stderr, "nighfs-http-bench: warm-up PUT failed: %s\n",
                       warm.first_error.c_str());
          return 1;
        }
      }
    }
    const std::string put_data = Payload(size, 7);
    start = absl::Now();
    const absl::Time end = start + duration;
    std::vector<std::thread> threads;
    for (int s = 0; s < streams; ++s) {
      threads.emplace_back([&, s] {
        auto http = bench.NewClient();
        for (uint64_t i = 0; absl::Now() < end; ++i) {
          if (op == "put") {
            // Same bytes, distinct keys: a new block each time (blocks are immutable).
            bench.Put(http.get(), id_base + blocks + (uint64_t{1} << 20) * (s + 1) + i,
                      put_data, &totals);
          } else {
            const size_t b = (s + i) % data.size();
            bench.Get(http.get(), id_base + b, size, crcs[b], &totals);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  } else {
    std::fprintf(stderr, "nighfs-http-bench: op must be put, get or tcp\n");
    return 2;
  }
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  {
    absl::MutexLock lock(&totals.mu);
    if (!totals.first_error.empty()) {
      std::fprintf(stderr, "nighfs-http-bench: first error: %s\n", totals.first_error.c_str());
    }
  }
  std::printf("op=%s streams=%d size=%zu seconds=%.2f requests=%lu errors=%lu MiB/s=%.1f\n",
              op.c_str(), streams, size, secs, static_cast<unsigned long>(totals.requests.load()),
              static_cast<unsigned long>(totals.errors.load()),
              static_cast<double>(totals.bytes.load()) / (1 << 20) / secs);
  return totals.errors.load() == 0 ? 0 : 1;
}
