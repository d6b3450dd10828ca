#include "blockstore/azure_auth.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace nighfs::blockstore::azure {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsUnreserved(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string Encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// The standard headers of the string-to-sign are looked up case-insensitively; the first
// occurrence wins (we never send duplicates of these).
std::string StandardHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, AV(name))) return std::string(absl::StripAsciiWhitespace(v));
  }
  return "";
}

// Folds every run of linear whitespace into a single space and trims the ends, as the
// Shared Key rules require for canonicalized header values.
std::string FoldWhitespace(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

std::string FormatIso8601Seconds(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace

std::string FormatRfc1123(absl::Time t) {
  // Hand-rolled rather than strftime's %a/%b, which follow the process locale.
  static constexpr std::array<const char*, 7> kDays = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr",
                                                          "May", "Jun", "Jul", "Aug",
                                                          "Sep", "Oct", "Nov", "Dec"};
  const absl::CivilSecond cs = absl::ToCivilSecond(t, absl::UTCTimeZone());
  const absl::Weekday wd = absl::GetWeekday(cs);
  return absl::StrFormat("%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[static_cast<int>(wd)],
                         cs.day(), kMonths[cs.month() - 1], cs.year(), cs.hour(), cs.minute(),
                         cs.second());
}

std::string PercentEncode(std::string_view s) { return Encode(s, /*keep_slash=*/false); }
std::string PercentEncodePath(std::string_view s) { return Encode(s, /*keep_slash=*/true); }

std::string BuildQueryString(const AzureRequest& request) {
  std::string out;
  for (const auto& [name, value] : request.query) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, PercentEncode(name), "=", PercentEncode(value));
  }
  if (!request.raw_query_suffix.empty()) {
    if (!out.empty()) out.push_back('&');
    out += request.raw_query_suffix;
  }
  return out;
}

std::string CanonicalizedHeaders(const HttpHeaders& headers) {
  // std::map sorts by the lowercased name, which is what "sorted lexicographically" means
  // for names restricted to ASCII.
  std::map<std::string, std::vector<std::string>> ms;
  for (const auto& [name, value] : headers) {
    std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
    if (!absl::StartsWith(lower, "x-ms-")) continue;
    ms[lower].push_back(FoldWhitespace(value));
  }
  std::string out;
  for (const auto& [name, values] : ms) {
    absl::StrAppend(&out, name, ":", absl::StrJoin(values, ","), "\n");
  }
  return out;
}

std::string CanonicalizedResource(std::string_view account, std::string_view path,
                                  const QueryParams& query) {
  std::string out = absl::StrCat("/", AV(account), path.empty() ? "/" : AV(path));
  std::map<std::string, std::vector<std::string>> params;
  for (const auto& [name, value] : query) params[absl::AsciiStrToLower(name)].push_back(value);
  for (auto& [name, values] : params) {
    std::sort(values.begin(), values.end());
    absl::StrAppend(&out, "\n", name, ":", absl::StrJoin(values, ","));
  }
  return out;
}

std::string SharedKeyStringToSign(std::string_view account, const AzureRequest& request) {
  const HttpHeaders& h = request.headers;
  std::string content_length = StandardHeader(h, "Content-Length");
  // Since x-ms-version 2015-02-21 a zero Content-Length is signed as the empty string.
  if (content_length == "0") content_length.clear();
  return absl::StrCat(absl::AsciiStrToUpper(request.method), "\n",
                      StandardHeader(h, "Content-Encoding"), "\n",
                      StandardHeader(h, "Content-Language"), "\n",
                      content_length, "\n",
                      StandardHeader(h, "Content-MD5"), "\n",
                      StandardHeader(h, "Content-Type"), "\n",
                      StandardHeader(h, "Date"), "\n",
                      StandardHeader(h, "If-Modified-Since"), "\n",
                      StandardHeader(h, "If-Match"), "\n",
                      StandardHeader(h, "If-None-Match"), "\n",
                      StandardHeader(h, "If-Unmodified-Since"), "\n",
                      StandardHeader(h, "Range"), "\n",
                      CanonicalizedHeaders(h),
                      CanonicalizedResource(account, request.path, request.query));
}

std::string HmacSha256Base64(std::string_view key, std::string_view message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &mac_len);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(mac), static_cast<size_t>(mac_len)));
}

absl::StatusOr<SharedKeySigner> SharedKeySigner::Create(std::string account,
                                                        std::string_view account_key_base64) {
  if (account.empty()) return absl::InvalidArgumentError("Azure account name is empty");
  const absl::string_view trimmed = absl::StripAsciiWhitespace(AV(account_key_base64));
  std::string key;
  // absl::Base64Unescape tolerates missing padding but rejects characters outside the
  // alphabet, which catches a key pasted with quotes or a SAS token pasted in its place.
  if (trimmed.empty() || !absl::Base64Unescape(trimmed, &key) || key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Azure account key for '", account, "' is not valid base64"));
  }
  return SharedKeySigner(std::move(account), std::move(key));
}

std::string SharedKeySigner::Signature(std::string_view string_to_sign) const {
  return HmacSha256Base64(key_, string_to_sign);
}

void SharedKeySigner::Sign(absl::Time now, AzureRequest* request) const {
  HttpHeaders& h = request->headers;
  h.erase(std::remove_if(h.begin(), h.end(),
                         [](const auto& kv) {
                           return absl::EqualsIgnoreCase(kv.first, "x-ms-date") ||
                                  absl::EqualsIgnoreCase(kv.first, "Authorization");
                         }),
          h.end());
  h.emplace_back("x-ms-date", FormatRfc1123(now));
  const std::string signature = Signature(SharedKeyStringToSign(account_, *request));
  h.emplace_back("Authorization", absl::StrCat("SharedKey ", account_, ":", signature));
}

absl::StatusOr<std::string> NormalizeSasToken(std::string_view token) {
  absl::string_view t = absl::StripAsciiWhitespace(AV(token));
  if (absl::StartsWith(t, "?")) t.remove_prefix(1);
  bool has_sig = false;
  for (absl::string_view part : absl::StrSplit(t, '&')) {
    if (absl::StartsWith(part, "sig=") && part.size() > 4) has_sig = true;
  }
  // The token itself stays out of the message: it is a bearer credential.
  if (!has_sig) return absl::InvalidArgumentError("the Azure SAS token has no sig= parameter");
  return std::string(t);
}

void ApplySasToken(std::string_view normalized_token, AzureRequest* request) {
  request->raw_query_suffix = std::string(normalized_token);
}

std::string AccountSasStringToSign(std::string_view account, const AccountSasOptions& o) {
  const std::string start = o.start == absl::InfinitePast() ? "" : FormatIso8601Seconds(o.start);
  // Fields in the order of "Create an account SAS", version 2020-12-06 and later: account,
  // sp, ss, srt, st, se, sip, spr, sv, ses, then a trailing newline.
  return absl::StrCat(AV(account), "\n", o.permissions, "\n", "b", "\n", o.resource_types, "\n",
                      start, "\n", FormatIso8601Seconds(o.expiry), "\n", "", "\n", o.protocol,
                      "\n", o.version, "\n", "", "\n");
}

std::string MakeAccountSasToken(const SharedKeySigner& signer, const AccountSasOptions& o) {
  const std::string sig = signer.Signature(AccountSasStringToSign(signer.account(), o));
  std::string token = absl::StrCat("sv=", PercentEncode(o.version), "&ss=b&srt=",
                                    PercentEncode(o.resource_types), "&sp=",
                                    PercentEncode(o.permissions));
  if (o.start != absl::InfinitePast()) {
    absl::StrAppend(&token, "&st=", PercentEncode(FormatIso8601Seconds(o.start)));
  }
  absl::StrAppend(&token, "&se=", PercentEncode(FormatIso8601Seconds(o.expiry)));
  if (!o.protocol.empty()) absl::StrAppend(&token, "&spr=", PercentEncode(o.protocol));
  absl::StrAppend(&token, "&sig=", PercentEncode(sig));
  return token;
}

}  // namespace nighfs::blockstore::azure
