// Certificates with OpenSSL 3's C API. Every OpenSSL object is held by a unique_ptr with its
// free function, so an early return frees what was made so far.
#include "common/tls_certs.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <tuple>
#include <utility>
#include <memory>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/http_server_tls.h"  // DrainOpenSslErrors

namespace nighfs {
namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

constexpr long kValiditySeconds = 2L * 365 * 24 * 3600;  // two years
constexpr long kBackdateSeconds = 3600;                  // tolerate clocks an hour behind

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainOpenSslErrors()));
}

absl::StatusOr<Key> NewP256Key() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return OpenSslError("generating an EC P-256 key");
  return key;
}

bool IsIp(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// X509V3 extension from its config-file form, e.g. ("basicConstraints", "critical,CA:TRUE").
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return OpenSslError(absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return OpenSslError(absl::StrCat("adding extension ", OBJ_nid2sn(nid)));
  return absl::OkStatus();
}

// A certificate for `key` named `common_name`, valid now, with a random positive serial;
// signed later by the caller.
absl::StatusOr<Cert> NewCert(EVP_PKEY* key, const std::string& common_name) {
  Cert cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return OpenSslError("random serial");
  serial[0] &= 0x7f;  // positive, as RFC 5280 requires
  serial[0] |= 0x01;  // and never zero
  std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>> bn(BN_bin2bn(serial, sizeof(serial), nullptr));
  if (!bn || X509_set_version(cert.get(), 2) != 1 ||
      BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kBackdateSeconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("filling a certificate");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("nighfs lab"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1) {
    return OpenSslError("certificate subject");
  }
  return cert;
}

std::string ToPem(const std::function<int(BIO*)>& write) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return "";
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Writes `content` to `path` with exactly `mode` (fchmod: the umask does not apply), refusing
// to replace a file unless `overwrite`.
absl::Status WriteFile(const std::string& path, const std::string& content, mode_t mode,
                       bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", path));
  }
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  if (::fchmod(fd, mode) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("chmod ", path));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return absl::ErrnoToStatus(errno, absl::StrCat("fsync ", path));
  return absl::OkStatus();
}

std::string KeyPem(EVP_PKEY* key) {
  return ToPem([key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

std::string CertPem(X509* cert) {
  return ToPem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

}  // namespace

std::vector<std::string> LabTlsNames(const LabTlsOptions& options) {
  std::vector<std::string> names;
  auto add = [&names](std::string n) {
    if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) {
      names.push_back(std::move(n));
    }
  };
  if (options.add_local_names) {
    add("localhost");
    add("127.0.0.1");
    add("::1");
    char host[256] = {0};
    if (::gethostname(host, sizeof(host) - 1) == 0) add(host);
  }
  for (const std::string& h : options.hosts) add(h);
  return names;
}

absl::Status WriteLabTls(const std::string& dir, const LabTlsOptions& options) {
  const std::vector<std::string> names = LabTlsNames(options);
  if (names.empty()) return absl::InvalidArgumentError("no host names for the certificate");
  std::string san;
  for (const std::string& n : names) {
    if (n.find_first_of(",\n\r") != std::string::npos || n.find(' ') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("invalid host name '", n, "'"));
    }
    absl::StrAppend(&san, san.empty() ? "" : ",", IsIp(n) ? "IP:" : "DNS:", n);
  }

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  // The folder holds private keys: private to its owner, also when it existed already.
  if (::chmod(dir.c_str(), 0700) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot make ", dir, " private (0700)"));
  }
  const std::string ca_cert_path = absl::StrCat(dir, "/", kLabCaCert);
  const std::string ca_key_path = absl::StrCat(dir, "/", kLabCaKey);
  const std::string cert_path = absl::StrCat(dir, "/", kLabServerCert);
  const std::string key_path = absl::StrCat(dir, "/", kLabServerKey);
  if (!options.overwrite) {
    // All or nothing: look at the four before writing any.
    for (const std::string& p : {ca_cert_path, ca_key_path, cert_path, key_path}) {
      if (std::filesystem::exists(std::filesystem::symlink_status(p, ec))) {
        return absl::FailedPreconditionError(
            absl::StrCat(p, " exists already; pass --force to replace the lab TLS files"));
      }
    }
  }

  ERR_clear_error();
  absl::StatusOr<Key> ca_key = NewP256Key();
  if (!ca_key.ok()) return ca_key.status();
  absl::StatusOr<Cert> ca = NewCert(ca_key->get(), "nighfs lab CA");
  if (!ca.ok()) return ca.status();
  X509* ca_cert = ca->get();
  if (X509_set_issuer_name(ca_cert, X509_get_subject_name(ca_cert)) != 1) {
    return OpenSslError("CA issuer");
  }
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (absl::Status s = AddExtension(ca_cert, ca_cert, nid, value); !s.ok()) return s;
  }
  if (X509_sign(ca_cert, ca_key->get(), EVP_sha256()) == 0) return OpenSslError("signing the CA");

  absl::StatusOr<Key> key = NewP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<Cert> server = NewCert(key->get(), names.front());
  if (!server.ok()) return server.status();
  X509* cert = server->get();
  if (X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) != 1) {
    return OpenSslError("server issuer");
  }
  for (auto [nid, value] :
       {std::pair{NID_basic_constraints, std::string("critical,CA:FALSE")},
        std::pair{NID_key_usage, std::string("critical,digitalSignature,keyEncipherment")},
        std::pair{NID_ext_key_usage, std::string("serverAuth")},
        std::pair{NID_subject_key_identifier, std::string("hash")},
        std::pair{NID_authority_key_identifier, std::string("keyid:always")},
        std::pair{NID_subject_alt_name, san}}) {
    if (absl::Status s = AddExtension(cert, ca_cert, nid, value); !s.ok()) return s;
  }
  if (X509_sign(cert, ca_key->get(), EVP_sha256()) == 0) {
    return OpenSslError("signing the server certificate");
  }

  const std::string ca_key_pem = KeyPem(ca_key->get());
  const std::string ca_pem = CertPem(ca_cert);
  const std::string key_pem = KeyPem(key->get());
  const std::string cert_pem = CertPem(cert);
  if (ca_key_pem.empty() || ca_pem.empty() || key_pem.empty() || cert_pem.empty()) {
    return OpenSslError("encoding PEM");
  }
  // Keys first: a reader that finds a certificate finds its key.
  for (const auto& [path, content, mode] :
       {std::tuple{ca_key_path, ca_key_pem, mode_t{0600}},
        std::tuple{key_path, key_pem, mode_t{0600}}, std::tuple{ca_cert_path, ca_pem, mode_t{0644}},
        std::tuple{cert_path, cert_pem, mode_t{0644}}}) {
    if (absl::Status s = WriteFile(path, content, mode, options.overwrite); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace nighfs
