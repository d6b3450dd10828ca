// A BlockStore that forwards every call to another one (LevelDB's EnvWrapper): a decorator
// (fault injection, counting, ...) derives from it and overrides only what it changes, and a
// method added to BlockStore needs forwarding in one place only.
#ifndef NIGHFS_BLOCKSTORE_STORE_WRAPPER_H_
#define NIGHFS_BLOCKSTORE_STORE_WRAPPER_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "blockstore/block_store.h"

namespace nighfs::blockstore {

// Thread-safe as the wrapped store is. Owns it, or shares it (a store several handles use,
// like the process-wide mem:// stores).
class BlockStoreWrapper : public BlockStore {
 public:
  explicit BlockStoreWrapper(std::unique_ptr<BlockStore> base) : base_(std::move(base)) {}
  explicit BlockStoreWrapper(std::shared_ptr<BlockStore> base) : base_(std::move(base)) {}
  BlockStoreWrapper(const BlockStoreWrapper&) = delete;
  BlockStoreWrapper& operator=(const BlockStoreWrapper&) = delete;

  // The wrapped store, to inspect or seed without going through the wrapper.
  BlockStore& base() const { return *base_; }

  // Defaults repeated from BlockStore so calls through a wrapper reference read the same.
  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset = 0,
                                  uint64_t length = kToEnd) override {
    return base_->Get(key, offset, length);
  }
  absl::Status Put(std::string_view key, std::string_view data) override {
    return base_->Put(key, data);
  }
  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override {
    return base_->PutAndLocate(key, data);
  }
  absl::Status Delete(std::string_view key) override { return base_->Delete(key); }
  absl::StatusOr<ObjectInfo> Head(std::string_view key) override { return base_->Head(key); }
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys = 1000) override {
    return base_->List(prefix, page_token, max_keys);
  }
  absl::Status Check() override { return base_->Check(); }
  // A wrapper is invisible to what callers log.
  std::string Describe() const override { return base_->Describe(); }

 private:
  const std::shared_ptr<BlockStore> base_;
};

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_STORE_WRAPPER_H_
