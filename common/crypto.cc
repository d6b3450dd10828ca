#include "common/crypto.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"

namespace nighfs {
namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// False only when the algorithm is unavailable (MD5 under a FIPS-only provider) or OpenSSL
// cannot allocate.
bool Digest(const EVP_MD* md, std::string_view data, std::string* out) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (md == nullptr || EVP_Digest(data.data(), data.size(), buf, &len, md, nullptr) != 1) {
    return false;
  }
  out->assign(reinterpret_cast<const char*>(buf), len);
  return true;
}

}  // namespace

std::string Sha256(std::string_view data) {
  // Fetched once: EVP_sha256() makes EVP_Digest look the implementation up in the provider
  // on every call (OpenSSL 3), about as long as hashing a token. Kept for the process.
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return fetched != nullptr ? fetched : EVP_sha256();
  }();
  std::string out;
  // SHA-256 is always available (FIPS included), so this fails only when OpenSSL cannot
  // allocate; an unsigned request or a wrong signature would be worse than stopping.
  if (!Digest(md, data, &out)) std::abort();
  return out;
}

std::string Sha256Hex(std::string_view data) {
  return absl::BytesToHexString(AbslView(Sha256(data)));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t len = 0;
  // OpenSSL refuses a null key pointer even with length 0; an empty key is a valid HMAC key.
  static const unsigned char kNoKey = 0;
  const unsigned char* k =
      key.empty() ? &kNoKey : reinterpret_cast<const unsigned char*>(key.data());
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, k, key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
                sizeof(out), &len) == nullptr) {
    std::abort();  // as in Sha256: only an allocation failure gets here
  }
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string Md5Base64(std::string_view data) {
  std::string md5;
  if (!Digest(EVP_md5(), data, &md5)) return "";
  return Base64Encode(md5);
}

// Base64 is absl's rather than EVP_EncodeBlock/EVP_DecodeBlock: the OpenSSL decoder accepts
// malformed input ("QQ=A", '=' before data, concatenated padded groups) and needs padding,
// while absl's rejects the former and tolerates missing padding, which is what a check of a
// hand-pasted key wants.
std::string Base64Encode(std::string_view bytes) { return absl::Base64Escape(AbslView(bytes)); }

std::optional<std::string> Base64Decode(std::string_view text) {
  std::string out;
  if (!absl::Base64Unescape(AbslView(text), &out)) return std::nullopt;
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::abort();
  }
  return out;
}

}  // namespace nighfs
