#include "blockstore/xml.h"

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

// Deeper than any response we read (ListBucketResult is 3 levels deep): only hostile input
// gets near it.
constexpr size_t kMaxDepth = 64;
// "&#x10FFFF;" is the longest reference we accept; bounding the search for ';' keeps a stray
// '&' from scanning the rest of the document.
constexpr size_t kMaxReferenceLength = 12;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// XML's S production: not the wider isspace(), which would accept \v and \f.
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsNameStartChar(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_' || u == ':' || u >= 0x80;
}

bool IsNameChar(char c) {
  return IsNameStartChar(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
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

// The code point of a character reference body ("#65", "#x41"); false unless it is digits
// only (no sign, space or "0x") naming a character XML allows to be referenced.
bool ParseCharacterReference(std::string_view ref, uint32_t* cp) {
  if (ref.size() < 2 || ref[0] != '#') return false;
  const bool hex = ref[1] == 'x' || ref[1] == 'X';
  const std::string_view digits = ref.substr(hex ? 2 : 1);
  if (digits.empty()) return false;
  uint32_t v = 0;
  for (char c : digits) {
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (hex && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (hex && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    v = v * (hex ? 16 : 10) + d;
    if (v > 0x10FFFF) return false;  // checked per digit, so v cannot overflow
  }
  if (v == 0 || (v >= 0xD800 && v <= 0xDFFF)) return false;
  *cp = v;
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view doc) : doc_(doc) {}

  absl::StatusOr<XmlElement> Parse() {
    if (LookingAt("\xEF\xBB\xBF")) pos_ = 3;  // a UTF-8 byte order mark
    RETURN_IF_ERROR(SkipMisc());
    if (!Peek('<')) return Error("no root element");
    XmlElement root;
    RETURN_IF_ERROR(ParseTree(&root));
    RETURN_IF_ERROR(SkipMisc());
    if (!AtEnd()) return Error("content after the root element");
    return root;
  }

 private:
  bool AtEnd() const { return pos_ >= doc_.size(); }
  bool Peek(char c) const { return pos_ < doc_.size() && doc_[pos_] == c; }
  bool LookingAt(std::string_view s) const { return doc_.substr(pos_, s.size()) == s; }

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("malformed XML at byte ", pos_, ": ", AV(what)));
  }

  // Skips XML whitespace; whether there was any.
  bool SkipSpace() {
    const size_t start = pos_;
    while (!AtEnd() && IsSpace(doc_[pos_])) ++pos_;
    return pos_ != start;
  }

  // Moves past the next `terminator`; false (pos_ unchanged) if there is none.
  bool SkipPast(std::string_view terminator) {
    const size_t end = doc_.find(terminator, pos_);
    if (end == std::string_view::npos) return false;
    pos_ = end + terminator.size();
    return true;
  }

  // Skips a comment or a processing instruction (the XML declaration included) at pos_;
  // whether there was one. Any other "<!" markup (CDATA aside, which the caller handles
  // first) is a declaration and refused: a DOCTYPE's internal subset could declare entities
  // that the document then expects to be expanded.
  absl::StatusOr<bool> SkipCommentOrPi() {
    if (LookingAt("<?")) {
      if (!SkipPast("?>")) return Error("unterminated processing instruction");
      return true;
    }
    if (LookingAt("<!--")) {
      if (!SkipPast("-->")) return Error("unterminated comment");
      return true;
    }
    if (LookingAt("<!")) return Error("DTDs and markup declarations are not supported");
    return false;
  }

  // Whitespace, comments and processing instructions around the root element.
  absl::Status SkipMisc() {
    for (;;) {
      SkipSpace();
      ASSIGN_OR_RETURN(const bool skipped, SkipCommentOrPi());
      if (!skipped) return absl::OkStatus();
    }
  }

  absl::StatusOr<std::string_view> ParseName() {
    const size_t start = pos_;
    if (AtEnd() || !IsNameStartChar(doc_[pos_])) return Error("expected a name");
    while (!AtEnd() && IsNameChar(doc_[pos_])) ++pos_;
    return doc_.substr(start, pos_ - start);
  }

  // Appends character data up to (not including) the first character in `stop` or the end,
  // decoding references.
  absl::Status ParseText(std::string_view stop, std::string* out) {
    while (!AtEnd() && stop.find(doc_[pos_]) == std::string_view::npos) {
      const char c = doc_[pos_];
      if (c != '&') {
        out->push_back(c);
        ++pos_;
        continue;
      }
      const size_t semi = doc_.find(';', pos_);
      if (semi == std::string_view::npos || semi - pos_ > kMaxReferenceLength) {
        return Error("bad entity reference");
      }
      const std::string_view ref = doc_.substr(pos_ + 1, semi - pos_ - 1);
      uint32_t cp = 0;
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
      } else if (!ref.empty() && ref[0] == '#') {
        if (!ParseCharacterReference(ref, &cp)) return Error("bad character reference");
        AppendUtf8(cp, out);
      } else {
        return Error("unknown entity");
      }
      pos_ = semi + 1;
    }
    return absl::OkStatus();
  }

  // Reads a start tag (pos_ at its '<') into `element`: its name, written with any prefix, to
  // `qname`, and whether it was an empty-element tag ("<a/>") to `self_closing`.
  absl::Status ParseStartTag(XmlElement* element, std::string_view* qname, bool* self_closing) {
    ++pos_;
    ASSIGN_OR_RETURN(*qname, ParseName());
    const size_t colon = qname->rfind(':');
    element->name =
        std::string(colon == std::string_view::npos ? *qname : qname->substr(colon + 1));
    if (element->name.empty()) return Error("element name without a local part");
    for (;;) {
      const bool spaced = SkipSpace();
      if (LookingAt("/>")) {
        pos_ += 2;
        *self_closing = true;
        return absl::OkStatus();
      }
      if (Peek('>')) {
        ++pos_;
        *self_closing = false;
        return absl::OkStatus();
      }
      if (AtEnd()) return Error("unterminated start tag");
      if (!spaced) return Error("expected whitespace before an attribute");
      ASSIGN_OR_RETURN(std::string_view attr, ParseName());
      SkipSpace();
      if (!Peek('=')) return Error("expected '=' after an attribute name");
      ++pos_;
      SkipSpace();
      if (!Peek('"') && !Peek('\'')) return Error("expected a quoted attribute value");
      const char quote = doc_[pos_++];
      std::string value;
      // '<' is not allowed in attribute values; stopping there catches a missing quote.
      RETURN_IF_ERROR(ParseText(quote == '"' ? "\"<" : "'<", &value));
      if (!Peek(quote)) return Error("unterminated attribute value");
      ++pos_;
      if (!element->attributes.emplace(std::string(attr), std::move(value)).second) {
        return Error(absl::StrCat("attribute '", AV(attr), "' repeated"));
      }
    }
  }

  // Reads the element whose start tag is at pos_, with everything inside it, into `root`.
  // Iterative, with an explicit stack of open elements, so the depth limit is the only bound
  // on nesting and the C++ stack never grows with the input.
  absl::Status ParseTree(XmlElement* root) {
    struct Open {
      XmlElement* element;
      std::string_view qname;  // the end tag must repeat it exactly, prefix included
    };
    // Every open element is the last child of the one below it, and children are only added
    // to the innermost, so these pointers stay valid while their element is open.
    std::vector<Open> open;
    XmlElement* next = root;  // the element whose start tag is at pos_, if any
    for (;;) {
      if (next != nullptr) {
        if (open.size() >= kMaxDepth) return Error("elements nested too deeply");
        std::string_view qname;
        bool self_closing = false;
        RETURN_IF_ERROR(ParseStartTag(next, &qname, &self_closing));
        if (!self_closing) open.push_back({next, qname});
        next = nullptr;
        if (open.empty()) return absl::OkStatus();  // a self-closing root
      }
      const Open& cur = open.back();
      RETURN_IF_ERROR(ParseText("<", &cur.element->text));
      if (AtEnd()) return Error(absl::StrCat("unclosed element <", AV(cur.qname), ">"));
      if (LookingAt("</")) {
        const size_t tag_start = pos_;
        pos_ += 2;
        ASSIGN_OR_RETURN(std::string_view name, ParseName());
        SkipSpace();
        if (name != cur.qname || !Peek('>')) {
          pos_ = tag_start;  // point the message at the offending tag
          return Error(absl::StrCat("mismatched end tag </", AV(name), "> for <", AV(cur.qname),
                                    ">"));
        }
        ++pos_;
        open.pop_back();
        if (open.empty()) return absl::OkStatus();
      } else if (LookingAt("<![CDATA[")) {
        pos_ += 9;
        const size_t end = doc_.find("]]>", pos_);
        if (end == std::string_view::npos) return Error("unterminated CDATA section");
        cur.element->text.append(doc_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else {
        ASSIGN_OR_RETURN(const bool skipped, SkipCommentOrPi());
        if (!skipped) {  // a child's start tag
          cur.element->children.emplace_back();
          next = &cur.element->children.back();
        }
      }
    }
  }

  const std::string_view doc_;
  size_t pos_ = 0;
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

std::string XmlElement::Attribute(std::string_view attribute_name) const {
  const auto it = attributes.find(std::string(attribute_name));
  return it == attributes.end() ? std::string() : it->second;
}

absl::StatusOr<XmlElement> ParseXml(std::string_view document) {
  return Parser(document).Parse();
}

}  // namespace nighfs::blockstore
