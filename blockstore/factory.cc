#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "blockstore/store_wrapper.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

struct MemoryRegistry {
  absl::Mutex mu;
  std::map<std::string, std::shared_ptr<BlockStore>> stores ABSL_GUARDED_BY(mu);
};

// A handle on a store shared by name: every OpenBlockStore("mem://x") in the process sees the
// same objects, as two mounts of one bucket would. The shared store lives until exit.
std::unique_ptr<BlockStore> OpenNamedMemoryStore(const std::string& name) {
  // Leaked on purpose: a handle held by another static must not outlive its store.
  static MemoryRegistry* const registry = new MemoryRegistry;
  absl::MutexLock lock(&registry->mu);
  std::shared_ptr<BlockStore>& store = registry->stores[name];
  if (store == nullptr) store = NewMemoryStore(name);
  return std::make_unique<BlockStoreWrapper>(store);
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlockStore>> OpenBlockStore(std::string_view url,
                                                           const StoreCredentials& credentials) {
  ASSIGN_OR_RETURN(StoreUrl parsed, ParseStoreUrl(url));
  if (parsed.scheme == "file") return NewLocalStore(parsed);
  if (parsed.scheme == "s3" || parsed.scheme == "gs" || parsed.scheme == "oci") {
    return NewS3Store(parsed, credentials);
  }
  if (parsed.scheme == "azure") return NewAzureStore(parsed, credentials);
  if (parsed.scheme == "mem") return OpenNamedMemoryStore(parsed.authority);
  // ParseStoreUrl already rejects other schemes; this guards against the two lists drifting.
  return absl::InvalidArgumentError(absl::StrCat("store URL '", parsed.ToString(),
                                                 "': unsupported scheme '", parsed.scheme,
                                                 "' (supported: file, s3, gs, oci, azure, mem)"));
}

}  // namespace nighfs::blockstore
