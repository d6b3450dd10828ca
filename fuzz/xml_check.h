// The checks both XML fuzz targets apply to every document blockstore/xml.h accepts.
#ifndef NIGHFS_FUZZ_XML_CHECK_H_
#define NIGHFS_FUZZ_XML_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "blockstore/xml.h"

namespace nighfs::fuzz {

inline void AppendEscaped(std::string_view s, std::string* out) {
  for (char c : s) {
    switch (c) {
      case '&': *out += "&amp;"; break;
      case '<': *out += "&lt;"; break;
      case '>': *out += "&gt;"; break;
      case '"': *out += "&quot;"; break;
      case '\'': *out += "&apos;"; break;
      default: *out += c;
    }
  }
}

// `e` written back as XML: its text before its children (xml.h keeps text and children apart,
// so this reads back as the same tree). Names get the prefix "p:" back: the reader keeps what
// follows the last ':' of a name, which need not be a name on its own ("<a:0b>" is well-formed
// XML 1.0 and reads as "0b").
inline void WriteXml(const blockstore::XmlElement& e, std::string* out) {
  *out += "<p:" + e.name;
  for (const auto& [name, value] : e.attributes) {
    *out += " " + name + "=\"";
    AppendEscaped(value, out);
    *out += "\"";
  }
  *out += ">";
  AppendEscaped(e.text, out);
  for (const auto& child : e.children) WriteXml(child, out);
  *out += "</p:" + e.name + ">";
}

inline bool SameTree(const blockstore::XmlElement& a, const blockstore::XmlElement& b) {
  if (a.name != b.name || a.attributes != b.attributes || a.text != b.text ||
      a.children.size() != b.children.size()) {
    return false;
  }
  for (size_t i = 0; i < a.children.size(); ++i) {
    if (!SameTree(a.children[i], b.children[i])) return false;
  }
  return true;
}

inline int Depth(const blockstore::XmlElement& e) {
  int deepest = 0;
  for (const auto& child : e.children) deepest = std::max(deepest, Depth(child));
  return deepest + 1;
}

// Parses `doc`; if it is accepted, checks the nesting limit and that the tree written back as
// XML parses to the same tree (what was decoded is what the document said).
inline void CheckXmlDocument(std::string_view doc) {
  absl::StatusOr<blockstore::XmlElement> root = blockstore::ParseXml(doc);
  if (!root.ok()) return;
  auto fail = [&](const char* what, const std::string& detail) {
    std::fprintf(stderr, "xml: %s: %s\n", what, detail.c_str());
    std::abort();
  };
  if (root->name.empty()) fail("accepted a root element without a name", std::string(doc));
  if (Depth(*root) > 64) fail("accepted more than 64 nested elements", std::string(doc));
  std::string again;
  WriteXml(*root, &again);
  absl::StatusOr<blockstore::XmlElement> reparsed = blockstore::ParseXml(again);
  if (!reparsed.ok()) fail("its own tree, written back, does not parse", again);
  if (!SameTree(*root, *reparsed)) fail("its own tree, written back, parses differently", again);
}

}  // namespace nighfs::fuzz

#endif  // NIGHFS_FUZZ_XML_CHECK_H_
