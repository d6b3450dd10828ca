// The Azure Blob Storage protocol as azure_store.cc speaks it: authorization of requests with
// Shared Key signing (the account key) or SAS tokens (a pre-signed query string), and the
// reading of the two response bodies the store looks into (List Blobs, errors). Everything here
// is a pure function of its inputs, the time included, so the canonical strings can be checked
// byte for byte against Microsoft's examples.
//
// Reference: "Authorize with Shared Key" (learn.microsoft.com/rest/api/storageservices/
// authorize-with-shared-key), "Create an account SAS", "List Blobs" and "Status and error
// codes".
#ifndef NIGHFS_BLOCKSTORE_AZURE_AUTH_H_
#define NIGHFS_BLOCKSTORE_AZURE_AUTH_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http_client.h"

namespace nighfs::blockstore::azure {

// Query parameters, names and values NOT percent-encoded.
using QueryParams = std::vector<std::pair<std::string, std::string>>;

// One Blob service request before it is authorized and sent.
struct AzureRequest {
  std::string method = "GET";
  // The URL path as sent, percent-encoded, starting with '/'. With an Azurite-style endpoint
  // it begins with the account ("/devstoreaccount1/container/blob").
  std::string path;
  QueryParams query;
  // Every header that will be sent except Host. Content-Length, when the request has a body,
  // must be among them: the signature covers it.
  HttpHeaders headers;
  // Already-encoded query text appended after `query` (a SAS token). Never signed.
  std::string raw_query_suffix;
};

// "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 1123, always GMT, English names whatever the locale).
std::string FormatRfc1123(absl::Time t);

// The query string of `request` ("a=1&b=2" + raw suffix), without the leading '?'. Names and
// values are percent-encoded like PercentEncode(s, Slash::kEncode) of http_store_util.h.
std::string BuildQueryString(const AzureRequest& request);

// The CanonicalizedHeaders element: every x-ms-* header, name lowercased, sorted by name,
// repeated names comma-joined, value whitespace runs folded to one space and trimmed, each
// followed by "\n".
std::string CanonicalizedHeaders(const HttpHeaders& headers);
// The CanonicalizedResource element: "/" + account + path, then for each query parameter in
// sorted lowercase-name order "\nname:value" with multiple values sorted and comma-joined.
std::string CanonicalizedResource(std::string_view account, std::string_view path,
                                  const QueryParams& query);
// The full Shared Key string-to-sign for the Blob service (x-ms-version 2015-02-21 and later:
// a Content-Length of 0 is signed as the empty string).
std::string SharedKeyStringToSign(std::string_view account, const AzureRequest& request);

// Signs requests with an account's Shared Key. Holds the decoded key; never prints it.
// Immutable after construction: safe to share between threads.
class SharedKeySigner {
 public:
  // `account_key_base64` is the key as the portal shows it. InvalidArgument if it is not
  // base64 (the message does not contain the key).
  static absl::StatusOr<SharedKeySigner> Create(std::string account,
                                                std::string_view account_key_base64);

  // Sets x-ms-date to `now` (replacing any earlier one, so a retried request is re-dated)
  // and adds "Authorization: SharedKey account:signature". Call it last, after every other
  // header is in place, and again before each retry.
  void Sign(absl::Time now, AzureRequest* request) const;
  // Base64 HMAC-SHA256 of `string_to_sign` under the account key.
  std::string Signature(std::string_view string_to_sign) const;

  const std::string& account() const { return account_; }

 private:
  SharedKeySigner(std::string account, std::string key)
      : account_(std::move(account)), key_(std::move(key)) {}
  std::string account_;
  std::string key_;  // raw bytes
};

// Normalizes a SAS token as users paste it: strips a leading '?' and surrounding whitespace.
// InvalidArgument if it is empty or has no "sig=" parameter.
absl::StatusOr<std::string> NormalizeSasToken(std::string_view token);
// Authorizes `request` with a SAS token (see NormalizeSasToken) instead of a signature.
void ApplySasToken(std::string_view normalized_token, AzureRequest* request);

// An account SAS (signed version 2020-12-06 or later) for the Blob service.
struct AccountSasOptions {
  std::string permissions = "rwdlac";  // sp
  std::string resource_types = "sco";  // srt: service, container, object
  std::string version = "2021-08-06";  // sv; must be >= 2020-12-06 (signs an encryption scope)
  absl::Time start = absl::InfinitePast();  // st; omitted when InfinitePast
  absl::Time expiry;                        // se
  std::string protocol;                     // spr: "", "https" or "https,http"
};
// The account SAS string-to-sign and the token ("sv=...&sig=..."), for tests and tooling.
std::string AccountSasStringToSign(std::string_view account, const AccountSasOptions& options);
std::string MakeAccountSasToken(const SharedKeySigner& signer, const AccountSasOptions& options);

struct BlobEntry {
  std::string name;
  uint64_t size = 0;
};
struct BlobListing {
  std::vector<BlobEntry> blobs;
  std::string next_marker;  // "" on the last page
};
// Reads a List Blobs response (EnumerationResults/Blobs/Blob{Name,Properties/Content-Length},
// NextMarker). Names the service percent-encoded (Encoded="true") are decoded.
// InvalidArgument if it is not such a document.
absl::StatusOr<BlobListing> ParseListBlobs(std::string_view document);

struct AzureError {
  std::string code;     // "AuthenticationFailed"; "" when the body is not an Azure error
  std::string message;  // first line of <Message> (the RequestId/Time lines are dropped)
};
// Reads an <Error><Code/><Message/></Error> body; anything else gives empty fields.
AzureError ParseAzureError(std::string_view body);

}  // namespace nighfs::blockstore::azure

#endif  // NIGHFS_BLOCKSTORE_AZURE_AUTH_H_
