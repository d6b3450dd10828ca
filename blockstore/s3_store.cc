// PLACEHOLDER: being written by its owner (S3, GCS, OCI).
#include "blockstore/block_store.h"
namespace nighfs::blockstore {
absl::StatusOr<std::unique_ptr<BlockStore>> NewS3Store(const StoreUrl&, const StoreCredentials&) {
  return absl::UnimplementedError("S3 store not built yet");
}
}  // namespace nighfs::blockstore
