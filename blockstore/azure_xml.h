// A small XML reader for the few Blob service responses nighfs reads (List Blobs, errors).
// It builds a tree of elements with attributes and decoded text; it does not validate against
// a schema, resolve external entities or support DTDs (a DOCTYPE is rejected), which is all
// these responses need and keeps untrusted input from doing anything clever.
#ifndef NIGHFS_BLOCKSTORE_AZURE_XML_H_
#define NIGHFS_BLOCKSTORE_AZURE_XML_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace nighfs::blockstore::azure {

struct XmlElement {
  std::string name;  // as written, including any namespace prefix
  std::map<std::string, std::string> attributes;
  std::string text;  // concatenated character data directly inside this element, decoded
  std::vector<std::unique_ptr<XmlElement>> children;

  // The first child named `name`, or nullptr.
  const XmlElement* Child(std::string_view name) const;
  // The text of the first child named `name`, or "" if there is none.
  std::string ChildText(std::string_view name) const;
};

// Parses a document with one root element. InvalidArgument (with a byte offset) if it is not
// well-formed.
absl::StatusOr<std::unique_ptr<XmlElement>> ParseXml(std::string_view document);

struct BlobEntry {
  std::string name;
  uint64_t size = 0;
};
struct BlobListing {
  std::vector<BlobEntry> blobs;
  std::string next_marker;  // "" on the last page
};
// Reads a List Blobs response (EnumerationResults/Blobs/Blob{Name,Properties/Content-Length},
// NextMarker). Names the service percent-encoded (Encoded="true") are decoded.
absl::StatusOr<BlobListing> ParseListBlobs(std::string_view document);

struct AzureError {
  std::string code;     // "AuthenticationFailed"; "" when the body is not an Azure error
  std::string message;  // first line of <Message> (the RequestId/Time lines are dropped)
};
// Reads an <Error><Code/><Message/></Error> body; anything else gives empty fields.
AzureError ParseAzureError(std::string_view body);

}  // namespace nighfs::blockstore::azure

#endif  // NIGHFS_BLOCKSTORE_AZURE_XML_H_
