// PLACEHOLDER: being written by its owner (Azure Blob).
#include "blockstore/block_store.h"
namespace nighfs::blockstore {
absl::StatusOr<std::unique_ptr<BlockStore>> NewAzureStore(const StoreUrl&, const StoreCredentials&) {
  return absl::UnimplementedError("Azure store not built yet");
}
}  // namespace nighfs::blockstore
