#include "blockstore/s3_xml.h"

#include <cstdint>

#include "absl/strings/str_cat.h"

namespace nighfs::blockstore {
namespace {

constexpr int kMaxDepth = 64;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsNameChar(char c) {
  return !IsSpace(c) && c != '>' && c != '/' && c != '=' && c != '<' && c != '"' && c != '\'';
}

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

class Parser {
 public:
  explicit Parser(std::string_view doc) : doc_(doc) {}

  absl::StatusOr<XmlElement> ParseDocument() {
    if (!SkipMisc()) return error_;
    if (AtEnd() || doc_[pos_] != '<') return Error("no root element");
    XmlElement root;
    if (!ParseElement(&root, 1)) return error_;
    if (!SkipMisc()) return error_;
    if (!AtEnd()) return Error("content after the root element");
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= doc_.size(); }
  bool LookingAt(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  absl::Status Error(std::string_view what) {
    error_ = absl::InvalidArgumentError(
        absl::StrCat("malformed XML at byte ", pos_, ": ", absl::string_view(what.data(), what.size())));
    return error_;
  }
  bool Fail(std::string_view what) {
    (void)Error(what);
    return false;
  }

  // Skips everything up to and including `terminator`.
  bool SkipPast(std::string_view terminator) {
    size_t end = doc_.find(terminator, pos_);
    if (end == std::string_view::npos) return Fail("unterminated construct");
    pos_ = end + terminator.size();
    return true;
  }

  // Whitespace, comments, processing instructions (<?xml ...?>) and a DOCTYPE between
  // top-level constructs.
  bool SkipMisc() {
    while (!AtEnd()) {
      if (IsSpace(doc_[pos_])) {
        ++pos_;
      } else if (LookingAt("<?")) {
        if (!SkipPast("?>")) return false;
      } else if (LookingAt("<!--")) {
        if (!SkipPast("-->")) return false;
      } else if (LookingAt("<!DOCTYPE")) {
        if (!SkipPast(">")) return false;
      } else {
        break;
      }
    }
    return true;
  }

  std::string_view ParseName() {
    size_t start = pos_;
    while (!AtEnd() && IsNameChar(doc_[pos_])) ++pos_;
    return doc_.substr(start, pos_ - start);
  }

  static std::string LocalName(std::string_view qname) {
    size_t colon = qname.rfind(':');
    return std::string(colon == std::string_view::npos ? qname : qname.substr(colon + 1));
  }

  // Decodes one reference starting at '&' and appends it to `out`.
  bool ParseReference(std::string* out) {
    size_t semi = doc_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 12) return Fail("bad entity reference");
    std::string_view ref = doc_.substr(pos_ + 1, semi - pos_ - 1);
    pos_ = semi + 1;
    if (ref == "lt") {
      out->push_back('<');
    } else if (ref == "gt") {
      out->push_back('>');
    } else if (ref == "amp") {
      out->push_back('&');
    } else if (ref == "quot") {
      out->push_back('"');
    } else if (ref == "apos") {
      out->push_back('\'');
    } else if (ref.size() >= 2 && ref[0] == '#') {
      const bool hex = ref[1] == 'x' || ref[1] == 'X';
      std::string_view digits = ref.substr(hex ? 2 : 1);
      if (digits.empty()) return Fail("bad character reference");
      uint32_t cp = 0;
      for (char c : digits) {
        uint32_t d;
        if (c >= '0' && c <= '9') {
          d = c - '0';
        } else if (hex && c >= 'a' && c <= 'f') {
          d = c - 'a' + 10;
        } else if (hex && c >= 'A' && c <= 'F') {
          d = c - 'A' + 10;
        } else {
          return Fail("bad character reference");
        }
        cp = cp * (hex ? 16 : 10) + d;
        if (cp > 0x10FFFF) return Fail("character reference out of range");
      }
      AppendUtf8(cp, out);
    } else {
      return Fail("unknown entity");
    }
    return true;
  }

  // Attributes are skipped, but parsed properly so a '>' inside a quoted value does not end
  // the tag. Returns with pos_ at '>' or "/>".
  bool SkipAttributes() {
    while (true) {
      while (!AtEnd() && IsSpace(doc_[pos_])) ++pos_;
      if (AtEnd()) return Fail("unterminated tag");
      if (doc_[pos_] == '>' || LookingAt("/>")) return true;
      if (ParseName().empty()) return Fail("bad attribute");
      while (!AtEnd() && IsSpace(doc_[pos_])) ++pos_;
      if (AtEnd() || doc_[pos_] != '=') return Fail("attribute without value");
      ++pos_;
      while (!AtEnd() && IsSpace(doc_[pos_])) ++pos_;
      if (AtEnd() || (doc_[pos_] != '"' && doc_[pos_] != '\'')) return Fail("unquoted attribute");
      const char quote = doc_[pos_++];
      size_t end = doc_.find(quote, pos_);
      if (end == std::string_view::npos) return Fail("unterminated attribute");
      pos_ = end + 1;
    }
  }

  // pos_ is at '<' of a start tag.
  bool ParseElement(XmlElement* element, int depth) {
    if (depth > kMaxDepth) return Fail("nesting too deep");
    ++pos_;
    std::string_view qname = ParseName();
    if (qname.empty()) return Fail("bad element name");
    element->name = LocalName(qname);
    if (!SkipAttributes()) return false;
    if (LookingAt("/>")) {
      pos_ += 2;
      return true;
    }
    ++pos_;  // '>'
    while (true) {
      if (AtEnd()) return Fail("unterminated element");
      const char c = doc_[pos_];
      if (c == '&') {
        if (!ParseReference(&element->text)) return false;
      } else if (c != '<') {
        element->text.push_back(c);
        ++pos_;
      } else if (LookingAt("</")) {
        pos_ += 2;
        if (ParseName() != qname) return Fail("mismatched end tag");
        while (!AtEnd() && IsSpace(doc_[pos_])) ++pos_;
        if (AtEnd() || doc_[pos_] != '>') return Fail("bad end tag");
        ++pos_;
        return true;
      } else if (LookingAt("<![CDATA[")) {
        size_t start = pos_ + 9;
        size_t end = doc_.find("]]>", start);
        if (end == std::string_view::npos) return Fail("unterminated CDATA");
        element->text.append(doc_.substr(start, end - start));
        pos_ = end + 3;
      } else if (LookingAt("<!--")) {
        if (!SkipPast("-->")) return false;
      } else if (LookingAt("<?")) {
        if (!SkipPast("?>")) return false;
      } else {
        element->children.emplace_back();
        if (!ParseElement(&element->children.back(), depth + 1)) return false;
      }
    }
  }

  std::string_view doc_;
  size_t pos_ = 0;
  absl::Status error_;
};

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& c : children) {
    if (c.name == child_name) return &c;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* c = Child(child_name);
  return c == nullptr ? std::string() : c->text;
}

std::vector<const XmlElement*> XmlElement::Children(std::string_view child_name) const {
  std::vector<const XmlElement*> out;
  for (const XmlElement& c : children) {
    if (c.name == child_name) out.push_back(&c);
  }
  return out;
}

absl::StatusOr<XmlElement> ParseXml(std::string_view doc) { return Parser(doc).ParseDocument(); }

}  // namespace nighfs::blockstore
