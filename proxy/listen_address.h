// The daemons' --listen / --advertise / TLS flags, checked the same way everywhere.
// (nighfs-meta has its own copy in meta/main.cc; it can call these instead.)
#ifndef NIGHFS_PROXY_LISTEN_ADDRESS_H_
#define NIGHFS_PROXY_LISTEN_ADDRESS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace nighfs::proxy {

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
};

// "HOST:PORT" or "[V6]:PORT" (port 0 allowed: any free port).
absl::StatusOr<HostPort> ParseListenAddress(std::string_view text);

// What clients should dial, when --advertise is not given: the listen address, or
// "<hostname>:PORT" when listening on every interface (0.0.0.0, ::). `port` is the bound one.
std::string DefaultAdvertise(const HostPort& listen, uint16_t port);

// OK for exactly one of: --insecure-plaintext, or both --tls-cert and --tls-key. Otherwise an
// InvalidArgument that says what to pass.
absl::Status CheckTlsFlags(bool insecure_plaintext, const std::string& tls_cert,
                           const std::string& tls_key);

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_LISTEN_ADDRESS_H_
