// Fuzz target: what the Azure Blob store reads from the service's reply bodies: the XML reader
// (blockstore/xml.h), List Blobs pages and <Error> bodies (blockstore/azure_auth.h). The input
// is a response body.
// Checks beyond the sanitizers: those of xml_check.h, and an error's message is one line.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "blockstore/azure_auth.h"
#include "fuzz/xml_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  nighfs::fuzz::CheckXmlDocument(body);
  (void)nighfs::blockstore::azure::ParseListBlobs(body);
  const nighfs::blockstore::azure::AzureError e = nighfs::blockstore::azure::ParseAzureError(body);
  if (e.message.find('\n') != std::string::npos) {
    std::fprintf(stderr, "azure_xml: multi-line error message '%s'\n", e.message.c_str());
    std::abort();
  }
  return 0;
}
