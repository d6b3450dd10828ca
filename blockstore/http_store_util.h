// What the HTTP object stores (s3_store.cc for S3/GCS/OCI, azure_store.cc for Azure Blob) share:
// the request encoding their signers canonicalize with, ranged and empty reads, the reading of
// HTTP failures as canonical status codes and messages, and the retry loop around one signed
// request.
//
// Each store keeps its own table of service error codes ("SlowDown", "ServerBusy", ...) and
// hands its decisions in; what is here is the part on which the stores agree.
//
// All functions are safe to call from many threads.
#ifndef NIGHFS_BLOCKSTORE_HTTP_STORE_UTIL_H_
#define NIGHFS_BLOCKSTORE_HTTP_STORE_UTIL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "blockstore/block_store.h"
#include "common/http_client.h"
#include "common/retry.h"

namespace nighfs::blockstore {

// Whether PercentEncode leaves '/' alone (object paths) or encodes it (query strings).
enum class Slash { kEncode, kKeep };

// Percent-encodes every byte but the RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) as
// %XY with uppercase hex, and '/' unless `slash` is kEncode. What both S3's UriEncode() and
// Azure's URL and SAS encoding call for.
std::string PercentEncode(std::string_view s, Slash slash);

// `value` with leading and trailing characters from `whitespace` removed and each inner run of
// them replaced by one space: how both signers canonicalize a header value (SigV4 folds spaces
// and tabs, Azure Shared Key also line breaks).
std::string CollapseWhitespace(std::string_view value, std::string_view whitespace);

// The value of a Range header asking for `length` bytes at `offset` ("bytes=10-19"), open-ended
// ("bytes=10-") when the range reaches the end of the largest possible object; "" when the
// request is for the whole object (offset 0, length kToEnd) and needs no Range header.
// REQUIRES: length > 0.
std::string ByteRangeHeader(uint64_t offset, uint64_t length);

// Get(key, offset, 0) of a store whose only existence check is a request: there is nothing to
// read, but BlockStore::Get must still answer NotFound for a missing object, so this HEADs
// `key` and returns "" or Head's error.
absl::StatusOr<std::string> ZeroLengthRead(BlockStore& store, std::string_view key);

// Names one store request in messages: "<store> <method> <what>".
struct HttpStoreOp {
  std::string_view store;   // "S3", "GCS", "OCI", "Azure"
  std::string_view method;  // "GET", "PUT", ...
  std::string_view what;    // the object key or the listing the request is about
};

// What a service said about a failed request, from its error body or headers.
struct ServiceError {
  std::string code;        // "AccessDenied", "AuthenticationFailed"; "" if it said none
  std::string message;     // a human-readable explanation; "" if none
  std::string request_id;  // the service's id for the request, for its support; "" if none
};

// The canonical code of an HTTP error status as far as the stores agree: 5xx and 429 are
// Unavailable (retried), 400 InvalidArgument, 401 and 403 PermissionDenied, 404 NotFound,
// 409 and 412 FailedPrecondition. kUnknown for every other status: a store maps those (and
// its service error codes) itself, before or after calling this.
absl::StatusCode CodeForHttpStatus(int status);

// "S3 GET p/blk/01: 403 AccessDenied: Access Denied (hint) (request id X)": the request, the
// HTTP status, then each of the service's code, its message, `hint` and the request id that
// is not empty.
std::string FormatHttpError(const HttpStoreOp& op, int status, const ServiceError& error,
                            std::string_view hint = "");

// A transport failure (no HTTP response: refused, reset, timed out) of `op`: `failure`'s code
// with "<store> <method> <what>: " before its message.
absl::Status TransportError(const HttpStoreOp& op, const absl::Status& failure);

// Sends one logical request, retrying under `policy` (common/retry.h: backoff with full
// jitter). Before every attempt `make_request` builds the request afresh, so a store signs each
// attempt with the current time (servers refuse stale signatures). A transport failure becomes
// TransportError(op, ...); a response goes to `on_response`, whose status decides: OK ends,
// a status IsRetryable() accepts means another attempt, anything else ends with that status.
// The last failure is returned, with the attempt count when there was more than one; each
// retried failure is logged.
//
// `secret`, when not empty, is a credential that may sit in the request URL (an Azure SAS
// token): it is replaced by "<redacted>" in every message logged or returned, should a lower
// layer echo the URL.
absl::Status SendWithRetries(HttpClient& http, const RetryPolicy& policy, const HttpStoreOp& op,
                             const std::function<HttpRequest()>& make_request,
                             const std::function<absl::Status(HttpResponse&)>& on_response,
                             std::string_view secret = "");

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_HTTP_STORE_UTIL_H_
