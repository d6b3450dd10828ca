// A lab certificate authority and a server certificate signed by it, for a quick start and for
// tests (`nighfs configure init tls DIR`). Not a PKI: the CA key sits next to the certificates.
#ifndef NIGHFS_COMMON_TLS_CERTS_H_
#define NIGHFS_COMMON_TLS_CERTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace nighfs {

struct LabTlsOptions {
  // Names the server certificate is valid for, in addition to the local ones below: DNS names
  // or IP addresses (v4 or v6).
  std::vector<std::string> hosts;
  // Add localhost, 127.0.0.1, ::1 and this machine's host name. Tests turn it off to make a
  // certificate that does not match the name they connect to.
  bool add_local_names = true;
  // Replace existing files; otherwise any of the four existing is FailedPrecondition and
  // nothing is written.
  bool overwrite = false;
};

// File names inside the folder.
inline constexpr char kLabCaCert[] = "ca.pem";
inline constexpr char kLabCaKey[] = "ca.key";
inline constexpr char kLabServerCert[] = "server.pem";
inline constexpr char kLabServerKey[] = "server.key";

// Writes DIR/ca.pem and DIR/ca.key (a CA: basicConstraints CA:TRUE, keyCertSign), and
// DIR/server.pem and DIR/server.key (signed by it: serverAuth, the subjectAltNames above).
// EC P-256 keys, SHA-256 signatures, random 128-bit serials, valid from an hour ago for two
// years. DIR is created if needed and made 0700; keys are 0600 and certificates 0644 whatever
// the umask.
absl::Status WriteLabTls(const std::string& dir, const LabTlsOptions& options = {});

// The subjectAltNames WriteLabTls would put in the server certificate, in order, deduplicated.
std::vector<std::string> LabTlsNames(const LabTlsOptions& options);

}  // namespace nighfs

#endif  // NIGHFS_COMMON_TLS_CERTS_H_
