#include "blockstore/azure_xml.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace nighfs::blockstore::azure {
namespace {

// Deeper nesting than any Blob service response: a guard against hostile input, since the
// parser keeps one stack entry per open element.
constexpr size_t kMaxDepth = 64;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
         c == ':' || static_cast<unsigned char>(c) >= 0x80;
}

class Parser {
 public:
  explicit Parser(std::string_view doc) : doc_(doc) {}

  absl::StatusOr<std::unique_ptr<XmlElement>> Parse() {
    if (absl::StartsWith(AV(doc_), "\xEF\xBB\xBF")) pos_ = 3;  // Azure sends a UTF-8 BOM
    RETURN_IF_ERROR(SkipMisc());
    if (!Peek('<')) return Error("expected the root element");
    std::unique_ptr<XmlElement> root;
    RETURN_IF_ERROR(ParseElement(&root));
    RETURN_IF_ERROR(SkipMisc());
    if (pos_ != doc_.size()) return Error("content after the root element");
    return root;
  }

 private:
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed XML at byte ", pos_, ": ", AV(what)));
  }
  bool Peek(char c) const { return pos_ < doc_.size() && doc_[pos_] == c; }
  bool Starts(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }
  void SkipSpace() {
    while (pos_ < doc_.size() && absl::ascii_isspace(static_cast<unsigned char>(doc_[pos_]))) {
      ++pos_;
    }
  }
  // Moves past the next `terminator`; false if there is none.
  bool SkipPast(std::string_view terminator) {
    const size_t end = doc_.find(terminator, pos_);
    if (end == std::string_view::npos) return false;
    pos_ = end + terminator.size();
    return true;
  }

  // Whitespace, comments and processing instructions (the XML declaration included).
  absl::Status SkipMisc() {
    for (;;) {
      SkipSpace();
      if (Starts("<?")) {
        if (!SkipPast("?>")) return Error("unterminated processing instruction");
      } else if (Starts("<!--")) {
        if (!SkipPast("-->")) return Error("unterminated comment");
      } else if (Starts("<!")) {
        return Error("DTDs are not supported");
      } else {
        return absl::OkStatus();
      }
    }
  }

  absl::StatusOr<std::string> ParseName() {
    const size_t start = pos_;
    while (pos_ < doc_.size() && IsNameChar(doc_[pos_])) ++pos_;
    if (pos_ == start) return Error("expected a name");
    return std::string(doc_.substr(start, pos_ - start));
  }

  // Decodes character data up to (not including) the first of `stop` characters.
  absl::Status ParseText(std::string_view stop, std::string* out) {
    while (pos_ < doc_.size() && stop.find(doc_[pos_]) == std::string_view::npos) {
      const char c = doc_[pos_];
      if (c != '&') {
        out->push_back(c);
        ++pos_;
        continue;
      }
      const size_t semi = doc_.find(';', pos_);
      if (semi == std::string_view::npos || semi - pos_ > 12) return Error("bad entity");
      const std::string_view ent = doc_.substr(pos_ + 1, semi - pos_ - 1);
      if (ent == "lt") {
        out->push_back('<');
      } else if (ent == "gt") {
        out->push_back('>');
      } else if (ent == "amp") {
        out->push_back('&');
      } else if (ent == "quot") {
        out->push_back('"');
      } else if (ent == "apos") {
        out->push_back('\'');
      } else if (ent.size() > 1 && ent[0] == '#') {
        uint32_t cp = 0;
        const bool hex = ent[1] == 'x' || ent[1] == 'X';
        const std::string digits(ent.substr(hex ? 2 : 1));
        bool ok = !digits.empty() && (hex ? absl::SimpleHexAtoi(digits, &cp)
                                          : absl::SimpleAtoi(digits, &cp));
        if (!ok || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
          return Error("bad character reference");
        }
        AppendUtf8(cp, out);
      } else {
        return Error("unknown entity");
      }
      pos_ = semi + 1;
    }
    return absl::OkStatus();
  }

  absl::Status ParseElement(std::unique_ptr<XmlElement>* out) {
    // Open elements, innermost last. Iterative so deep input cannot overflow the C++ stack.
    std::vector<XmlElement*> open;
    auto root = std::make_unique<XmlElement>();
    XmlElement* pending = root.get();  // the element whose start tag comes next
    for (;;) {
      if (pending != nullptr) {
        // At '<' of a start tag.
        ++pos_;
        ASSIGN_OR_RETURN(pending->name, ParseName());
        for (;;) {
          SkipSpace();
          if (Starts("/>")) {
            pos_ += 2;
            break;
          }
          if (Peek('>')) {
            ++pos_;
            if (open.size() >= kMaxDepth) return Error("elements nested too deeply");
            open.push_back(pending);
            break;
          }
          ASSIGN_OR_RETURN(std::string attr, ParseName());
          SkipSpace();
          if (!Peek('=')) return Error("expected '=' after an attribute name");
          ++pos_;
          SkipSpace();
          if (!Peek('"') && !Peek('\'')) return Error("expected a quoted attribute value");
          const char quote = doc_[pos_++];
          std::string value;
          RETURN_IF_ERROR(ParseText(quote == '"' ? "\"<" : "'<", &value));
          if (!Peek(quote)) return Error("unterminated attribute value");
          ++pos_;
          pending->attributes[std::move(attr)] = std::move(value);
        }
        pending = nullptr;
      }
      if (open.empty()) break;  // the root was self-closing or has just been closed
      XmlElement* cur = open.back();
      // Content of `cur`: text, children, comments, CDATA, then its end tag.
      RETURN_IF_ERROR(ParseText("<", &cur->text));
      if (pos_ >= doc_.size()) return Error(absl::StrCat("unclosed element <", cur->name, ">"));
      if (Starts("</")) {
        pos_ += 2;
        ASSIGN_OR_RETURN(std::string name, ParseName());
        SkipSpace();
        if (name != cur->name || !Peek('>')) {
          return Error(absl::StrCat("mismatched end tag </", name, "> for <", cur->name, ">"));
        }
        ++pos_;
        open.pop_back();
        if (open.empty()) break;
      } else if (Starts("<![CDATA[")) {
        pos_ += 9;
        const size_t end = doc_.find("]]>", pos_);
        if (end == std::string_view::npos) return Error("unterminated CDATA");
        cur->text.append(doc_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (Starts("<!--")) {
        if (!SkipPast("-->")) return Error("unterminated comment");
      } else if (Starts("<?")) {
        if (!SkipPast("?>")) return Error("unterminated processing instruction");
      } else if (Starts("<!")) {
        return Error("unexpected markup declaration");
      } else {
        cur->children.push_back(std::make_unique<XmlElement>());
        pending = cur->children.back().get();
      }
    }
    *out = std::move(root);
    return absl::OkStatus();
  }

  std::string_view doc_;
  size_t pos_ = 0;
};

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

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const auto& c : children) {
    if (c->name == child_name) return c.get();
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* c = Child(child_name);
  return c == nullptr ? "" : c->text;
}

absl::StatusOr<std::unique_ptr<XmlElement>> ParseXml(std::string_view document) {
  return Parser(document).Parse();
}

absl::StatusOr<BlobListing> ParseListBlobs(std::string_view document) {
  ASSIGN_OR_RETURN(std::unique_ptr<XmlElement> root, ParseXml(document));
  if (root->name != "EnumerationResults") {
    return absl::InvalidArgumentError(
        absl::StrCat("List Blobs returned <", root->name, "> instead of <EnumerationResults>"));
  }
  BlobListing listing;
  listing.next_marker = std::string(absl::StripAsciiWhitespace(root->ChildText("NextMarker")));
  const XmlElement* blobs = root->Child("Blobs");
  if (blobs == nullptr) return listing;  // an empty page may omit <Blobs>
  for (const auto& blob : blobs->children) {
    if (blob->name != "Blob") continue;  // <BlobPrefix> only appears with a delimiter
    const XmlElement* name = blob->Child("Name");
    const XmlElement* props = blob->Child("Properties");
    if (name == nullptr || props == nullptr || props->Child("Content-Length") == nullptr) {
      return absl::InvalidArgumentError("List Blobs entry without Name or Content-Length");
    }
    BlobEntry entry;
    auto enc = name->attributes.find("Encoded");
    if (enc != name->attributes.end() && enc->second == "true") {
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
  auto root = ParseXml(body);
  if (!root.ok() || (*root)->name != "Error") return err;
  err.code = std::string(absl::StripAsciiWhitespace((*root)->ChildText("Code")));
  const std::string full = (*root)->ChildText("Message");
  absl::string_view msg = absl::StripAsciiWhitespace(full);
  // The service appends "\nRequestId:...\nTime:..."; the request id is reported separately.
  const size_t nl = msg.find('\n');
  if (nl != absl::string_view::npos) msg = absl::StripAsciiWhitespace(msg.substr(0, nl));
  err.message = std::string(msg);
  return err;
}

}  // namespace nighfs::blockstore::azure
