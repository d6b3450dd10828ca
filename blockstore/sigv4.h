// AWS Signature Version 4 for S3-style requests, signed in the Authorization header with the
// payload transferred in a single chunk (S3 API reference, "Signature Calculations for the
// Authorization Header: Transferring Payload in a Single Chunk"). Also what GCS (XML API with
// HMAC keys) and OCI (S3 compatibility API) accept.
//
// Every function here is pure: the time is passed in, nothing is cached, and nothing is logged.
// All are safe to call from many threads.
#ifndef NIGHFS_BLOCKSTORE_SIGV4_H_
#define NIGHFS_BLOCKSTORE_SIGV4_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/http_client.h"  // HttpHeaders

namespace nighfs::blockstore::sigv4 {

// x-amz-content-sha256 for a request whose body is not part of the signature.
inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
// SHA-256 of the empty string: the payload hash of GET, HEAD and DELETE.
inline constexpr char kEmptyPayloadSha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

using QueryParams = std::vector<std::pair<std::string, std::string>>;

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // sent (and signed) as x-amz-security-token when not empty
};

// The payload hash and Content-MD5 helpers are common/crypto.h's; named here too because
// callers building S3 requests (tests/blockstore/s3_test.cc) spell them sigv4::.
using ::nighfs::Md5Base64;
using ::nighfs::Sha256Hex;

// S3's UriEncode(): every byte but A-Z a-z 0-9 - . _ ~ becomes %XY (uppercase hex); '/' is
// kept when `encode_slash` is false (object key paths) and encoded otherwise (query strings).
std::string UriEncode(std::string_view s, bool encode_slash);
// The canonical (and sent) form of a raw path: UriEncode(path, /*encode_slash=*/false). S3
// encodes exactly once, unlike the other AWS services.
std::string CanonicalUri(std::string_view raw_path);
// Raw name/value pairs encoded, sorted by name then value, joined as "a=1&b=2". A parameter
// without a value is rendered "name=". The same string is the query part of the sent URL.
std::string CanonicalQueryString(const QueryParams& raw_query);

// "20130524T000000Z": the x-amz-date value for `t` (UTC).
std::string AmzDate(absl::Time t);

// The signing key, HMAC("AWS4" + secret, yyyymmdd) -> region -> service -> "aws4_request".
std::string SigningKey(std::string_view secret_access_key, std::string_view yyyymmdd,
                       std::string_view region, std::string_view service);

// What Sign() works from. Every header in `headers` is signed: the caller puts in exactly the
// headers it wants covered (host, x-amz-date and x-amz-content-sha256 at least).
struct Request {
  std::string method;      // "GET", "PUT", ...
  std::string raw_path;    // not yet encoded, starting with '/', e.g. "/test$file.text"
  QueryParams raw_query;   // not yet encoded
  HttpHeaders headers;     // names in any case; values are trimmed and inner spaces collapsed
  std::string payload_hash;  // lowercase hex SHA-256 of the body, or kUnsignedPayload
};

// The result of signing, with the intermediate strings so they can be checked against AWS's
// published examples.
struct Signed {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;  // "host;range;x-amz-content-sha256;x-amz-date"
  std::string signature;       // lowercase hex
  std::string authorization;   // the Authorization header value
};

// Signs `request` for `region` and `service` at time `now`. `now` must be the same instant the
// request's x-amz-date header states (SignS3Request() guarantees that).
Signed Sign(const Request& request, const Credentials& credentials, std::string_view region,
            std::string_view service, absl::Time now);

// Adds x-amz-date, x-amz-content-sha256, x-amz-security-token (with a session token) and
// Authorization to `headers`, signing every header already in it plus those. `headers` must
// hold "host" (exactly as it will be sent, with ":port" when not the scheme's default).
void SignS3Request(std::string_view method, std::string_view raw_path,
                   const QueryParams& raw_query, std::string_view payload_hash,
                   const Credentials& credentials, std::string_view region, absl::Time now,
                   HttpHeaders* headers);

}  // namespace nighfs::blockstore::sigv4

#endif  // NIGHFS_BLOCKSTORE_SIGV4_H_
