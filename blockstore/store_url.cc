// Store URLs and object keys: the two strings a user or a caller hands the block store.
//
// URLs are parsed strictly: a store URL is written once into a volume's configuration and then
// decides where every block of the file system lives, so a typo must fail loudly at mount or
// volume-creation time rather than silently pick another folder or bucket.
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "blockstore/block_store.h"

namespace nighfs::blockstore {
namespace {

constexpr size_t kMaxKeyLength = 1024;
constexpr std::string_view kTempPrefix = ".nighfs-tmp";
constexpr char kSupportedSchemes[] = "file, s3, gs, oci, azure, mem";

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' ||
         c == '-' || c == '/';
}

// Bucket, container, account and namespace names: the characters every provider allows and
// that need no escaping anywhere in a request.
bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

// Characters ToString() leaves unescaped in a query value. ':', '/' and '@' are legal in a
// query (RFC 3986 section 3.4) and keep endpoints such as http://127.0.0.1:9000 readable.
bool IsQuerySafe(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == ':' || c == '/' || c == '@';
}

bool IsPathSafe(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '/';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes. '+' stays '+': store URLs are not HTML form data, and base64-looking
// values must survive unchanged.
bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    const char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return false;
    out->push_back(c);
    i += 2;
  }
  return true;
}

std::string PercentEncode(std::string_view in, bool (*safe)(char)) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char c : in) {
    if (safe(c)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

// Whether a query key names something secret. Matching is deliberately broad ("key" matches
// access_key_id, AccountKey, AWSAccessKeyId; "sig" is an Azure SAS signature; X-Amz-Signature,
// X-Amz-Credential and X-Amz-Security-Token are presigned-URL parts): a URL is logged and shown
// in status output, and a false alarm costs one line in the credentials file.
bool LooksLikeSecretKey(std::string_view raw_key) {
  const std::string key = absl::AsciiStrToLower(AbslView(raw_key));
  for (const char* word : {"secret", "key", "token", "signature", "credential", "password",
                           "passwd"}) {
    if (absl::StrContains(key, word)) return true;
  }
  for (const char* exact : {"sig", "sas", "pwd", "pass", "auth", "authorization"}) {
    if (key == exact) return true;
  }
  return false;
}

// The URL as it may appear in an error message: userinfo and every query value replaced, since
// the input may carry exactly the secrets we are about to reject.
std::string RedactForMessage(std::string_view url) {
  std::string out;
  const size_t sep = url.find("://");
  const size_t auth_begin = sep == std::string_view::npos ? 0 : sep + 3;
  size_t auth_end = url.find_first_of("/?#", auth_begin);
  if (auth_end == std::string_view::npos) auth_end = url.size();
  std::string_view authority = url.substr(auth_begin, auth_end - auth_begin);
  out.append(url.substr(0, auth_begin));
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    out.append("<redacted>@");
    authority.remove_prefix(at + 1);
  }
  out.append(authority);
  const size_t query = url.find('?', auth_end);
  out.append(url.substr(auth_end, query == std::string_view::npos ? std::string_view::npos
                                                                  : query - auth_end));
  if (query == std::string_view::npos) return out;
  out.push_back('?');
  std::string_view q = url.substr(query + 1);
  q = q.substr(0, q.find('#'));
  bool first = true;
  while (true) {
    const size_t amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    if (!first) out.push_back('&');
    first = false;
    const size_t eq = part.find('=');
    out.append(part.substr(0, eq));
    if (eq != std::string_view::npos) out.append(LooksLikeSecretKey(part.substr(0, eq))
                                                     ? "=<redacted>"
                                                     : std::string(part.substr(eq)));
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return out;
}

class UrlError {
 public:
  explicit UrlError(std::string_view url) : shown_(RedactForMessage(url)) {}
  absl::Status operator()(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("store URL '", shown_, "': ", AbslView(what)));
  }

 private:
  std::string shown_;
};

// Splits `path` on '/', dropping empty segments (so "a//b/" is "a", "b").
std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

absl::Status CheckName(const UrlError& error, std::string_view what, std::string_view name,
                       std::string_view shape) {
  if (name.empty()) {
    return error(absl::StrCat("missing ", AbslView(what), " (expected ", AbslView(shape), ")"));
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return error(absl::StrCat(AbslView(what), " '", AbslView(name),
                                "' may contain only letters, digits, '.', '_' and '-'"));
    }
  }
  if (name.size() > 255) return error(absl::StrCat(AbslView(what), " name is too long"));
  return absl::OkStatus();
}

// Fills url->path for a cloud store: the segments after `skip` named parts, joined with '/',
// without leading or trailing '/'. The prefix becomes part of every object key, so it follows
// the key rules.
absl::Status SetCloudPath(const UrlError& error, const std::vector<std::string_view>& segments,
                          StoreUrl* url) {
  url->path = absl::StrJoin(segments, "/", [](std::string* out, std::string_view s) {
    out->append(s.data(), s.size());
  });
  if (url->path.empty()) return absl::OkStatus();
  if (absl::Status s = ValidateKey(url->path); !s.ok()) {
    return error(absl::StrCat("bad prefix: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("empty object key");
  if (key.size() > kMaxKeyLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("object key longer than ", kMaxKeyLength, " characters"));
  }
  for (char c : key) {
    if (!IsKeyChar(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("object key '", PercentEncode(key, IsPathSafe),
                       "' may contain only letters, digits, '.', '_', '-' and '/'"));
    }
  }
  size_t begin = 0;
  while (begin <= key.size()) {
    size_t end = key.find('/', begin);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view segment = key.substr(begin, end - begin);
    if (segment.empty() || segment == "." || segment == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "object key '", AbslView(key),
          "' has an empty, '.' or '..' path segment (or a leading or trailing '/')"));
    }
    if (absl::StartsWith(AbslView(segment), AbslView(kTempPrefix))) {
      return absl::InvalidArgumentError(
          absl::StrCat("object key '", AbslView(key), "' uses the reserved name prefix '",
                       AbslView(kTempPrefix), "'"));
    }
    begin = end + 1;
  }
  return absl::OkStatus();
}

std::string StoreUrl::Param(std::string_view name, std::string_view fallback) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? std::string(fallback) : it->second;
}

std::string StoreUrl::ToString() const {
  std::string out = absl::StrCat(scheme, "://", authority);
  if (scheme == "file") {
    out.append(PercentEncode(path, IsPathSafe));
  } else if (!path.empty()) {
    absl::StrAppend(&out, "/", PercentEncode(path, IsPathSafe));
  }
  char sep = '?';
  for (const auto& [k, v] : params) {
    out.push_back(sep);
    sep = '&';
    absl::StrAppend(&out, PercentEncode(k, IsQuerySafe), "=", PercentEncode(v, IsQuerySafe));
  }
  return out;
}

absl::StatusOr<StoreUrl> ParseStoreUrl(std::string_view raw) {
  std::string_view url = raw;
  while (!url.empty() && absl::ascii_isspace(static_cast<unsigned char>(url.front()))) {
    url.remove_prefix(1);
  }
  while (!url.empty() && absl::ascii_isspace(static_cast<unsigned char>(url.back()))) {
    url.remove_suffix(1);
  }
  const UrlError error(url);
  if (url.empty()) return absl::InvalidArgumentError("store URL is empty");
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return error("contains a space or control character (percent-encode it)");
    }
  }
  if (url.find('#') != std::string_view::npos) {
    return error("contains '#'; store URLs take no fragment (percent-encode a literal '#')");
  }

  StoreUrl out;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) {
    return error(absl::StrCat("expected scheme://..., with a scheme among ", kSupportedSchemes));
  }
  out.scheme = absl::AsciiStrToLower(AbslView(url.substr(0, sep)));
  for (char c : out.scheme) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return error("malformed scheme");
    }
  }
  std::string_view rest = url.substr(sep + 3);

  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const size_t slash = rest.find('/');
  const std::string_view raw_authority = rest.substr(0, slash);
  const std::string_view raw_path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash);

  if (raw_authority.find('@') != std::string_view::npos) {
    return error(
        "embeds credentials (user:password@); put secrets in the credentials file, not the URL");
  }

  // Query: k=v pairs separated by '&'; keys and values percent-decoded. Empty pieces ("a=1&&")
  // are tolerated, a repeated key is not: which one would win is a guess.
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    std::string key, value;
    if (!PercentDecode(part.substr(0, eq), &key) ||
        (eq != std::string_view::npos && !PercentDecode(part.substr(eq + 1), &value))) {
      return error("bad percent-escape in the query (use %XX with two hex digits, not %00)");
    }
    if (key.empty()) return error("query parameter with an empty name");
    if (LooksLikeSecretKey(key)) {
      return error(absl::StrCat("query parameter '", key,
                                "' looks like a credential; put secrets in the credentials "
                                "file, not the URL"));
    }
    if (!out.params.emplace(key, std::move(value)).second) {
      return error(absl::StrCat("query parameter '", key, "' is given twice"));
    }
  }

  std::string path;
  if (!PercentDecode(raw_path, &path)) {
    return error("bad percent-escape in the path (use %XX with two hex digits, not %00)");
  }
  std::string authority;
  if (!PercentDecode(raw_authority, &authority)) {
    return error("bad percent-escape in the host part");
  }

  const std::vector<std::string_view> segments = Segments(path);
  if (out.scheme == "file") {
    if (!authority.empty()) {
      return error(absl::StrCat(
          "file URLs take an absolute path and no host; write file:///absolute/path (three "
          "slashes), not file://",
          authority, "/..."));
    }
    if (path.empty()) return error("missing the folder path (expected file:///absolute/path)");
    for (std::string_view s : segments) {
      if (s == "." || s == "..") {
        return error("the folder path must not contain '.' or '..' segments");
      }
    }
    // Normalized: duplicate and trailing slashes dropped, so one folder has one spelling.
    out.path = "/" + absl::StrJoin(segments, "/", [](std::string* o, std::string_view s) {
      o->append(s.data(), s.size());
    });
    return out;
  }
  if (out.scheme == "s3" || out.scheme == "gs") {
    if (absl::Status s = CheckName(error, "bucket", authority,
                                   absl::StrCat(out.scheme, "://bucket[/prefix]"));
        !s.ok()) {
      return s;
    }
    out.authority = authority;
    if (absl::Status s = SetCloudPath(error, segments, &out); !s.ok()) return s;
    return out;
  }
  if (out.scheme == "azure" || out.scheme == "oci") {
    const bool azure = out.scheme == "azure";
    const std::string shape =
        azure ? "azure://account/container[/prefix]" : "oci://namespace/bucket[/prefix]";
    if (absl::Status s = CheckName(error, azure ? "account" : "namespace", authority, shape);
        !s.ok()) {
      return s;
    }
    const std::string_view container = segments.empty() ? std::string_view() : segments[0];
    if (absl::Status s = CheckName(error, azure ? "container" : "bucket", container, shape);
        !s.ok()) {
      return s;
    }
    out.authority = authority;
    if (absl::Status s = SetCloudPath(error, segments, &out); !s.ok()) return s;
    return out;
  }
  if (out.scheme == "mem") {
    if (absl::Status s = CheckName(error, "name", authority, "mem://name"); !s.ok()) return s;
    if (!segments.empty()) return error("mem URLs take only a name (mem://name), no path");
    out.authority = authority;
    return out;
  }
  return error(absl::StrCat("unsupported scheme '", out.scheme, "' (supported: ",
                            kSupportedSchemes, ")"));
}

}  // namespace nighfs::blockstore
