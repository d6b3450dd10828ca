// The background flush of dirty blocks to their stores: N workers, each block held back at
// least `delay` after its PUT, failures retried with backoff (1 s doubling to 60 s) for as long
// as it takes. Garbage collection and writeback agree through DeadBlocks: asked before an
// upload (a dead block is dropped, never uploaded) and after it (a block that died meanwhile is
// deleted from the store again), so no object is leaked and no egress wasted.
#ifndef NIGHFS_PROXY_WRITEBACK_H_
#define NIGHFS_PROXY_WRITEBACK_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "metadata_client/meta_api.h"
#include "proxy/disk_cache.h"
#include "proxy/metrics.h"
#include "proxy/volumes.h"

namespace nighfs::proxy {

struct WritebackOptions {
  int active = 8;                          // parallel uploads (--writeback-active)
  absl::Duration delay = absl::ZeroDuration();  // a block waits this long after its PUT
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(60);
  int max_batch = 32;  // blocks of one volume per DeadBlocks question
};

// The block id a key names when it is a BlockKey ("blk/xx/<16 hex>"), else nullopt (such keys
// are uploaded without asking DeadBlocks: no block map can name them).
std::optional<uint64_t> BlockIdOfKey(std::string_view key);

// Thread-safe. Every pointer must outlive the writeback.
class Writeback {
 public:
  Writeback(WritebackOptions options, DiskCache* cache, Volumes* volumes, MetaApi* meta,
            ProxyMetrics* metrics);
  ~Writeback();  // Stop()
  Writeback(const Writeback&) = delete;
  Writeback& operator=(const Writeback&) = delete;

  // Queues every dirty block of the cache (after a restart) and starts the workers.
  void Start();
  // Uploads in flight finish (each bounded by its store's timeouts); queued blocks stay dirty
  // in the journal for the next start. Idempotent.
  void Stop();

  // A block just acknowledged.
  void Enqueue(uint64_t volume_id, std::string_view key, absl::Time acked);
  // Takes a block out of the writeback before it is deleted: waits while an upload of it is in
  // flight, then unqueues it. The caller then removes it from the cache and the store.
  void Cancel(uint64_t volume_id, std::string_view key);

  // Blocks queued or in flight.
  size_t pending() const;
  // Waits until nothing is pending; false at the timeout (tests, shutdown reports).
  bool WaitIdle(absl::Duration timeout) const;

 private:
  struct Item {
    uint64_t volume_id = 0;
    std::string key;
    absl::Time ready;       // not before
    int failures = 0;
    bool uploaded = false;  // only the check after the upload is left
  };
  using QueueKey = std::pair<absl::Time, std::string>;  // (ready, index key)

  void Worker();
  void Process(std::vector<Item> batch);
  void Finish(Item item, bool retry);
  absl::Duration Backoff(int failures) const;

  const WritebackOptions options_;
  DiskCache* const cache_;
  Volumes* const volumes_;
  MetaApi* const meta_;
  ProxyMetrics* const metrics_;

  mutable absl::Mutex mu_;
  mutable absl::CondVar changed_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, Item> items_ ABSL_GUARDED_BY(mu_);  // queued, by index key
  std::set<QueueKey> queue_ ABSL_GUARDED_BY(mu_);                       // queued, by readiness
  absl::flat_hash_set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_WRITEBACK_H_
