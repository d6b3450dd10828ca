// Azure Blob Storage block store over the Blob service REST API: one block is one block blob
// written with a single Put Blob (blocks are at most 64 MiB; Put Blob takes 5000 MiB since
// x-ms-version 2019-12-12).
#include "blockstore/azure_store.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "blockstore/azure_auth.h"
#include "blockstore/http_store_util.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

using azure::AzureRequest;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr int kMaxListResults = 5000;  // the service's cap on maxresults

// Azure naming rules, checked up front so a typo gets a clear message instead of a 400.
bool ValidAccountName(std::string_view a) {
  if (a.size() < 3 || a.size() > 24) return false;
  return std::all_of(a.begin(), a.end(), [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

bool ValidContainerName(std::string_view c) {
  if (c.size() < 3 || c.size() > 63 || c.front() == '-' || c.back() == '-') return false;
  if (c.find("--") != std::string_view::npos) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) {
    return absl::ascii_islower(static_cast<unsigned char>(ch)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(ch)) || ch == '-';
  });
}

// List prefixes are any string of key characters (a trailing '/' included); whole keys go
// through ValidateKey, which is stricter.
absl::Status ValidatePrefix(std::string_view prefix) {
  for (char c : prefix) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '/' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid character in list prefix '", AV(prefix), "'"));
    }
  }
  return absl::OkStatus();
}

struct Endpoint {
  std::string origin;     // "https://acct.blob.core.windows.net", "http://127.0.0.1:10000"
  std::string base_path;  // "" or "/devstoreaccount1" (no trailing '/')
};

absl::StatusOr<Endpoint> ParseEndpoint(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("Azure endpoint '", AV(url),
                                                   "' is not an http:// or https:// URL"));
  }
  const std::string scheme = absl::AsciiStrToLower(AV(url.substr(0, scheme_end)));
  if (scheme != "http" && scheme != "https") {
    return absl::InvalidArgumentError(absl::StrCat("Azure endpoint '", AV(url),
                                                   "' is not an http:// or https:// URL"));
  }
  if (url.find_first_of("?#") != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("Azure endpoint '", AV(url), "' must not have a query or fragment"));
  }
  const size_t host_start = scheme_end + 3;
  const size_t path_start = url.find('/', host_start);
  Endpoint ep;
  ep.origin = std::string(url.substr(0, path_start));
  if (ep.origin.size() == host_start) {
    return absl::InvalidArgumentError(absl::StrCat("Azure endpoint '", AV(url), "' has no host"));
  }
  if (path_start != std::string_view::npos) {
    std::string_view path = url.substr(path_start);
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    ep.base_path = std::string(path);
  }
  return ep;
}

// Whether a Content-Range value ("bytes 100-199/1000") starts at `offset`: a cheap guard
// against splicing the wrong bytes into a file.
bool RangeStartsAt(std::string_view content_range, uint64_t offset) {
  absl::string_view v = AV(content_range);
  if (!absl::ConsumePrefix(&v, "bytes ")) return false;
  uint64_t start = 0;
  return absl::SimpleAtoi(v.substr(0, v.find('-')), &start) && start == offset;
}

bool HasErrorCode(const HttpResponse& r, std::string_view code) {
  if (r.Header("x-ms-error-code") == code) return true;
  return azure::ParseAzureError(r.body).code == code;
}

// The Blob service's departures from CodeForHttpStatus: throttling (ServerBusy, 408) is
// retried, an over-long body or URL is the request's fault, and every other client error
// (409 conflicts, 416, ...) is a request this store should not have made.
absl::StatusCode CodeForAzureError(int status, std::string_view error_code) {
  if (error_code == "ServerBusy" || status == 408) return absl::StatusCode::kUnavailable;
  if (status == 413 || status == 414) return absl::StatusCode::kInvalidArgument;
  const absl::StatusCode code = CodeForHttpStatus(status);
  if (code == absl::StatusCode::kUnknown && status >= 400) {
    return absl::StatusCode::kFailedPrecondition;
  }
  return code;  // kUnknown: a redirect or informational status we never ask for
}

// "Azure GET blk/1: 403 AuthenticationFailed: Server failed to ... (request id X)", with the
// canonical code the rest of nighfs (and IsRetryable) understands.
absl::Status ErrorFromResponse(std::string_view method, std::string_view what,
                               const HttpResponse& r) {
  const azure::AzureError body = azure::ParseAzureError(r.body);
  ServiceError e;
  e.code = body.code.empty() ? r.Header("x-ms-error-code") : body.code;  // HEAD has no body
  e.message = body.message;
  e.request_id = r.Header("x-ms-request-id");
  return absl::Status(CodeForAzureError(r.status, e.code),
                      FormatHttpError({"Azure", method, what}, r.status, e));
}

// Check() with a SAS reads this blob (under the store's prefix) and expects it not to exist.
// Block keys (block_key.cc) never start with '.'.
constexpr std::string_view kCheckBlob = ".nighfs-check-absent";

class AzureStore final : public BlockStore {
 public:
  AzureStore(std::string account, std::string container, std::string prefix, Endpoint endpoint,
             std::string describe, std::optional<azure::SharedKeySigner> signer,
             std::string sas_token, AzureStoreOptions options, std::unique_ptr<HttpClient> http)
      : account_(std::move(account)),
        container_(std::move(container)),
        prefix_(std::move(prefix)),
        endpoint_(std::move(endpoint)),
        describe_(std::move(describe)),
        signer_(std::move(signer)),
        sas_token_(std::move(sas_token)),
        options_(std::move(options)),
        http_(std::move(http)) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    RETURN_IF_ERROR(ValidateKey(key));
    if (length == 0) return ZeroLengthRead(*this, key);
    AzureRequest req = BlobRequest("GET", key);
    std::string range = ByteRangeHeader(offset, length);
    const bool whole = range.empty();
    if (!whole) req.headers.emplace_back("x-ms-range", std::move(range));
    const uint64_t expected = length == kToEnd ? kMaxBlockGuess : length;
    std::string data;
    bool md5_mismatch = false;
    absl::Status s = Call(
        req, "", TransferTimeout(expected), key, [&](HttpResponse& r) -> absl::Status {
          md5_mismatch = false;
          if (r.status == 416) {  // InvalidRange: the offset is at or past the end
            data.clear();
            return absl::OkStatus();
          }
          if (r.status != 200 && r.status != 206) return ErrorFromResponse("GET", key, r);
          // For a whole-blob read the service returns the MD5 it stored at Put Blob time:
          // verify end to end. (On ranged reads Content-MD5 is the whole blob's.)
          const std::string md5 = r.Header("Content-MD5");
          if (r.status == 200 && whole && !md5.empty()) {
            const std::string got = Md5Base64(r.body);
            if (!got.empty() && got != md5) {
              md5_mismatch = true;
              return absl::UnavailableError(absl::StrCat("Azure GET ", AV(key),
                                                         ": content MD5 mismatch"));
            }
          }
          if (r.status == 200 && !whole) {
            // Whoever answered ignored the range (the service never does; a proxy might).
            data = offset >= r.body.size() ? "" : r.body.substr(offset, length);
            return absl::OkStatus();
          }
          if (r.body.size() > length) {
            return absl::InternalError(absl::StrCat("Azure GET ", AV(key), ": asked for ",
                                                    length, " bytes, got ", r.body.size()));
          }
          if (r.status == 206 && !RangeStartsAt(r.Header("Content-Range"), offset)) {
            return absl::InternalError(absl::StrCat("Azure GET ", AV(key), ": asked for offset ",
                                                    offset, ", got Content-Range '",
                                                    r.Header("Content-Range"), "'"));
          }
          data = std::move(r.body);
          return absl::OkStatus();
        });
    if (!s.ok()) {
      // Corruption that survived every retry is not an availability problem.
      if (md5_mismatch) return absl::DataLossError(s.message());
      return s;
    }
    return data;
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    RETURN_IF_ERROR(ValidateKey(key));
    AzureRequest req = BlobRequest("PUT", key);
    req.headers.emplace_back("x-ms-blob-type", "BlockBlob");
    req.headers.emplace_back("Content-Length", absl::StrCat(data.size()));
    // Stated explicitly (and so signed): some HTTP stacks add a form Content-Type to bodies.
    req.headers.emplace_back("Content-Type", "application/octet-stream");
    // The service rejects the upload (400 Md5Mismatch) if the bytes arrive altered, and keeps
    // the MD5 so whole-blob reads can be verified too.
    const std::string md5 = Md5Base64(data);
    if (!md5.empty()) req.headers.emplace_back("Content-MD5", md5);
    return Call(req, data, TransferTimeout(data.size()), key,
                [&](HttpResponse& r) -> absl::Status {
                  if (r.status == 201) return absl::OkStatus();
                  return ErrorFromResponse("PUT", key, r);
                });
  }

  absl::Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    return Call(BlobRequest("DELETE", key), "", absl::ZeroDuration(), key,
                [&](HttpResponse& r) -> absl::Status {
                  if (r.status == 202 || r.status == 200) return absl::OkStatus();
                  // Already gone is success, but a missing container is a misconfiguration.
                  if (r.status == 404 && HasErrorCode(r, "BlobNotFound")) return absl::OkStatus();
                  return ErrorFromResponse("DELETE", key, r);
                });
  }

  absl::StatusOr<ObjectInfo> Head(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    ObjectInfo info;
    info.key = std::string(key);
    RETURN_IF_ERROR(Call(BlobRequest("HEAD", key), "", absl::ZeroDuration(), key,
                         [&](HttpResponse& r) -> absl::Status {
                           if (r.status != 200) return ErrorFromResponse("HEAD", key, r);
                           const std::string len = r.Header("Content-Length");
                           if (!absl::SimpleAtoi(len, &info.size)) {
                             return absl::InternalError(absl::StrCat(
                                 "Azure HEAD ", AV(key), ": bad Content-Length '", len, "'"));
                           }
                           return absl::OkStatus();
                         }));
    return info;
  }

  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys) override {
    RETURN_IF_ERROR(ValidatePrefix(prefix));
    if (max_keys < 1) return absl::InvalidArgumentError("List: max_keys must be at least 1");
    const std::string full_prefix = absl::StrCat(prefix_, AV(prefix));
    const std::string what = absl::StrCat("list '", AV(prefix), "'");
    std::string marker(page_token);
    // The service may end a page early, even with no entries, while more remain. An empty
    // page that is not the last would look like the end of the listing to a careless caller,
    // so keep asking until a page has entries or the listing is complete. The bound only
    // guards against a server that never makes progress.
    for (int round = 0; round < 1000; ++round) {
      AzureRequest req = ContainerRequest("GET");
      req.query.emplace_back("comp", "list");
      // Empty parameters are left out rather than sent as "prefix=": simpler to sign.
      if (!full_prefix.empty()) req.query.emplace_back("prefix", full_prefix);
      if (!marker.empty()) req.query.emplace_back("marker", marker);
      req.query.emplace_back("maxresults", absl::StrCat(std::min(max_keys, kMaxListResults)));
      ListPage page;
      RETURN_IF_ERROR(Call(req, "", absl::ZeroDuration(), what,
                           [&](HttpResponse& r) -> absl::Status {
                             if (r.status != 200) return ErrorFromResponse("GET", what, r);
                             auto listing = azure::ParseListBlobs(r.body);
                             if (!listing.ok()) {
                               return absl::InternalError(absl::StrCat(
                                   "Azure GET ", what, ": ", listing.status().message()));
                             }
                             page = ListPage();
                             for (auto& blob : listing->blobs) {
                               // The service filtered by prefix; this only guards the strip.
                               if (!absl::StartsWith(blob.name, prefix_)) continue;
                               page.objects.push_back(
                                   {blob.name.substr(prefix_.size()), blob.size});
                             }
                             page.next_token = std::move(listing->next_marker);
                             return absl::OkStatus();
                           }));
      if (!page.objects.empty() || page.next_token.empty()) return page;
      if (page.next_token == marker) break;
      marker = std::move(page.next_token);
    }
    return absl::InternalError(absl::StrCat("Azure GET ", what,
                                            ": the service keeps returning empty pages"));
  }

  absl::Status Check() override {
    // With Shared Key, Get Container Properties is the cheapest proof of endpoint, container
    // and key. A SAS may be scoped so it cannot read container properties; it is checked by
    // reading a blob that is never written: 404 BlobNotFound proves endpoint, container and
    // read access without a listing (which may lack permission, and costs more).
    const bool shared_key = signer_.has_value();
    AzureRequest req = shared_key ? ContainerRequest("GET") : BlobRequest("GET", kCheckBlob);
    const std::string what = absl::StrCat("container '", container_, "'");
    absl::Status s = Call(req, "", absl::ZeroDuration(), what,
                          [&](HttpResponse& r) -> absl::Status {
                            if (r.status == 200) return absl::OkStatus();
                            if (!shared_key && r.status == 404 &&
                                HasErrorCode(r, "BlobNotFound")) {
                              return absl::OkStatus();
                            }
                            return ErrorFromResponse("GET", what, r);
                          });
    if (s.ok()) return s;
    const std::string where =
        absl::StrCat("account '", account_, "' at ", endpoint_.origin, endpoint_.base_path);
    switch (s.code()) {
      case absl::StatusCode::kNotFound:
        return absl::NotFoundError(absl::StrCat("Azure container '", container_,
                                                "' does not exist in ", where, " (", s.message(),
                                                ")"));
      case absl::StatusCode::kPermissionDenied:
        return absl::PermissionDeniedError(absl::StrCat(
            "Azure rejected the credentials for ", where, ": check the account key or SAS token (",
            s.message(), ")"));
      case absl::StatusCode::kUnavailable:
      case absl::StatusCode::kDeadlineExceeded:
        return absl::Status(s.code(), absl::StrCat("cannot reach Azure ", where, " (",
                                                   s.message(), ")"));
      default:
        return absl::Status(s.code(),
                            absl::StrCat("Azure check of ", where, " failed: ", s.message()));
    }
  }

  std::string Describe() const override { return describe_; }

 private:
  // Without a length (read to the end) a transfer is at most one block.
  static constexpr uint64_t kMaxBlockGuess = 64ull << 20;

  AzureRequest ContainerRequest(std::string method) const {
    AzureRequest req;
    req.method = std::move(method);
    req.path = absl::StrCat(endpoint_.base_path, "/", container_);
    req.query.emplace_back("restype", "container");
    return req;
  }

  AzureRequest BlobRequest(std::string method, std::string_view key) const {
    AzureRequest req;
    req.method = std::move(method);
    req.path = absl::StrCat(endpoint_.base_path, "/", container_, "/",
                            PercentEncode(absl::StrCat(prefix_, AV(key)), Slash::kKeep));
    return req;
  }

  // Large uploads and downloads get more than the client's default time: the per-request
  // limit must not cut off a healthy 64 MiB transfer on a slow link. Stalls are still caught
  // by the client's low-speed limit.
  absl::Duration TransferTimeout(uint64_t bytes) const {
    const absl::Duration scaled =
        absl::Seconds(30) + absl::Seconds(static_cast<double>(bytes) / (256 * 1024));
    return std::max(options_.http.default_timeout, scaled);
  }

  // Sends `templ` with retries (SendWithRetries), re-authorized on every attempt so each
  // carries a fresh x-ms-date. `handle` turns each HTTP response into OK or an error; the
  // retryable errors among those (Unavailable for 5xx/429/ServerBusy) and transport failures
  // are retried. The SAS token, which rides in the URL, is kept out of every message.
  absl::Status Call(const AzureRequest& templ, std::string_view body, absl::Duration timeout,
                    std::string_view what,
                    const std::function<absl::Status(HttpResponse&)>& handle) {
    const auto make_request = [&]() {
      AzureRequest req = templ;
      req.headers.emplace_back("x-ms-version", kAzureApiVersion);
      if (signer_.has_value()) {
        signer_->Sign(absl::Now(), &req);
      } else {
        azure::ApplySasToken(sas_token_, &req);
      }
      HttpRequest http;
      http.method = req.method;
      http.url = absl::StrCat(endpoint_.origin, req.path);
      const std::string query = azure::BuildQueryString(req);
      if (!query.empty()) absl::StrAppend(&http.url, "?", query);
      http.headers = std::move(req.headers);
      http.body = body;
      http.timeout = timeout;
      return http;
    };
    return SendWithRetries(*http_, options_.retry, {"Azure", templ.method, what}, make_request,
                           handle, sas_token_);
  }

  const std::string account_;
  const std::string container_;
  const std::string prefix_;  // "" or ends with '/'
  const Endpoint endpoint_;
  const std::string describe_;
  // Exactly one of signer_ (Shared Key) and sas_token_ is set.
  const std::optional<azure::SharedKeySigner> signer_;
  const std::string sas_token_;
  const AzureStoreOptions options_;
  // Thread-safe; the store's only mutable state lives behind it.
  const std::unique_ptr<HttpClient> http_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BlockStore>> NewAzureStore(const StoreUrl& url,
                                                          const StoreCredentials& credentials,
                                                          const AzureStoreOptions& options) {
  const std::string& account = url.authority;
  if (!ValidAccountName(account)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", account, "' is not an Azure storage account name (3-24 lowercase letters/digits)"));
  }
  std::string_view path = url.path;
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  const size_t slash = path.find('/');
  const std::string container(path.substr(0, slash));
  if (!ValidContainerName(container)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", container,
        "' is not an Azure container name (3-63 lowercase letters, digits and single hyphens); "
        "expected azure://account/container[/prefix]"));
  }
  std::string_view prefix = slash == std::string_view::npos ? "" : path.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (!prefix.empty()) RETURN_IF_ERROR(ValidateKey(prefix));
  const std::string root_prefix = prefix.empty() ? "" : absl::StrCat(AV(prefix), "/");

  std::string endpoint_url;
  for (const auto& [k, v] : url.params) {
    if (k == "endpoint") {
      endpoint_url = v;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown parameter '", k, "' in an azure:// URL (known: endpoint)"));
    }
  }
  // Secrets never live in the URL (ParseStoreUrl refuses them), so it describes the store.
  std::string describe = url.ToString();
  if (endpoint_url.empty()) endpoint_url = absl::StrCat("https://", account, ".blob.core.windows.net");
  ASSIGN_OR_RETURN(Endpoint endpoint, ParseEndpoint(endpoint_url));

  std::optional<azure::SharedKeySigner> signer;
  std::string sas;
  if (!credentials.azure_account_key.empty()) {
    ASSIGN_OR_RETURN(azure::SharedKeySigner s,
                     azure::SharedKeySigner::Create(account, credentials.azure_account_key));
    signer.emplace(std::move(s));
  } else if (!credentials.azure_sas_token.empty()) {
    ASSIGN_OR_RETURN(sas, azure::NormalizeSasToken(credentials.azure_sas_token));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "no credentials for Azure account '", account,
        "': set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN"));
  }

  std::unique_ptr<HttpClient> http = HttpClient::Create(options.http);
  if (http == nullptr) return absl::InternalError("could not create an HTTP client");
  return std::make_unique<AzureStore>(account, container, root_prefix, std::move(endpoint),
                                      std::move(describe), std::move(signer), std::move(sas),
                                      options, std::move(http));
}

absl::StatusOr<std::unique_ptr<BlockStore>> NewAzureStore(const StoreUrl& url,
                                                          const StoreCredentials& credentials) {
  return NewAzureStore(url, credentials, AzureStoreOptions());
}

}  // namespace nighfs::blockstore
