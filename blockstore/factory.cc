#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

// A handle on a store shared by name: every OpenBlockStore("mem://x") in the process sees the
// same objects, as two mounts of one bucket would. The shared store lives until exit.
class SharedStoreHandle : public BlockStore {
 public:
  explicit SharedStoreHandle(std::shared_ptr<BlockStore> store) : store_(std::move(store)) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    return store_->Get(key, offset, length);
  }
  absl::Status Put(std::string_view key, std::string_view data) override {
    return store_->Put(key, data);
  }
  absl::Status Delete(std::string_view key) override { return store_->Delete(key); }
  absl::StatusOr<ObjectInfo> Head(std::string_view key) override { return store_->Head(key); }
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys) override {
    return store_->List(prefix, page_token, max_keys);
  }
  absl::Status Check() override { return store_->Check(); }
  std::string Describe() const override { return store_->Describe(); }

 private:
  const std::shared_ptr<BlockStore> store_;
};

struct MemoryRegistry {
  absl::Mutex mu;
  std::map<std::string, std::shared_ptr<BlockStore>> stores ABSL_GUARDED_BY(mu);
};

std::unique_ptr<BlockStore> OpenNamedMemoryStore(const std::string& name) {
  // Leaked on purpose: a handle held by another static must not outlive its store.
  static MemoryRegistry* const registry = new MemoryRegistry;
  absl::MutexLock lock(&registry->mu);
  std::shared_ptr<BlockStore>& store = registry->stores[name];
  if (store == nullptr) store = NewMemoryStore(name);
  return std::make_unique<SharedStoreHandle>(store);
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
