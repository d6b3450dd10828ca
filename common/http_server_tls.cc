#include "common/http_server_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace nighfs {
namespace {

// Mozilla's "intermediate" TLS 1.2 list: ECDHE key exchange (forward secrecy) and AEAD only.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

absl::Status Readable(const std::string& path, absl::string_view what) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS needs both a certificate and a key file; the ", what, " is missing"));
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read TLS ", what, " ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string DrainOpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::StatusOr<std::unique_ptr<boost::asio::ssl::context>> MakeServerTlsContext(
    const std::string& cert_file, const std::string& key_file) {
  if (absl::Status s = Readable(cert_file, "certificate"); !s.ok()) return s;
  if (absl::Status s = Readable(key_file, "key"); !s.ok()) return s;
  // Refused rather than warned about, as the block-store credentials file is: a key others can
  // read lets them impersonate this server, and a warning scrolls by unseen.
  struct stat st;
  if (::stat(key_file.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot stat TLS key ", key_file, ": ", std::strerror(errno)));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "TLS key %s has mode %04o: it must not be accessible by group or others; fix it with: "
        "chmod 600 '%s'",
        key_file, st.st_mode & 07777, key_file));
  }
  auto ctx = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1) {
    return absl::InternalError(absl::StrCat("TLS setup: ", DrainOpenSslErrors()));
  }
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_use_certificate_chain_file(c, cert_file.c_str()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate ", cert_file,
                                                   " is not a PEM certificate chain: ",
                                                   DrainOpenSslErrors()));
  }
  // OpenSSL checks here already that the key belongs to the certificate.
  if (SSL_CTX_use_PrivateKey_file(c, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", key_file, " is not a PEM private key, or does not belong to ",
                     "certificate ", cert_file, ": ", DrainOpenSslErrors()));
  }
  if (SSL_CTX_check_private_key(c) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("TLS key ", key_file,
                                                   " does not belong to certificate ", cert_file,
                                                   ": ", DrainOpenSslErrors()));
  }
  return ctx;
}

}  // namespace nighfs
