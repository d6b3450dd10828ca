// A small XML reader for S3 responses (ListBucketResult, Error): enough XML 1.0 to walk an
// element tree and read text. No DTDs, no validation; namespace prefixes are dropped from names
// and attributes are skipped, since no S3 response we read carries meaning in either.
#ifndef NIGHFS_BLOCKSTORE_S3_XML_H_
#define NIGHFS_BLOCKSTORE_S3_XML_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nighfs::blockstore {

struct XmlElement {
  std::string name;  // local name: "Key" for both <Key> and <s3:Key>
  std::string text;  // the character data directly inside, entities and CDATA decoded
  std::vector<XmlElement> children;

  // The first child named `name`, or null.
  const XmlElement* Child(std::string_view name) const;
  // The text of the first child named `name`; "" if there is none.
  std::string ChildText(std::string_view name) const;
  // Every child named `name`, in document order.
  std::vector<const XmlElement*> Children(std::string_view name) const;
};

// Parses `doc` and returns its root element. InvalidArgument on malformed input (unbalanced or
// mismatched tags, bad entities, nesting deeper than 64, text after the root).
absl::StatusOr<XmlElement> ParseXml(std::string_view doc);

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_S3_XML_H_
