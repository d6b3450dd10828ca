#include "blockstore/counting_store.h"

#include <utility>

namespace nighfs::blockstore {

CountingStore::CountingStore(std::unique_ptr<BlockStore> base,
                             std::function<absl::Time()> clock)
    : BlockStoreWrapper(std::move(base)), clock_(std::move(clock)) {}

void CountingStore::Record(const absl::Status& status) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  ++requests_;
  // A missing object is the store answering; only failures to answer say something about it.
  if (status.ok() || absl::IsNotFound(status)) {
    last_success_time_ = now;
    return;
  }
  ++errors_;
  last_error_ = status.ToString();
  last_error_time_ = now;
  const int64_t s = absl::ToUnixSeconds(now);
  Bucket& b = recent_[static_cast<size_t>(((s % 60) + 60) % 60)];
  if (b.second != s) b = Bucket{s, 0};
  ++b.errors;
}

uint64_t CountingStore::ErrorsLastMinuteLocked(int64_t now_s) const {
  uint64_t n = 0;
  for (const Bucket& b : recent_) {
    if (b.second > now_s - 60 && b.second <= now_s) n += b.errors;
  }
  return n;
}

StoreHealth CountingStore::Health() const {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  StoreHealth h;
  h.requests = requests_;
  h.errors = errors_;
  h.errors_last_minute = ErrorsLastMinuteLocked(absl::ToUnixSeconds(now));
  h.last_error = last_error_;
  h.last_error_time = last_error_time_;
  h.last_success_time = last_success_time_;
  h.healthy = !(h.errors_last_minute > 0 && last_error_time_ >= last_success_time_);
  return h;
}

absl::StatusOr<std::string> CountingStore::Get(std::string_view key, uint64_t offset,
                                               uint64_t length) {
  absl::StatusOr<std::string> r = BlockStoreWrapper::Get(key, offset, length);
  Record(r.status());
  return r;
}

absl::Status CountingStore::Put(std::string_view key, std::string_view data) {
  absl::Status s = BlockStoreWrapper::Put(key, data);
  Record(s);
  return s;
}

absl::StatusOr<std::string> CountingStore::PutAndLocate(std::string_view key,
                                                        std::string_view data) {
  absl::StatusOr<std::string> r = BlockStoreWrapper::PutAndLocate(key, data);
  Record(r.status());
  return r;
}

absl::Status CountingStore::Delete(std::string_view key) {
  absl::Status s = BlockStoreWrapper::Delete(key);
  Record(s);
  return s;
}

absl::StatusOr<ObjectInfo> CountingStore::Head(std::string_view key) {
  absl::StatusOr<ObjectInfo> r = BlockStoreWrapper::Head(key);
  Record(r.status());
  return r;
}

absl::StatusOr<ListPage> CountingStore::List(std::string_view prefix,
                                             std::string_view page_token, int max_keys) {
  absl::StatusOr<ListPage> r = BlockStoreWrapper::List(prefix, page_token, max_keys);
  Record(r.status());
  return r;
}

absl::Status CountingStore::Check() {
  absl::Status s = BlockStoreWrapper::Check();
  Record(s);
  return s;
}

}  // namespace nighfs::blockstore
