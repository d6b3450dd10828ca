// Fuzz target: what the S3 store (also GCS, OCI) reads from a server's reply bodies: the XML
// reader (blockstore/xml.h), S3 <Error> bodies and ListObjectsV2 pages
// (blockstore/s3_responses.h). The input is a response body; the first byte picks the headers
// that come with it, since ParseS3Error falls back on them.
// Checks beyond the sanitizers: those of xml_check.h, and every key of an accepted listing page
// is what follows the prefix in some <Key> (of the document, or of the document with its
// comments and processing instructions taken out: XML text may be split by them).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "blockstore/s3_responses.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/xml_check.h"

namespace {

// The body without "<?...?>" and "<!--...-->": a key split by one of them is read joined.
std::string WithoutCommentsAndPis(std::string_view body) {
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t pi = body.find("<?", pos);
    const size_t comment = body.find("<!--", pos);
    const size_t start = std::min(pi, comment);
    if (start == std::string_view::npos) break;
    out.append(body.substr(pos, start - pos));
    const std::string_view close = start == pi ? "?>" : "-->";
    const size_t end = body.find(close, start + 2);
    if (end == std::string_view::npos) return out;
    pos = end + close.size();
  }
  if (pos < body.size()) out.append(body.substr(pos));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nighfs::fuzz::InputReader in(data, size);
  const uint8_t flags = in.Byte();
  const std::string_view body = in.Rest();
  nighfs::fuzz::CheckXmlDocument(body);

  nighfs::HttpResponse response;
  response.status = 400 + flags % 200;
  response.body = std::string(body);
  if (flags & 1) response.headers.push_back({"x-amz-request-id", "REQ"});
  if (flags & 2) response.headers.push_back({"opc-request-id", "OCI"});
  if (flags & 4) response.headers.push_back({"x-amz-bucket-region", "eu-west-1"});
  const nighfs::blockstore::S3Error e = nighfs::blockstore::ParseS3Error(response);
  if ((flags & 1) && e.request_id.empty()) {
    std::fprintf(stderr, "s3_xml: the x-amz-request-id header was lost\n");
    std::abort();
  }

  const std::string joined = WithoutCommentsAndPis(body);
  for (std::string_view strip : {std::string_view(), std::string_view("p/")}) {
    absl::StatusOr<nighfs::blockstore::ListPage> page =
        nighfs::blockstore::ParseListBucketResult(body, strip);
    if (!page.ok()) continue;
    for (const auto& object : page->objects) {
      if (body.find(object.key) == std::string_view::npos &&
          joined.find(object.key) == std::string::npos &&
          body.find("&") == std::string_view::npos && body.find("CDATA") == std::string_view::npos) {
        std::fprintf(stderr, "s3_xml: listed key '%s' is not in the document\n",
                     object.key.c_str());
        std::abort();
      }
    }
  }
  return 0;
}
