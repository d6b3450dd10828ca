// An in-memory block store for the metadata server's tests, with switches to make Check() and
// Delete() fail, and counters. Every store opened for one URL shares one FakeStoreState.
#ifndef NIGHFS_TESTS_META_FAKE_STORE_H_
#define NIGHFS_TESTS_META_FAKE_STORE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"

namespace nighfs::meta::fake {

struct FakeStoreState {
  absl::Mutex mu;
  std::map<std::string, std::string> objects ABSL_GUARDED_BY(mu);
  bool fail_check ABSL_GUARDED_BY(mu) = false;
  bool fail_delete ABSL_GUARDED_BY(mu) = false;
  int deletes ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> deleted_keys ABSL_GUARDED_BY(mu);  // every Delete, in order

  bool Has(const std::string& key) {
    absl::MutexLock l(&mu);
    return objects.contains(key);
  }
  size_t Count() {
    absl::MutexLock l(&mu);
    return objects.size();
  }
  void Put(const std::string& key, const std::string& data) {
    absl::MutexLock l(&mu);
    objects[key] = data;
  }
  void SetFailDelete(bool v) {
    absl::MutexLock l(&mu);
    fail_delete = v;
  }
  void SetFailCheck(bool v) {
    absl::MutexLock l(&mu);
    fail_check = v;
  }
};

class FakeStore : public blockstore::BlockStore {
 public:
  FakeStore(std::shared_ptr<FakeStoreState> state, std::string url)
      : state_(std::move(state)), url_(std::move(url)) {}

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset,
                                  uint64_t length) override {
    absl::MutexLock l(&state_->mu);
    auto it = state_->objects.find(std::string(key));
    if (it == state_->objects.end()) return absl::NotFoundError("no object");
    if (offset >= it->second.size()) return std::string();
    return it->second.substr(offset, length);
  }
  absl::Status Put(std::string_view key, std::string_view data) override {
    absl::MutexLock l(&state_->mu);
    state_->objects[std::string(key)] = std::string(data);
    return absl::OkStatus();
  }
  absl::Status Delete(std::string_view key) override {
    absl::MutexLock l(&state_->mu);
    if (state_->fail_delete) return absl::UnavailableError("injected delete failure");
    state_->deletes++;
    state_->deleted_keys.emplace_back(key);
    state_->objects.erase(std::string(key));
    return absl::OkStatus();
  }
  absl::StatusOr<blockstore::ObjectInfo> Head(std::string_view key) override {
    absl::MutexLock l(&state_->mu);
    auto it = state_->objects.find(std::string(key));
    if (it == state_->objects.end()) return absl::NotFoundError("no object");
    return blockstore::ObjectInfo{it->first, it->second.size()};
  }
  absl::StatusOr<blockstore::ListPage> List(std::string_view prefix, std::string_view,
                                            int) override {
    absl::MutexLock l(&state_->mu);
    blockstore::ListPage page;
    for (const auto& [k, v] : state_->objects) {
      if (k.starts_with(prefix)) page.objects.push_back({k, v.size()});
    }
    return page;
  }
  absl::Status Check() override {
    absl::MutexLock l(&state_->mu);
    if (state_->fail_check) return absl::PermissionDeniedError("access denied (injected)");
    return absl::OkStatus();
  }
  std::string Describe() const override { return "fake:" + url_; }

 private:
  std::shared_ptr<FakeStoreState> state_;
  std::string url_;
};

// URL -> shared state; opens FakeStores for MetaServiceOptions::open_store.
class FakeStores {
 public:
  std::shared_ptr<FakeStoreState> State(const std::string& url) {
    absl::MutexLock l(&mu_);
    auto& s = states_[url];
    if (!s) s = std::make_shared<FakeStoreState>();
    return s;
  }
  absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> Open(const std::string& url) {
    {
      absl::MutexLock l(&mu_);
      opens_++;
      if (fail_open_) return absl::UnavailableError("injected open failure");
    }
    return std::unique_ptr<blockstore::BlockStore>(new FakeStore(State(url), url));
  }
  void SetFailOpen(bool v) {
    absl::MutexLock l(&mu_);
    fail_open_ = v;
  }

 private:
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<FakeStoreState>> states_ ABSL_GUARDED_BY(mu_);
  int opens_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_open_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nighfs::meta::fake

#endif  // NIGHFS_TESTS_META_FAKE_STORE_H_
