#include "blockstore/sigv4.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "blockstore/http_store_util.h"

namespace nighfs::blockstore::sigv4 {
namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Hex(std::string_view bytes) { return absl::BytesToHexString(AbslView(bytes)); }

}  // namespace

std::string UriEncode(std::string_view s, bool encode_slash) {
  return PercentEncode(s, encode_slash ? Slash::kEncode : Slash::kKeep);
}

std::string CanonicalUri(std::string_view raw_path) {
  if (raw_path.empty()) return "/";
  return UriEncode(raw_path, /*encode_slash=*/false);
}

std::string CanonicalQueryString(const QueryParams& raw_query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(raw_query.size());
  for (const auto& [name, value] : raw_query) {
    encoded.emplace_back(UriEncode(name, true), UriEncode(value, true));
  }
  // Sorted by encoded name (byte order), then value, as the canonical form requires.
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, name, "=", value);
  }
  return out;
}

std::string AmzDate(absl::Time t) {
  return absl::FormatTime("%Y%m%dT%H%M%SZ", t, absl::UTCTimeZone());
}

std::string SigningKey(std::string_view secret_access_key, std::string_view yyyymmdd,
                       std::string_view region, std::string_view service) {
  std::string k = HmacSha256(absl::StrCat("AWS4", AbslView(secret_access_key)), yyyymmdd);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

Signed Sign(const Request& request, const Credentials& credentials, std::string_view region,
            std::string_view service, absl::Time now) {
  // Lowercased names, sorted; repeated names joined with ',' in the order given.
  std::vector<std::pair<std::string, std::string>> headers;
  headers.reserve(request.headers.size());
  for (const auto& [name, value] : request.headers) {
    std::string lname = absl::AsciiStrToLower(name);
    // SigV4's "Trimall": ends trimmed, inner runs of spaces and tabs folded to one space.
    std::string v = CollapseWhitespace(value, " \t");
    auto it = std::find_if(headers.begin(), headers.end(),
                           [&](const auto& h) { return h.first == lname; });
    if (it != headers.end()) {
      absl::StrAppend(&it->second, ",", v);
    } else {
      headers.emplace_back(std::move(lname), std::move(v));
    }
  }
  std::stable_sort(headers.begin(), headers.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });

  Signed out;
  std::string canonical_headers;
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&canonical_headers, name, ":", value, "\n");
    if (!out.signed_headers.empty()) out.signed_headers.push_back(';');
    out.signed_headers += name;
  }

  out.canonical_request =
      absl::StrCat(request.method, "\n", CanonicalUri(request.raw_path), "\n",
                   CanonicalQueryString(request.raw_query), "\n", canonical_headers, "\n",
                   out.signed_headers, "\n", request.payload_hash);

  const std::string amz_date = AmzDate(now);
  const std::string day = amz_date.substr(0, 8);
  const std::string scope =
      absl::StrCat(day, "/", AbslView(region), "/", AbslView(service), "/aws4_request");
  out.string_to_sign = absl::StrCat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n",
                                    Sha256Hex(out.canonical_request));
  out.signature = Hex(HmacSha256(
      SigningKey(credentials.secret_access_key, day, region, service), out.string_to_sign));
  out.authorization = absl::StrCat("AWS4-HMAC-SHA256 Credential=", credentials.access_key_id, "/",
                                   scope, ",SignedHeaders=", out.signed_headers,
                                   ",Signature=", out.signature);
  return out;
}

void SignS3Request(std::string_view method, std::string_view raw_path,
                   const QueryParams& raw_query, std::string_view payload_hash,
                   const Credentials& credentials, std::string_view region, absl::Time now,
                   HttpHeaders* headers) {
  headers->emplace_back("x-amz-date", AmzDate(now));
  headers->emplace_back("x-amz-content-sha256", std::string(payload_hash));
  if (!credentials.session_token.empty()) {
    headers->emplace_back("x-amz-security-token", credentials.session_token);
  }
  Request request;
  request.method = std::string(method);
  request.raw_path = std::string(raw_path);
  request.raw_query = raw_query;
  request.headers = *headers;
  request.payload_hash = std::string(payload_hash);
  headers->emplace_back("Authorization",
                        Sign(request, credentials, region, "s3", now).authorization);
}

}  // namespace nighfs::blockstore::sigv4
