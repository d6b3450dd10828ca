#include "blockstore/azure_auth.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "blockstore/http_store_util.h"
#include "blockstore/xml.h"
#include "common/crypto.h"
#include "common/status_macros.h"

namespace nighfs::blockstore::azure {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Query names and values, and SAS fields: '/' encoded too.
std::string EncodeComponent(std::string_view s) { return PercentEncode(s, Slash::kEncode); }

// The standard headers of the string-to-sign are looked up case-insensitively; the first
// occurrence wins (we never send duplicates of these).
std::string StandardHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (absl::EqualsIgnoreCase(k, AV(name))) return std::string(absl::StripAsciiWhitespace(v));
  }
  return "";
}

std::string FormatIso8601Seconds(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) {
      return absl::InvalidArgumentError("truncated percent escape in a blob name");
    }
    const int hi = HexValue(s[i + 1]);
    const int lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return absl::InvalidArgumentError("bad percent escape in a blob name");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
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

std::string BuildQueryString(const AzureRequest& request) {
  std::string out;
  for (const auto& [name, value] : request.query) {
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, EncodeComponent(name), "=", EncodeComponent(value));
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
    // Shared Key folds every run of linear whitespace, line breaks included, to one space.
    ms[lower].push_back(CollapseWhitespace(value, " \t\r\n"));
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

absl::StatusOr<SharedKeySigner> SharedKeySigner::Create(std::string account,
                                                        std::string_view account_key_base64) {
  if (account.empty()) return absl::InvalidArgumentError("Azure account name is empty");
  const absl::string_view trimmed = absl::StripAsciiWhitespace(AV(account_key_base64));
  // Base64Decode tolerates missing padding but rejects characters outside the alphabet, which
  // catches a key pasted with quotes or a SAS token pasted in its place.
  const std::optional<std::string> key =
      trimmed.empty() ? std::nullopt
                      : Base64Decode(std::string_view(trimmed.data(), trimmed.size()));
  if (!key.has_value() || key->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Azure account key for '", account, "' is not valid base64"));
  }
  return SharedKeySigner(std::move(account), *std::move(key));
}

std::string SharedKeySigner::Signature(std::string_view string_to_sign) const {
  return Base64Encode(HmacSha256(key_, string_to_sign));
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
  std::string token = absl::StrCat("sv=", EncodeComponent(o.version), "&ss=b&srt=",
                                    EncodeComponent(o.resource_types), "&sp=",
                                    EncodeComponent(o.permissions));
  if (o.start != absl::InfinitePast()) {
    absl::StrAppend(&token, "&st=", EncodeComponent(FormatIso8601Seconds(o.start)));
  }
  absl::StrAppend(&token, "&se=", EncodeComponent(FormatIso8601Seconds(o.expiry)));
  if (!o.protocol.empty()) absl::StrAppend(&token, "&spr=", EncodeComponent(o.protocol));
  absl::StrAppend(&token, "&sig=", EncodeComponent(sig));
  return token;
}

absl::StatusOr<BlobListing> ParseListBlobs(std::string_view document) {
  ASSIGN_OR_RETURN(const XmlElement root, ParseXml(document));
  if (root.name != "EnumerationResults") {
    return absl::InvalidArgumentError(
        absl::StrCat("List Blobs returned <", root.name, "> instead of <EnumerationResults>"));
  }
  BlobListing listing;
  listing.next_marker = std::string(absl::StripAsciiWhitespace(root.ChildText("NextMarker")));
  const XmlElement* blobs = root.Child("Blobs");
  if (blobs == nullptr) return listing;  // an empty page may omit <Blobs>
  // <BlobPrefix> entries only appear with a delimiter, which the store never sends.
  for (const XmlElement* blob : blobs->Children("Blob")) {
    const XmlElement* name = blob->Child("Name");
    const XmlElement* props = blob->Child("Properties");
    if (name == nullptr || props == nullptr || props->Child("Content-Length") == nullptr) {
      return absl::InvalidArgumentError("List Blobs entry without Name or Content-Length");
    }
    BlobEntry entry;
    if (name->Attribute("Encoded") == "true") {
      ASSIGN_OR_RETURN(entry.name, PercentDecode(name->text));
    } else {
      entry.name = name->text;
    }
    const std::string size_text =
        std::string(absl::StripAsciiWhitespace(props->ChildText("Content-Length")));
    if (!absl::SimpleAtoi(size_text, &entry.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("List Blobs entry '", entry.name, "' has a bad Content-Length"));
    }
    listing.blobs.push_back(std::move(entry));
  }
  return listing;
}

AzureError ParseAzureError(std::string_view body) {
  AzureError err;
  if (body.empty()) return err;
  const absl::StatusOr<XmlElement> root = ParseXml(body);
  if (!root.ok() || root->name != "Error") return err;
  err.code = std::string(absl::StripAsciiWhitespace(root->ChildText("Code")));
  const std::string full = root->ChildText("Message");
  absl::string_view msg = absl::StripAsciiWhitespace(full);
  // The service appends "\nRequestId:...\nTime:..."; the request id is reported separately.
  const size_t nl = msg.find('\n');
  if (nl != absl::string_view::npos) msg = absl::StripAsciiWhitespace(msg.substr(0, nl));
  err.message = std::string(msg);
  return err;
}

}  // namespace nighfs::blockstore::azure
