// The S3 block store, also serving Google Cloud Storage (XML API, HMAC keys) and Oracle Cloud
// Object Storage (S3 compatibility API): all three speak the same REST dialect and accept
// Signature Version 4, and differ only in where the endpoint is and how the bucket is named.
//
// Every request goes through the retry loop of http_store_util.h: 5xx, 429/SlowDown,
// RequestTimeout and transport failures are retried with backoff and full jitter, each attempt
// freshly signed (x-amz-date must be within 15 minutes of the server's clock); auth and other
// client errors fail at once.
// Blocks are written once and never overwritten, so retrying a PUT whose first attempt may
// have landed is harmless.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "blockstore/http_store_util.h"
#include "blockstore/s3_responses.h"
#include "blockstore/sigv4.h"
#include "blockstore/xml.h"
#include "common/crypto.h"
#include "common/http_client.h"
#include "common/retry.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Six attempts span about 3 s of backoff at most (0.1 + 0.2 + ... + 1.6 s, jittered): enough to
// ride out a throttling burst or a load balancer swapping a node, short enough that a FUSE
// read does not hang for minutes on a store that is really down.
RetryPolicy DefaultRetryPolicy() {
  RetryPolicy p;
  p.max_attempts = 6;
  p.initial_backoff = absl::Milliseconds(100);
  p.max_backoff = absl::Seconds(5);
  p.deadline = absl::Seconds(30);
  return p;
}

// Check() reads this key (under the store's prefix) and expects it not to exist. Block keys
// (block_key.cc) never start with '.', so no block can land there.
constexpr std::string_view kCheckKey = ".nighfs-check-absent";

// S3 answers at most 1000 keys per ListObjectsV2 page.
constexpr int kMaxListKeys = 1000;

// Where and how to reach one bucket; fixed for the life of a store.
struct S3Target {
  std::string flavor;        // "S3", "GCS", "OCI": the word error messages start with
  std::string display_url;   // "s3://bucket/prefix", as the user named the store
  std::string described;     // display_url with every resolved parameter: Describe()
  std::string scheme;        // "http" or "https"
  std::string host;          // Host header and URL authority; "bucket." prefixed when virtual
  std::string bucket_path;   // "/bucket" for path-style addressing, "" for virtual-hosted
  std::string bucket;
  std::string prefix;        // "" or "a/b": no leading or trailing '/'
  std::string region;
  bool virtual_style = false;
  bool sign_payload = true;
};

bool IsAwsHost(std::string_view host) {
  return absl::EndsWith(AbslView(host), ".amazonaws.com") ||
         absl::EndsWith(AbslView(host), ".amazonaws.com.cn");
}

// Whether `bucket` can be the first label of a host name under a wildcard TLS certificate.
// Dots would need a deeper wildcard, so such buckets are addressed path-style.
bool IsVirtualHostable(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (char c : bucket) {
    if (!(absl::ascii_islower(static_cast<unsigned char>(c)) ||
          absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
  }
  return bucket.front() != '-' && bucket.back() != '-';
}

// Parses "http(s)://host[:port][/]" into scheme and authority. Nothing else is accepted: a
// path would silently change every object's address, and userinfo would put a secret in the
// URL (which is logged).
absl::Status ParseEndpoint(std::string_view endpoint, std::string* scheme, std::string* host) {
  const size_t sep = endpoint.find("://");
  if (sep == std::string_view::npos) {
    return absl::InvalidArgumentError("endpoint must look like http(s)://host[:port]");
  }
  *scheme = absl::AsciiStrToLower(AbslView(endpoint.substr(0, sep)));
  if (*scheme != "http" && *scheme != "https") {
    return absl::InvalidArgumentError("endpoint scheme must be http or https");
  }
  std::string_view rest = endpoint.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('@') != std::string_view::npos) {
    // Not echoed: the part before '@' may be a password.
    return absl::InvalidArgumentError(
        "endpoint must not embed credentials (user:password@); use the credentials file");
  }
  if (rest.empty() || rest.find_first_of("/?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint '", AbslView(endpoint), "' must be http(s)://host[:port] with no path"));
  }
  for (char c : rest) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
          c == ':' || c == '[' || c == ']' || c == '_')) {
      return absl::InvalidArgumentError(
          absl::StrCat("endpoint '", AbslView(endpoint), "' has a bad host name"));
    }
  }
  // A port, if any, must be a number: "host:" or "host:http" would reach some other service.
  const size_t bracket = rest.rfind(']');
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    std::string_view port = rest.substr(colon + 1);
    int n = 0;
    if (!absl::SimpleAtoi(AbslView(port), &n) || n <= 0 || n > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("endpoint '", AbslView(endpoint), "' has a bad port"));
    }
  }
  *host = std::string(rest);
  return absl::OkStatus();
}

std::string Param(const StoreUrl& url, const std::string& name) {
  auto it = url.params.find(name);
  return it == url.params.end() ? std::string() : it->second;
}

absl::StatusOr<S3Target> ResolveTarget(const StoreUrl& url) {
  S3Target t;
  const auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(url.scheme, "://", url.authority, ": ", AbslView(what)));
  };
  // Unknown parameters are rejected: "regoin=eu-west-1" must not quietly mean us-east-1.
  for (const auto& [name, value] : url.params) {
    if (name != "endpoint" && name != "region" && name != "style" && name != "payload") {
      return bad(absl::StrCat("unknown parameter '", name,
                              "' (known: endpoint, region, style, payload)"));
    }
  }

  std::string path = url.path;
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  while (!path.empty() && path.back() == '/') path.pop_back();
  std::string default_endpoint;
  std::string default_style;
  if (url.scheme == "s3") {
    t.flavor = "S3";
    t.bucket = url.authority;
    t.prefix = path;
    t.region = Param(url, "region");
    if (t.region.empty()) t.region = "us-east-1";
    default_endpoint = absl::StrCat("https://s3.", t.region, ".amazonaws.com");
  } else if (url.scheme == "gs") {
    t.flavor = "GCS";
    t.bucket = url.authority;
    t.prefix = path;
    // GCS ignores the region in the signature scope, and its documentation uses "auto".
    t.region = Param(url, "region");
    if (t.region.empty()) t.region = "auto";
    default_endpoint = "https://storage.googleapis.com";
    default_style = "path";
  } else if (url.scheme == "oci") {
    t.flavor = "OCI";
    const std::string& ns = url.authority;
    const size_t slash = path.find('/');
    t.bucket = path.substr(0, slash);
    t.prefix = slash == std::string::npos ? "" : path.substr(slash + 1);
    t.region = Param(url, "region");
    if (ns.empty()) return bad("missing namespace (oci://namespace/bucket[/prefix])");
    if (t.region.empty()) {
      return bad("needs region=<OCI region>, e.g. oci://ns/bucket?region=us-ashburn-1");
    }
    default_endpoint =
        absl::StrCat("https://", ns, ".compat.objectstorage.", t.region, ".oraclecloud.com");
    default_style = "path";  // the compatibility API has no virtual-hosted form
  } else {
    return bad("not an S3-compatible scheme (s3, gs, oci)");
  }

  if (t.bucket.empty()) return bad("missing bucket name");
  for (char c : t.bucket) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
          c == '-')) {
      return bad("bucket names may contain only letters, digits, '.', '_' and '-'");
    }
  }
  if (!t.prefix.empty()) {
    if (absl::Status s = ValidateKey(t.prefix); !s.ok()) {
      return bad(absl::StrCat("bad prefix: ", s.message()));
    }
  }

  const std::string endpoint = Param(url, "endpoint");
  std::string endpoint_host;
  if (absl::Status s = ParseEndpoint(endpoint.empty() ? default_endpoint : endpoint, &t.scheme,
                                     &endpoint_host);
      !s.ok()) {
    return bad(std::string(s.message()));
  }
  if (default_style.empty()) {
    // Virtual-hosted is what AWS recommends (path-style is deprecated there); emulators and
    // self-hosted stores (MinIO, Ceph, s3rver) behind a custom endpoint rarely have the
    // wildcard DNS it needs.
    default_style = endpoint.empty() || IsAwsHost(endpoint_host) ? "virtual" : "path";
    if (!IsVirtualHostable(t.bucket)) default_style = "path";
  }
  std::string style = Param(url, "style");
  if (style.empty()) style = default_style;
  if (style == "virtual") {
    if (!IsVirtualHostable(t.bucket)) {
      return bad(absl::StrCat("bucket '", t.bucket,
                              "' cannot be addressed virtual-hosted style (needs 3-63 lowercase "
                              "letters, digits or '-'); use style=path"));
    }
    t.virtual_style = true;
    t.host = absl::StrCat(t.bucket, ".", endpoint_host);
  } else if (style == "path") {
    t.host = endpoint_host;
    t.bucket_path = absl::StrCat("/", t.bucket);
  } else {
    return bad("style must be 'path' or 'virtual'");
  }

  const std::string payload = Param(url, "payload");
  if (payload.empty() || payload == "signed") {
    t.sign_payload = true;
  } else if (payload == "unsigned") {
    t.sign_payload = false;
  } else {
    return bad("payload must be 'signed' or 'unsigned'");
  }

  t.display_url = absl::StrCat(url.scheme, "://", url.authority);
  if (!path.empty()) absl::StrAppend(&t.display_url, "/", path);
  StoreUrl described;
  described.scheme = url.scheme;
  described.authority = url.authority;
  described.path = path;
  described.params["endpoint"] = absl::StrCat(t.scheme, "://", endpoint_host);
  described.params["region"] = t.region;
  described.params["style"] = t.virtual_style ? "virtual" : "path";
  if (!t.sign_payload) described.params["payload"] = "unsigned";
  t.described = described.ToString();
  return t;
}

// One request as the store builds it, before signing.
struct S3Op {
  std::string method;
  std::string object_key;  // full key in the bucket; "" for bucket-level requests
  sigv4::QueryParams query;
  HttpHeaders headers;     // extra headers, all signed
  std::string_view body;
  std::string payload_hash = sigv4::kEmptyPayloadSha256;
  std::string what;        // the object or listing named in error messages
};

// The canonical code of an error response; Unavailable ones (IsRetryable) are retried.
absl::StatusCode CodeForResponse(int status, const S3Error& error) {
  // S3 sends 503 SlowDown, but some compatible stores send SlowDown with other statuses;
  // RequestTimeout (400) means the server gave up waiting for our body, not that it was bad.
  if (error.code == "SlowDown" || error.code == "RequestTimeout") {
    return absl::StatusCode::kUnavailable;
  }
  if (error.code == "NoSuchBucket") {
    // A missing bucket is a broken configuration, not a missing block: NotFound here could
    // make a caller conclude that data it needs was deleted.
    return absl::StatusCode::kFailedPrecondition;
  }
  if (error.code == "InvalidAccessKeyId" || error.code == "SignatureDoesNotMatch" ||
      error.code == "ExpiredToken" || error.code == "InvalidToken" ||
      error.code == "AccessDenied") {
    return absl::StatusCode::kPermissionDenied;
  }
  switch (status) {
    case 501:
      // NotImplemented is the one 5xx that will answer the same way every time: not retried.
      return absl::StatusCode::kUnimplemented;
    case 301:
    case 307:
      return absl::StatusCode::kFailedPrecondition;  // wrong region or endpoint
    case 416:
      return absl::StatusCode::kOutOfRange;
    default:
      return CodeForHttpStatus(status);
  }
}

// For responses without an S3 error code (HEAD has no body; proxies send their own pages).
const char* ReasonPhrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

// A printable excerpt of a body that is not an S3 error document (a proxy's HTML page).
std::string BodySnippet(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 160)) {
    out.push_back(absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : ' ');
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

class S3Store final : public BlockStore {
 public:
  S3Store(S3Target target, sigv4::Credentials credentials, std::unique_ptr<HttpClient> http)
      : target_(std::move(target)),
        credentials_(std::move(credentials)),
        http_(std::move(http)),
        retry_(DefaultRetryPolicy()) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (length == 0) return ZeroLengthRead(*this, key);
    S3Op op = ObjectOp("GET", key);
    std::string range = ByteRangeHeader(offset, length);
    const bool ranged = !range.empty();
    if (ranged) op.headers.emplace_back("Range", std::move(range));
    ASSIGN_OR_RETURN(HttpResponse r, Execute(op));
    if (r.status == 206) {
      // A 206 for another range than ours would hand back the wrong bytes for a block.
      const std::string content_range = r.Header("Content-Range");
      uint64_t start = 0;
      if (!content_range.empty() &&
          (!absl::StartsWith(content_range, "bytes ") ||
           !absl::SimpleAtoi(absl::string_view(content_range).substr(
                                 6, content_range.find('-') - 6),
                             &start) ||
           start != offset)) {
        return absl::DataLossError(absl::StrCat(target_.flavor, " GET ", op.what,
                                                ": asked for bytes from ", offset,
                                                ", got Content-Range '", content_range, "'"));
      }
      if (r.body.size() > length) r.body.resize(length);
      return std::move(r.body);
    }
    if (r.status == 200) {
      // The whole object: no range was asked for, or the server ignored it (allowed by HTTP).
      if (!ranged) return std::move(r.body);
      if (offset >= r.body.size()) return std::string();
      return r.body.substr(offset, length);
    }
    if (r.status == 416) return std::string();  // InvalidRange: offset at or past the end
    return ErrorFor(op, r);
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    RETURN_IF_ERROR(ValidateKey(key));
    S3Op op = ObjectOp("PUT", key);
    op.body = data;
    op.headers.emplace_back("Content-Type", "application/octet-stream");
    // Content-MD5 makes the server reject a body damaged in transit even when the payload is
    // not signed (unsigned is the cheaper choice over TLS). Left out where MD5 is unavailable
    // (a FIPS-only OpenSSL); a signed payload still covers the body then.
    const std::string md5 = Md5Base64(data);
    if (!md5.empty()) op.headers.emplace_back("Content-MD5", md5);
    op.payload_hash = target_.sign_payload ? Sha256Hex(data) : sigv4::kUnsignedPayload;
    ASSIGN_OR_RETURN(HttpResponse r, Execute(op));
    if (r.status == 200 || r.status == 201 || r.status == 204) return absl::OkStatus();
    return ErrorFor(op, r);
  }

  absl::Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    S3Op op = ObjectOp("DELETE", key);
    ASSIGN_OR_RETURN(HttpResponse r, Execute(op));
    if (r.status == 200 || r.status == 202 || r.status == 204) return absl::OkStatus();
    if (r.status == 404) {
      // Already gone is fine (S3 itself answers 204); a missing bucket is not.
      const S3Error e = ParseS3Error(r);
      if (e.code.empty() || e.code == "NoSuchKey") return absl::OkStatus();
    }
    return ErrorFor(op, r);
  }

  absl::StatusOr<ObjectInfo> Head(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    S3Op op = ObjectOp("HEAD", key);
    ASSIGN_OR_RETURN(HttpResponse r, Execute(op));
    if (r.status == 200) {
      ObjectInfo info;
      info.key = std::string(key);
      if (!absl::SimpleAtoi(r.Header("Content-Length"), &info.size)) {
        return absl::InternalError(absl::StrCat(target_.flavor, " HEAD ", op.what,
                                                ": response has no valid Content-Length"));
      }
      return info;
    }
    return ErrorFor(op, r);
  }

  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys) override {
    if (max_keys < 1) {
      return absl::InvalidArgumentError(absl::StrCat("List: max_keys must be >= 1, got ", max_keys));
    }
    if (!prefix.empty()) {
      // A prefix is a key or the beginning of one; ending at a '/' is allowed.
      std::string_view p = prefix;
      if (p.back() == '/') p.remove_suffix(1);
      if (!p.empty()) RETURN_IF_ERROR(ValidateKey(p));
    }
    return ListObjects(ObjectKey(prefix), page_token, std::min(max_keys, kMaxListKeys));
  }

  absl::Status Check() override {
    // What a mount needs: the endpoint reachable, the bucket there, the credentials good enough
    // to read it. A GET of a key that is never written proves all three with one small answer
    // (404 NoSuchKey), unlike a listing, which costs more on a big bucket, needs ListBucket and
    // fails on some S3-compatible servers once the prefix holds objects (issue 10).
    S3Op op = ObjectOp("GET", kCheckKey);
    op.what = absl::StrCat("bucket ", target_.bucket, " (probe of absent key ", op.object_key, ")");
    absl::Status s = absl::OkStatus();
    absl::StatusOr<HttpResponse> r = Execute(op);
    if (!r.ok()) {
      s = r.status();
    } else if (r->status == 404) {
      if (ParseS3Error(*r).code != "NoSuchBucket") return absl::OkStatus();  // NoSuchKey
      s = ErrorFor(op, *r);
    } else if (r->status != 200) {  // someone wrote the probe key: reading it still proves access
      s = ErrorFor(op, *r);
    } else {
      return absl::OkStatus();
    }
    std::string hint;
    const std::string_view msg(s.message().data(), s.message().size());
    if (msg.find("NoSuchBucket") != std::string_view::npos) {
      hint = absl::StrCat("bucket '", target_.bucket, "' does not exist at ", Endpoint());
    } else if (msg.find("InvalidAccessKeyId") != std::string_view::npos) {
      hint = "the access key id is unknown to the store (check AWS_ACCESS_KEY_ID)";
    } else if (msg.find("SignatureDoesNotMatch") != std::string_view::npos) {
      hint = "the secret key does not match the access key id (check AWS_SECRET_ACCESS_KEY)";
    } else if (msg.find("RequestTimeTooSkewed") != std::string_view::npos) {
      hint = "this machine's clock is too far from the store's (sync it with NTP)";
    } else if (s.code() == absl::StatusCode::kPermissionDenied) {
      hint = absl::StrCat("the credentials may not read bucket '", target_.bucket,
                          "' (a mount needs s3:GetObject, s3:PutObject, s3:DeleteObject and "
                          "s3:ListBucket, without which a missing key reads as AccessDenied)");
    } else if (s.code() == absl::StatusCode::kUnavailable ||
               s.code() == absl::StatusCode::kDeadlineExceeded) {
      hint = absl::StrCat("cannot reach ", Endpoint());
    }
    return absl::Status(s.code(), absl::StrCat("check of ", Describe(), " failed",
                                               hint.empty() ? "" : ": ", hint, ": ",
                                               s.message()));
  }

  // A store URL (ParseStoreUrl accepts it) with the endpoint, region and addressing style
  // spelled out, so logs show where requests really go. URLs never hold secrets.
  std::string Describe() const override { return target_.described; }

 private:
  std::string Endpoint() const { return absl::StrCat(target_.scheme, "://", target_.host); }

  // The key in the bucket of a store-relative key (or of a store-relative prefix, which may
  // be "" or end in '/').
  std::string ObjectKey(std::string_view key) const {
    if (target_.prefix.empty()) return std::string(key);
    return absl::StrCat(target_.prefix, "/", AbslView(key));
  }

  S3Op ObjectOp(std::string method, std::string_view key) const {
    S3Op op;
    op.method = std::move(method);
    op.object_key = ObjectKey(key);
    op.what = op.object_key;
    return op;
  }

  absl::StatusOr<ListPage> ListObjects(const std::string& full_prefix,
                                       std::string_view page_token, int max_keys) {
    S3Op op;
    op.method = "GET";
    op.query = {{"list-type", "2"}, {"max-keys", absl::StrCat(max_keys)}};
    if (!full_prefix.empty()) op.query.emplace_back("prefix", full_prefix);
    if (!page_token.empty()) op.query.emplace_back("continuation-token", std::string(page_token));
    op.what = absl::StrCat("bucket ", target_.bucket, " (list '", full_prefix, "')");
    ASSIGN_OR_RETURN(HttpResponse r, Execute(op));
    if (r.status != 200) return ErrorFor(op, r);

    // Keys come back relative to the bucket; strip the store's prefix.
    absl::StatusOr<ListPage> page =
        ParseListBucketResult(r.body, target_.prefix.empty() ? "" : target_.prefix + "/");
    if (!page.ok()) {
      return absl::InternalError(
          absl::StrCat(target_.flavor, " GET ", op.what, ": ", page.status().message()));
    }
    return page;
  }

  // The request for one attempt at `op`, signed now.
  HttpRequest SignedRequest(const S3Op& op) const {
    const std::string raw_path =
        absl::StrCat(target_.bucket_path, "/", op.object_key);
    HttpRequest req;
    req.method = op.method;
    req.url = absl::StrCat(target_.scheme, "://", target_.host, sigv4::CanonicalUri(raw_path));
    if (!op.query.empty()) absl::StrAppend(&req.url, "?", sigv4::CanonicalQueryString(op.query));
    req.body = op.body;
    // Host is set explicitly so the signed value is byte for byte the sent one.
    req.headers.emplace_back("Host", target_.host);
    for (const auto& h : op.headers) req.headers.push_back(h);
    if (!credentials_.access_key_id.empty()) {
      sigv4::SignS3Request(op.method, raw_path, op.query, op.payload_hash, credentials_,
                           target_.region, absl::Now(), &req.headers);
    }
    return req;
  }

  // Attempts `op`, freshly signed each time, until a response that is not a transient failure.
  // Returns that response (whatever its status) or the last transient failure as a status.
  absl::StatusOr<HttpResponse> Execute(const S3Op& op) {
    HttpResponse result;
    RETURN_IF_ERROR(SendWithRetries(
        *http_, retry_, {target_.flavor, op.method, op.what},
        [&]() { return SignedRequest(op); },
        [&](HttpResponse& r) -> absl::Status {
          if (r.status >= 300) {
            absl::Status error = ErrorFor(op, r);
            if (IsRetryable(error)) return error;
          }
          result = std::move(r);
          return absl::OkStatus();
        }));
    return result;
  }

  absl::Status ErrorFor(const S3Op& op, const HttpResponse& r) const {
    return ErrorStatus(op, r, ParseS3Error(r));
  }

  // "S3 GET p/blk/01/...: 403 AccessDenied: Access Denied (request id X)".
  absl::Status ErrorStatus(const S3Op& op, const HttpResponse& r, const S3Error& e) const {
    // What a human needs when the body is not an S3 error document: HEAD has no body, and
    // proxies send their own pages.
    ServiceError shown = e;
    if (e.code.empty()) {
      shown.code = ReasonPhrase(r.status);
      if (e.message.empty() && op.method != "HEAD" && !r.body.empty()) {
        shown.message = BodySnippet(r.body);
      }
    }
    std::string hint;
    if ((r.status == 301 || r.status == 307 || e.code == "AuthorizationHeaderMalformed" ||
         e.code == "PermanentRedirect") &&
        !e.region.empty() && e.region != target_.region) {
      hint = absl::StrCat("the bucket is in region ", e.region, ", not ", target_.region,
                          ": set region=", e.region);
    }
    return absl::Status(CodeForResponse(r.status, e),
                        FormatHttpError({target_.flavor, op.method, op.what}, r.status, shown,
                                        hint));
  }

  const S3Target target_;
  const sigv4::Credentials credentials_;
  const std::unique_ptr<HttpClient> http_;  // thread-safe, pooled keep-alive connections
  const RetryPolicy retry_;
};

}  // namespace

// Only for error responses: a 200 body is object data, not XML.
S3Error ParseS3Error(const HttpResponse& response) {
  S3Error e;
  const size_t first = response.body.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && response.body[first] == '<') {
    absl::StatusOr<XmlElement> root = ParseXml(response.body);
    if (root.ok() && root->name == "Error") {
      e.code = root->ChildText("Code");
      e.message = root->ChildText("Message");
      e.request_id = root->ChildText("RequestId");
      e.region = root->ChildText("Region");
    }
  }
  if (e.request_id.empty()) e.request_id = response.Header("x-amz-request-id");
  if (e.request_id.empty()) e.request_id = response.Header("opc-request-id");  // OCI
  if (e.region.empty()) e.region = response.Header("x-amz-bucket-region");
  return e;
}

absl::StatusOr<ListPage> ParseListBucketResult(std::string_view body, std::string_view strip) {
  absl::StatusOr<XmlElement> root = ParseXml(body);
  if (!root.ok() || root->name != "ListBucketResult") {
    return absl::InternalError(absl::StrCat(
        "not a ListBucketResult: ",
        root.ok() ? root->name : std::string(root.status().message())));
  }
  ListPage page;
  for (const XmlElement* c : root->Children("Contents")) {
    const XmlElement* key_element = c->Child("Key");
    std::string key = key_element != nullptr ? key_element->text : "";
    ObjectInfo info;
    // A <Key> holding elements is not S3's: its text would be the pieces between them, joined.
    if (key_element == nullptr || !key_element->children.empty() ||
        !absl::StartsWith(key, AbslView(strip)) ||
        !absl::SimpleAtoi(c->ChildText("Size"), &info.size)) {
      return absl::InternalError(absl::StrCat("bad entry for key '", key, "' in listing"));
    }
    info.key = key.substr(strip.size());
    page.objects.push_back(std::move(info));
  }
  if (absl::AsciiStrToLower(root->ChildText("IsTruncated")) == "true") {
    page.next_token = root->ChildText("NextContinuationToken");
    if (page.next_token.empty()) {
      // Following an empty token would restart the listing from the top, forever.
      return absl::InternalError("truncated listing without a continuation token");
    }
  }
  return page;
}

absl::StatusOr<std::unique_ptr<BlockStore>> NewS3Store(const StoreUrl& url,
                                                       const StoreCredentials& credentials) {
  ASSIGN_OR_RETURN(S3Target target, ResolveTarget(url));
  if (credentials.access_key_id.empty() != credentials.secret_access_key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        target.display_url, ": incomplete credentials: ",
        credentials.access_key_id.empty() ? "a secret access key without an access key id"
                                          : "an access key id without a secret access key"));
  }
  sigv4::Credentials creds{credentials.access_key_id, credentials.secret_access_key,
                           credentials.session_token};
  std::unique_ptr<HttpClient> http = HttpClient::Create();
  if (http == nullptr) return absl::InternalError("cannot create an HTTP client");
  return std::make_unique<S3Store>(std::move(target), std::move(creds), std::move(http));
}

}  // namespace nighfs::blockstore
