// What a daemon's main() needs besides its own logic: the --listen / --advertise / TLS flags
// checked the same way everywhere, the --port-file, and waiting for SIGTERM/SIGINT.
// (meta/main.cc has its own copies of these; it can call these instead once they move to
// common/.)
#ifndef NIGHFS_PROXY_DAEMON_H_
#define NIGHFS_PROXY_DAEMON_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nighfs::proxy {

struct HostPort {
  std::string host;  // without brackets for IPv6
  uint16_t port = 0;
};

// "HOST:PORT" or "[V6]:PORT" (port 0 allowed: any free port).
absl::StatusOr<HostPort> ParseListenAddress(std::string_view text);

// What clients should dial, when --advertise is not given: the listen address, or
// "<hostname>:PORT" when listening on every interface (0.0.0.0, ::); `port` is the bound one.
// With "http://" before it when the server speaks plain HTTP (a bare address means https).
std::string DefaultAdvertise(const HostPort& listen, uint16_t port, bool plaintext);

// Checks an --advertise value: HOST:PORT, optionally after http:// or https://.
absl::Status CheckAdvertise(std::string_view address);

// --tls-cert, --tls-key and --insecure-plaintext: TLS is the default, plain HTTP must be asked
// for by name.
struct TlsFlags {
  std::string cert_file;
  std::string key_file;
  bool insecure_plaintext = false;

  // Declares the three flags on `app`, bound to this struct (which must outlive the parse).
  // `what` names what plain HTTP would expose ("every block").
  void AddTo(CLI::App& app, std::string_view what);
  // OK for exactly one of: --insecure-plaintext, or both --tls-cert and --tls-key. Otherwise an
  // InvalidArgument that says what to pass.
  absl::Status Check() const;
};

// Writes `port` and a newline to `path`, whole or not at all (through a temp file and a rename,
// so a script polling for the file never reads half a number).
absl::Status WritePortFile(const std::string& path, uint16_t port);

// Blocks SIGTERM and SIGINT in the calling thread (call before starting any thread: they
// inherit the mask, so only WaitForStopSignal sees them) and ignores SIGPIPE.
void BlockStopSignals();
// Waits for SIGTERM or SIGINT; returns which.
int WaitForStopSignal();

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_DAEMON_H_
