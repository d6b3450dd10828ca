#include "proxy/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "proxy/av.h"

namespace nighfs::proxy {

absl::StatusOr<HostPort> ParseListenAddress(std::string_view s) {
  auto invalid = [s] {
    return absl::InvalidArgumentError(absl::StrCat("invalid address '", AV(s), "': want HOST:PORT"));
  };
  const size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return invalid();
  std::string_view h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  uint32_t p = 0;
  if (!absl::SimpleAtoi(AV(s.substr(colon + 1)), &p) || p > 65535 || h.empty()) return invalid();
  return HostPort{std::string(h), static_cast<uint16_t>(p)};
}

std::string DefaultAdvertise(const HostPort& listen, uint16_t port, bool plaintext) {
  std::string host = listen.host;
  if (host == "0.0.0.0" || host == "::") {
    char name[256] = {};
    if (::gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') {
      host = name;
    } else {
      host = "localhost";
    }
  }
  const char* scheme = plaintext ? "http://" : "";
  if (host.find(':') != std::string::npos) return absl::StrCat(scheme, "[", host, "]:", port);
  return absl::StrCat(scheme, host, ":", port);
}

absl::Status CheckAdvertise(std::string_view address) {
  std::string_view rest = address;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
  }
  absl::StatusOr<HostPort> hp = ParseListenAddress(rest);
  if (!hp.ok()) return hp.status();
  if (hp->port == 0) return absl::InvalidArgumentError("--advertise needs a port other than 0");
  return absl::OkStatus();
}

void TlsFlags::AddTo(CLI::App& app, std::string_view what) {
  app.add_option("--tls-cert", cert_file,
                 "PEM certificate chain of this server (e.g. from nighfs configure init tls)")
      ->type_name("FILE");
  app.add_option("--tls-key", key_file, "PEM private key of --tls-cert (mode 0600)")
      ->type_name("FILE");
  app.add_flag("--insecure-plaintext", insecure_plaintext,
               absl::StrCat("serve plain HTTP without TLS: anyone on the network path can read "
                            "and change ",
                            AV(what), " (tests and closed labs only)"));
}

absl::Status TlsFlags::Check() const {
  if (insecure_plaintext && (!cert_file.empty() || !key_file.empty())) {
    return absl::InvalidArgumentError(
        "--insecure-plaintext contradicts --tls-cert/--tls-key; pass one or the other");
  }
  if (!insecure_plaintext && (cert_file.empty() || key_file.empty())) {
    return absl::InvalidArgumentError(
        cert_file.empty() && key_file.empty()
            ? "no TLS certificate: pass --tls-cert FILE --tls-key FILE (make a lab pair with: "
              "nighfs configure init tls DIR), or --insecure-plaintext to serve plain HTTP"
            : "--tls-cert and --tls-key go together; pass both");
  }
  return absl::OkStatus();
}

absl::Status WritePortFile(const std::string& path, uint16_t port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    out.flush();
    if (!out) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int WaitForStopSignal() {
  const sigset_t set = StopSignals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

}  // namespace nighfs::proxy
