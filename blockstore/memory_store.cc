// An in-process block store: the reference implementation of the BlockStore contract and the
// fake that tests of callers use instead of a server.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "common/status_macros.h"

namespace nighfs::blockstore {
namespace {

class MemoryStore : public BlockStore {
 public:
  explicit MemoryStore(std::string name) : url_(absl::StrCat("mem://", name)) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::shared_ptr<const std::string> data;
    {
      absl::MutexLock lock(&mu_);
      auto it = objects_.find(key);
      if (it == objects_.end()) return NotFound(key);
      data = it->second;
    }
    // Objects are immutable once stored, so the copy happens outside the lock: a 64 MiB read
    // does not stall every other caller.
    if (offset >= data->size()) return std::string();
    return data->substr(offset, length);
  }

  absl::Status Put(std::string_view key, std::string_view data) override {
    RETURN_IF_ERROR(ValidateKey(key));
    auto copy = std::make_shared<const std::string>(data);
    absl::MutexLock lock(&mu_);
    objects_.insert_or_assign(std::string(key), std::move(copy));
    return absl::OkStatus();
  }

  absl::Status Delete(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    std::shared_ptr<const std::string> doomed;  // freed after the lock is released
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it != objects_.end()) {
      doomed = std::move(it->second);
      objects_.erase(it);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<ObjectInfo> Head(std::string_view key) override {
    RETURN_IF_ERROR(ValidateKey(key));
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NotFound(key);
    return ObjectInfo{it->first, it->second->size()};
  }

  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys) override {
    if (max_keys < 1) return absl::InvalidArgumentError("List: max_keys must be at least 1");
    const absl::string_view want(prefix.data(), prefix.size());
    ListPage page;
    absl::MutexLock lock(&mu_);
    // Start after the token or at the prefix, whichever comes later.
    auto it = page_token.empty() || page_token < prefix ? objects_.lower_bound(prefix)
                                                          : objects_.upper_bound(page_token);
    for (; it != objects_.end() && absl::StartsWith(it->first, want); ++it) {
      if (static_cast<int>(page.objects.size()) == max_keys) {
        page.next_token = page.objects.back().key;
        break;
      }
      page.objects.push_back(ObjectInfo{it->first, it->second->size()});
    }
    return page;
  }

  absl::Status Check() override { return absl::OkStatus(); }

  std::string Describe() const override { return url_; }

 private:
  absl::Status NotFound(std::string_view key) const {
    return absl::NotFoundError(absl::StrCat("no object '", std::string(key), "' in ", url_));
  }

  const std::string url_;
  absl::Mutex mu_;
  // std::less<> so lookups by string_view do not allocate.
  std::map<std::string, std::shared_ptr<const std::string>, std::less<>> objects_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<BlockStore> NewMemoryStore() {
  static std::atomic<uint64_t> next_id{1};
  return NewMemoryStore(absl::StrCat("anonymous-", next_id.fetch_add(1)));
}

std::unique_ptr<BlockStore> NewMemoryStore(std::string_view name) {
  return std::make_unique<MemoryStore>(std::string(name));
}

}  // namespace nighfs::blockstore
