#include "proxy/listen_address.h"

#include <unistd.h>

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

std::string DefaultAdvertise(const HostPort& listen, uint16_t port) {
  std::string host = listen.host;
  if (host == "0.0.0.0" || host == "::") {
    char name[256] = {};
    if (::gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') {
      host = name;
    } else {
      host = "localhost";
    }
  }
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::Status CheckTlsFlags(bool insecure_plaintext, const std::string& tls_cert,
                           const std::string& tls_key) {
  if (insecure_plaintext && (!tls_cert.empty() || !tls_key.empty())) {
    return absl::InvalidArgumentError(
        "--insecure-plaintext contradicts --tls-cert/--tls-key; pass one or the other");
  }
  if (!insecure_plaintext && (tls_cert.empty() || tls_key.empty())) {
    return absl::InvalidArgumentError(
        tls_cert.empty() && tls_key.empty()
            ? "no TLS certificate: pass --tls-cert FILE --tls-key FILE (make a lab pair with: "
              "nighfs configure init tls DIR), or --insecure-plaintext to serve plain HTTP"
            : "--tls-cert and --tls-key go together; pass both");
  }
  return absl::OkStatus();
}

}  // namespace nighfs::proxy
