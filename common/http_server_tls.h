// The TLS server context of HttpServer (internal to common/: http_server.cc is its only user).
#ifndef NIGHFS_COMMON_HTTP_SERVER_TLS_H_
#define NIGHFS_COMMON_HTTP_SERVER_TLS_H_

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "absl/status/statusor.h"

namespace nighfs {

// A server context with the certificate chain and key of these PEM files: TLS 1.2 and 1.3 only,
// forward-secret AEAD cipher suites for 1.2 (1.3's are all AEAD), no compression, no
// renegotiation. InvalidArgument naming the file when one is unreadable, malformed, or the key
// does not belong to the certificate.
absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file);

// The reasons on OpenSSL's error queue of this thread, "; "-separated, and clears it.
std::string DrainOpenSslErrors();

}  // namespace nighfs

#endif  // NIGHFS_COMMON_HTTP_SERVER_TLS_H_
