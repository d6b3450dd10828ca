// The few cryptographic primitives the object-store clients need to sign requests (SigV4, Azure
// Shared Key) and to protect bodies in transit (Content-MD5), on OpenSSL's EVP interface, plus
// the base64 those headers are written in.
//
// Every function is pure and safe to call from many threads. None logs its inputs: keys and
// signed strings are secrets or derived from them.
#ifndef NIGHFS_COMMON_CRYPTO_H_
#define NIGHFS_COMMON_CRYPTO_H_

#include <optional>
#include <string>
#include <string_view>

namespace nighfs {

// The raw (32-byte) SHA-256 of `data`.
std::string Sha256(std::string_view data);
// Lowercase hex SHA-256 of `data` (64 characters).
std::string Sha256Hex(std::string_view data);

// The raw (32-byte) HMAC-SHA256 of `data` under `key` (raw bytes, any length, empty included).
std::string HmacSha256(std::string_view key, std::string_view data);

// Base64 of the MD5 of `data`: the value of a Content-MD5 header (RFC 1864). "" when this
// OpenSSL cannot compute MD5 (a FIPS-only provider): callers then send no Content-MD5 and skip
// the integrity check instead of failing every request.
std::string Md5Base64(std::string_view data);

// Standard base64 (RFC 4648 section 4, '+' and '/', padded with '=').
std::string Base64Encode(std::string_view bytes);
// The bytes `text` encodes in standard base64, or nullopt when it holds a character outside the
// alphabet or has an impossible length. Missing '=' padding is tolerated: keys are pasted by
// hand and lose it.
std::optional<std::string> Base64Decode(std::string_view text);

// `n` bytes from OpenSSL's CSPRNG (RAND_bytes): secrets, session keys. Aborts if the CSPRNG
// cannot produce them (no entropy), which is not a state to hand out secrets from.
std::string RandomBytes(size_t n);

}  // namespace nighfs

#endif  // NIGHFS_COMMON_CRYPTO_H_
