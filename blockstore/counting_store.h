// A BlockStore wrapper that keeps the truth about a store's health from the requests really made
// to it: counts, failures in the last minute, the last failure and the last success. What
// `nighfs status` shows for the "direct" route (issue 10: a store shown healthy while every
// upload failed).
#ifndef NIGHFS_BLOCKSTORE_COUNTING_STORE_H_
#define NIGHFS_BLOCKSTORE_COUNTING_STORE_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "blockstore/store_wrapper.h"

namespace nighfs::blockstore {

struct StoreHealth {
  uint64_t requests = 0;  // calls made (each may be several HTTP attempts inside the store)
  uint64_t errors = 0;    // calls that failed; NotFound is an answer, not a failure
  uint64_t errors_last_minute = 0;
  std::string last_error;  // the last failure's status, "" if none
  absl::Time last_error_time = absl::InfinitePast();
  absl::Time last_success_time = absl::InfinitePast();
  // False while requests fail and none has succeeded since the last failure (within a minute).
  bool healthy = true;
};

// Thread-safe.
class CountingStore : public BlockStoreWrapper {
 public:
  // `clock` is the time source (tests pass a fake one).
  explicit CountingStore(std::unique_ptr<BlockStore> base,
                         std::function<absl::Time()> clock = [] { return absl::Now(); });

  StoreHealth Health() const;

  absl::StatusOr<std::string> Get(std::string_view key, uint64_t offset = 0,
                                  uint64_t length = kToEnd) override;
  absl::Status Put(std::string_view key, std::string_view data) override;
  absl::StatusOr<std::string> PutAndLocate(std::string_view key, std::string_view data) override;
  absl::Status Delete(std::string_view key) override;
  absl::StatusOr<ObjectInfo> Head(std::string_view key) override;
  absl::StatusOr<ListPage> List(std::string_view prefix, std::string_view page_token,
                                int max_keys = 1000) override;
  absl::Status Check() override;

 private:
  void Record(const absl::Status& status);
  uint64_t ErrorsLastMinuteLocked(int64_t now_s) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  uint64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time last_error_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_success_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Failures per second over the last minute, a ring indexed by unix second % 60.
  struct Bucket {
    int64_t second = -1;
    uint64_t errors = 0;
  };
  std::array<Bucket, 60> recent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_COUNTING_STORE_H_
