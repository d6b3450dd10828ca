// nighfs-relay: the latency relay (tests/relay/relay.h) as a process, for benchmark scripts.
// Not installed.
//
//   nighfs-relay --upstream 127.0.0.1:9000 --listen 127.0.0.1:0 --port-file relay.port
//     --delay-ms 15 --jitter-pct 0 --bandwidth 100M --control relay.ctl
//
// Runtime changes: write `key=value` lines to the --control file (keys: delay-ms, jitter-pct,
// bandwidth, mode; '#' comments; keys not in the file keep their value) and send SIGUSR1 (or
// SIGHUP). The file is applied all or nothing; once applied, the relay writes the resulting
// parameters to CONTROL.applied (written whole, by rename), so a script can wait for it:
//
//   rm -f relay.ctl.applied; echo mode=blackhole > relay.ctl; kill -USR1 $RELAY_PID
//   until [[ -e relay.ctl.applied ]]; do sleep 0.05; done
//
// A malformed file is logged and changes nothing (no .applied). SIGTERM/SIGINT: exit 0.
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/relay/relay.h"

namespace {

using nighfs::testing::ParseRelayMode;
using nighfs::testing::Relay;
using nighfs::testing::RelayModeName;
using nighfs::testing::RelayOptions;
using nighfs::testing::RelayParams;

// "HOST:PORT" or "[V6]:PORT".
absl::Status ParseHostPort(const std::string& s, std::string* host, int* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not HOST:PORT"));
  }
  std::string h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!absl::SimpleAtoi(s.substr(colon + 1), port) || *port < 0 || *port > 65535 || h.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", s, "' is not HOST:PORT"));
  }
  *host = h;
  return absl::OkStatus();
}

// Bytes per second: "12345", "100K", "100M", "1G" (binary units; "MiB", "M/s" also read).
absl::StatusOr<uint64_t> ParseBandwidth(absl::string_view s) {
  std::string v = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(s));
  absl::string_view rest = v;
  absl::ConsumeSuffix(&rest, "/S");
  absl::ConsumeSuffix(&rest, "B");
  absl::ConsumeSuffix(&rest, "I");
  uint64_t mult = 1;
  if (!rest.empty()) {
    switch (rest.back()) {
      case 'K': mult = uint64_t{1} << 10; break;
      case 'M': mult = uint64_t{1} << 20; break;
      case 'G': mult = uint64_t{1} << 30; break;
      default: break;
    }
    if (mult != 1) rest.remove_suffix(1);
  }
  uint64_t n = 0;
  if (!absl::SimpleAtoi(rest, &n)) {
    return absl::InvalidArgumentError(absl::StrCat("bad bandwidth '", s, "'"));
  }
  return n * mult;
}

// One `key=value` of the control file (the same names as the flags).
absl::Status ApplyKey(absl::string_view key, absl::string_view value, RelayParams* p) {
  if (key == "delay-ms") {
    double ms = 0;
    if (!absl::SimpleAtod(value, &ms) || ms < 0) return absl::InvalidArgumentError("bad delay-ms");
    p->delay = absl::Microseconds(static_cast<int64_t>(ms * 1000));
  } else if (key == "jitter-pct") {
    double pct = 0;
    if (!absl::SimpleAtod(value, &pct) || pct < 0 || pct > 100) {
      return absl::InvalidArgumentError("bad jitter-pct (0-100)");
    }
    p->jitter_percent = pct;
  } else if (key == "bandwidth") {
    absl::StatusOr<uint64_t> b = ParseBandwidth(value);
    if (!b.ok()) return b.status();
    p->bandwidth = *b;
  } else if (key == "mode") {
    auto m = ParseRelayMode(std::string_view(value.data(), value.size()));
    if (!m.ok()) return m.status();
    p->mode = *m;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown key '", key, "'"));
  }
  return absl::OkStatus();
}

absl::Status ApplyControlFile(const std::string& path, Relay* relay) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  RelayParams p = relay->params();
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (l.empty() || l.front() == '#') continue;
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(l, absl::MaxSplits('=', 1));
    absl::Status s = ApplyKey(absl::StripAsciiWhitespace(kv.first),
                              absl::StripAsciiWhitespace(kv.second), &p);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": ", s.message()));
  }
  relay->Set(p);
  return absl::OkStatus();
}

std::string Describe(const RelayParams& p) {
  return absl::StrCat("delay-ms=", absl::ToDoubleMilliseconds(p.delay),
                      "\njitter-pct=", p.jitter_percent, "\nbandwidth=", p.bandwidth,
                      "\nmode=", std::string(RelayModeName(p.mode)), "\n");
}

// Written whole or not at all (a script polling for the file never reads half of it).
bool WriteWhole(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Blocked before any thread starts: every thread inherits the mask and sigwait() below is
  // the only receiver, so a SIGUSR1 sent early is kept pending, not lost or fatal.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGUSR1, SIGHUP, SIGTERM, SIGINT}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"nighfs-relay: a TCP relay with delay, jitter, a bandwidth cap and faults"};
  std::string listen = "127.0.0.1:0";
  std::string upstream;
  std::string port_file;
  std::string control;
  double delay_ms = 0;
  double jitter_pct = 0;
  std::string bandwidth = "0";
  std::string mode = "forward";
  app.add_option("--listen", listen, "HOST:PORT to listen on (port 0: a free one)");
  app.add_option("--upstream", upstream, "HOST:PORT to relay to")->required();
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  app.add_option("--delay-ms", delay_ms, "one-way delay added to each direction (ms)");
  app.add_option("--jitter-pct", jitter_pct, "each chunk's delay varies by +- this percent");
  app.add_option("--bandwidth", bandwidth,
                 "bytes/s per direction, shared by all connections (100M = 100 MiB/s; 0 = none)");
  app.add_option("--mode", mode, "forward | refuse | reset | blackhole");
  app.add_option("--control", control,
                 "key=value file (delay-ms, jitter-pct, bandwidth, mode) reread on SIGUSR1/SIGHUP");
  CLI11_PARSE(app, argc, argv);

  RelayOptions o;
  RelayParams& p = o.params;
  absl::Status s = ParseHostPort(listen, &o.listen_host, &o.listen_port);
  if (s.ok()) s = ParseHostPort(upstream, &o.upstream_host, &o.upstream_port);
  if (s.ok()) s = ApplyKey("delay-ms", absl::StrCat(delay_ms), &p);
  if (s.ok()) s = ApplyKey("jitter-pct", absl::StrCat(jitter_pct), &p);
  if (s.ok()) s = ApplyKey("bandwidth", bandwidth, &p);
  if (s.ok()) s = ApplyKey("mode", mode, &p);
  if (!s.ok()) {
    std::fprintf(stderr, "nighfs-relay: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  auto relay = Relay::Start(o);
  if (!relay.ok()) {
    std::fprintf(stderr, "nighfs-relay: %s\n", relay.status().ToString().c_str());
    return 1;
  }
  if (!port_file.empty() && !WriteWhole(port_file, absl::StrCat((*relay)->port(), "\n"))) {
    std::fprintf(stderr, "nighfs-relay: cannot write %s: %s\n", port_file.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr, "nighfs-relay: %s -> %s\n%s", (*relay)->address().c_str(),
               upstream.c_str(), Describe((*relay)->params()).c_str());
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGTERM || sig == SIGINT) break;
    if (control.empty()) {
      std::fprintf(stderr, "nighfs-relay: signal %d but no --control file\n", sig);
      continue;
    }
    absl::Status applied = ApplyControlFile(control, relay->get());
    if (!applied.ok()) {
      std::fprintf(stderr, "nighfs-relay: control file not applied: %s\n",
                   std::string(applied.message()).c_str());
      continue;
    }
    const std::string now = Describe((*relay)->params());
    std::fprintf(stderr, "nighfs-relay: applied %s\n%s", control.c_str(), now.c_str());
    if (!WriteWhole(control + ".applied", now)) {
      std::fprintf(stderr, "nighfs-relay: cannot write %s.applied\n", control.c_str());
    }
  }
  std::fprintf(stderr, "nighfs-relay: bytes up %lu, down %lu, connections %lu\n",
               static_cast<unsigned long>((*relay)->bytes_upstream()),
               static_cast<unsigned long>((*relay)->bytes_downstream()),
               static_cast<unsigned long>((*relay)->connections_accepted()));
  return 0;
}
