// MetaServiceImpl's calls for proxy servers (AuthorizeBlockAccess, DeadBlocks); see
// proto/meta.proto, "proxies", and docs/ARCHITECTURE.md for how a proxy's writeback and the
// garbage collector agree.
#include "meta/meta_service_impl.h"

namespace nighfs::meta::internal {

absl::StatusOr<pb::AuthorizeBlockAccessResponse> MetaServiceImpl::AuthorizeBlockAccess(
    const pb::AuthorizeBlockAccessRequest& req) {
  return absl::UnimplementedError("AuthorizeBlockAccess is not implemented yet");
}

absl::StatusOr<pb::DeadBlocksResponse> MetaServiceImpl::DeadBlocks(
    const pb::DeadBlocksRequest& req) {
  return absl::UnimplementedError("DeadBlocks is not implemented yet");
}

}  // namespace nighfs::meta::internal
