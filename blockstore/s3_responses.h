// The two S3 response bodies the S3 store (s3_store.cc; also GCS and OCI) reads: an <Error>
// and a ListObjectsV2 <ListBucketResult>. Exposed on their own so the fuzz targets (fuzz/)
// and tests can feed them bytes without a server. Both are pure functions, thread-safe.
#ifndef NIGHFS_BLOCKSTORE_S3_RESPONSES_H_
#define NIGHFS_BLOCKSTORE_S3_RESPONSES_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "blockstore/block_store.h"
#include "blockstore/http_store_util.h"
#include "common/http_client.h"

namespace nighfs::blockstore {

// The fields of an S3 <Error> body that matter to a human.
struct S3Error : ServiceError {
  std::string region;  // AuthorizationHeaderMalformed / PermanentRedirect name the right one
};

// What an error response says: the <Error> body's Code, Message, RequestId and Region when the
// body is one, else empty; a missing request id or region is taken from the x-amz-request-id,
// opc-request-id (OCI) and x-amz-bucket-region headers. Only for error responses: a 200 body
// is object data, not XML.
S3Error ParseS3Error(const HttpResponse& response);

// One page of a ListObjectsV2 reply. Every key must start with `strip` (the store's prefix and
// its '/', or ""), which is removed. Internal, with a message the caller prefixes with the
// request, if the body is not a ListBucketResult, an entry has no such key or no decimal
// Size, or the page is truncated without a continuation token.
absl::StatusOr<ListPage> ParseListBucketResult(std::string_view body, std::string_view strip);

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_S3_RESPONSES_H_
