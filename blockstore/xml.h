// The one XML reader of the HTTP object stores, for the few response bodies they read: S3's
// ListBucketResult and Error, Azure's EnumerationResults (List Blobs) and Error. It builds a
// tree of elements with their attributes and decoded text, and is deliberately small, since
// every byte it sees comes from the network:
//   - no DTDs: any <!DOCTYPE ...> or other markup declaration is rejected, so there are no
//     user-defined or external entities to expand;
//   - only the five predefined entities and numeric character references (in range, not 0,
//     not a UTF-16 surrogate), written out as UTF-8;
//   - at most 64 nested elements, and no recursion, so hostile nesting cannot exhaust the stack;
//   - one root element; anything but whitespace, comments and processing instructions before
//     or after it is an error. A leading UTF-8 byte order mark (Azure sends one) is skipped.
// No validation and no namespace processing: element names lose their prefix ("s3:Key" is read
// as "Key"), since no response we read gives a prefix meaning.
#ifndef NIGHFS_BLOCKSTORE_XML_H_
#define NIGHFS_BLOCKSTORE_XML_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nighfs::blockstore {

struct XmlElement {
  std::string name;  // local name: "Key" for both <Key> and <s3:Key>
  // Names as written (a prefix included, e.g. "xmlns:s3"); values with references decoded.
  std::map<std::string, std::string> attributes;
  // The character data directly inside this element (text between its children included),
  // references and CDATA decoded, whitespace kept as sent.
  std::string text;
  std::vector<XmlElement> children;  // in document order

  // The first child named `name`, or null.
  const XmlElement* Child(std::string_view name) const;
  // The text of the first child named `name`; "" if there is none.
  std::string ChildText(std::string_view name) const;
  // Every child named `name`, in document order.
  std::vector<const XmlElement*> Children(std::string_view name) const;
  // The value of attribute `name` (as written); "" if there is none.
  std::string Attribute(std::string_view name) const;
};

// Parses `document` and returns its root element. InvalidArgument, naming the byte offset, if
// the document is not well-formed or breaks one of the limits above. Never reads outside
// `document`; safe to call from many threads.
absl::StatusOr<XmlElement> ParseXml(std::string_view document);

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_XML_H_
