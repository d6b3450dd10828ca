#include "proxy/writeback.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "common/logging.h"
#include "proxy/av.h"

namespace nighfs::proxy {

namespace {

std::string IndexKey(uint64_t volume_id, std::string_view key) {
  return absl::StrCat(volume_id, "/", AV(key));
}

}  // namespace

std::optional<uint64_t> BlockIdOfKey(std::string_view key) {
  // "blk/xx/" + 16 hex digits.
  if (key.size() != 23 || key.substr(0, 4) != "blk/" || key[6] != '/') return std::nullopt;
  uint64_t id = 0;
  for (char c : key.substr(7)) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  }
  if (!absl::SimpleHexAtoi(AV(key.substr(7)), &id)) return std::nullopt;
  if (blockstore::BlockKey(id) != key) return std::nullopt;
  return id;
}

Writeback::Writeback(WritebackOptions options, DiskCache* cache, Volumes* volumes, MetaApi* meta,
                     ProxyMetrics* metrics)
    : options_(std::move(options)),
      cache_(cache),
      volumes_(volumes),
      meta_(meta),
      metrics_(metrics) {}

Writeback::~Writeback() { Stop(); }

void Writeback::Start() {
  const std::vector<JournalRow> dirty = cache_->DirtyBlocks();
  for (const JournalRow& row : dirty) {
    Enqueue(row.volume_id, row.key, absl::FromUnixNanos(row.acked_ns));
  }
  if (!dirty.empty()) {
    NIGHFS_LOG(INFO) << "proxy: " << dirty.size() << " unflushed blocks found, flushing";
  }
  absl::MutexLock lock(&mu_);
  if (started_) return;
  started_ = true;
  for (int i = 0; i < std::max(1, options_.active); ++i) {
    workers_.emplace_back([this] { Worker(); });
  }
}

void Writeback::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void Writeback::Enqueue(uint64_t volume_id, std::string_view key, absl::Time acked) {
  const std::string ik = IndexKey(volume_id, key);
  absl::MutexLock lock(&mu_);
  if (items_.contains(ik) || in_flight_.contains(ik)) return;
  Item item{volume_id, std::string(key), acked + options_.delay, 0, false};
  queue_.emplace(item.ready, ik);
  items_.emplace(ik, std::move(item));
  changed_.SignalAll();
}

void Writeback::Cancel(uint64_t volume_id, std::string_view key) {
  const std::string ik = IndexKey(volume_id, key);
  absl::MutexLock lock(&mu_);
  while (in_flight_.contains(ik)) changed_.Wait(&mu_);
  if (auto it = items_.find(ik); it != items_.end()) {
    queue_.erase(QueueKey(it->second.ready, ik));
    items_.erase(it);
    changed_.SignalAll();
  }
}

size_t Writeback::pending() const {
  absl::MutexLock lock(&mu_);
  return items_.size() + in_flight_.size();
}

bool Writeback::WaitIdle(absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!items_.empty() || !in_flight_.empty()) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) {
      return items_.empty() && in_flight_.empty();
    }
  }
  return true;
}

absl::Duration Writeback::Backoff(int failures) const {
  absl::Duration d = options_.initial_backoff;
  for (int i = 1; i < failures && d < options_.max_backoff; ++i) d *= 2;
  return std::min(d, options_.max_backoff);
}

void Writeback::Worker() {
  while (true) {
    std::vector<Item> batch;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        if (stopping_) return;
        const absl::Time now = absl::Now();
        if (!queue_.empty() && queue_.begin()->first <= now) break;
        if (queue_.empty()) {
          changed_.Wait(&mu_);
        } else {
          changed_.WaitWithDeadline(&mu_, queue_.begin()->first);
        }
      }
      // The oldest ready block, and more ready ones of its volume: a share of what is ready,
      // so the other workers get some too.
      const absl::Time now = absl::Now();
      size_t ready = 0;
      for (auto it = queue_.begin(); it != queue_.end() && it->first <= now; ++it) ++ready;
      const size_t share = std::clamp<size_t>(ready / std::max(1, options_.active), 1,
                                              static_cast<size_t>(options_.max_batch));
      const uint64_t volume_id = items_[queue_.begin()->second].volume_id;
      for (auto it = queue_.begin(); it != queue_.end() && it->first <= now &&
                                     batch.size() < share;) {
        auto item = items_.find(it->second);
        if (item->second.volume_id != volume_id) {
          ++it;
          continue;
        }
        in_flight_.insert(it->second);
        batch.push_back(std::move(item->second));
        items_.erase(item);
        it = queue_.erase(it);
      }
    }
    Process(std::move(batch));
  }
}

void Writeback::Finish(Item item, bool retry) {
  const std::string ik = IndexKey(item.volume_id, item.key);
  absl::MutexLock lock(&mu_);
  in_flight_.erase(ik);
  if (retry) {
    ++item.failures;
    metrics_->flush_errors.fetch_add(1);
    item.ready = absl::Now() + Backoff(item.failures);
    queue_.emplace(item.ready, ik);
    items_.emplace(ik, std::move(item));
  }
  changed_.SignalAll();
}

void Writeback::Process(std::vector<Item> batch) {
  const uint64_t volume_id = batch.front().volume_id;
  auto retry_all = [&](const absl::Status& why, std::vector<Item>& items) {
    NIGHFS_LOG(WARNING) << "proxy writeback: " << items.size() << " blocks of volume "
                        << volume_id << " wait for a retry: " << why;
    for (Item& item : items) Finish(std::move(item), /*retry=*/true);
    items.clear();
  };
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> store = volumes_->StoreForId(volume_id);
  if (!store.ok()) return retry_all(store.status(), batch);

  // Which of `items` are dead now (by block id; keys that are no block id never are).
  auto ask_dead = [&](const std::vector<Item>& items) -> absl::StatusOr<std::vector<bool>> {
    pb::DeadBlocksRequest request;
    request.set_volume_id(volume_id);
    for (const Item& item : items) {
      if (std::optional<uint64_t> id = BlockIdOfKey(item.key)) request.add_ids(*id);
    }
    std::vector<bool> dead(items.size(), false);
    if (request.ids().empty()) return dead;
    absl::StatusOr<pb::DeadBlocksResponse> response = meta_->DeadBlocks(request);
    if (!response.ok()) return response.status();
    absl::flat_hash_set<uint64_t> dead_ids(response->dead_ids().begin(),
                                           response->dead_ids().end());
    for (size_t i = 0; i < items.size(); ++i) {
      std::optional<uint64_t> id = BlockIdOfKey(items[i].key);
      dead[i] = id.has_value() && dead_ids.contains(*id);
    }
    return dead;
  };

  // 1. Before the upload: a block no block map will ever name again is dropped, not sent.
  std::vector<Item> to_upload, uploaded;
  for (Item& item : batch) (item.uploaded ? uploaded : to_upload).push_back(std::move(item));
  if (!to_upload.empty()) {
    absl::StatusOr<std::vector<bool>> dead = ask_dead(to_upload);
    if (!dead.ok()) {
      retry_all(dead.status(), to_upload);
    } else {
      for (size_t i = 0; i < to_upload.size(); ++i) {
        Item& item = to_upload[i];
        if ((*dead)[i]) {
          if (absl::Status s = cache_->Remove(volume_id, item.key); !s.ok()) {
            Finish(std::move(item), /*retry=*/true);
            continue;
          }
          metrics_->dead_blocks_dropped.fetch_add(1);
          NIGHFS_LOG(DEBUG) << "proxy writeback: " << item.key << " died before its upload";
          Finish(std::move(item), /*retry=*/false);
          continue;
        }
        // 2. The upload, of bytes whose CRC32C is checked again on the way from disk.
        absl::StatusOr<std::string> data = cache_->Read(volume_id, item.key);
        if (!data.ok()) {
          if (data.status().code() == absl::StatusCode::kNotFound ||
              data.status().code() == absl::StatusCode::kDataLoss) {
            // Deleted meanwhile, or corrupt (the cache has logged it LOST): nothing to upload.
            Finish(std::move(item), /*retry=*/false);
          } else {
            NIGHFS_LOG(WARNING) << "proxy writeback: " << data.status();
            Finish(std::move(item), /*retry=*/true);
          }
          continue;
        }
        if (absl::Status s = (*store)->Put(item.key, *data); !s.ok()) {
          NIGHFS_LOG(WARNING) << "proxy writeback: upload of " << item.key << " failed (attempt "
                              << item.failures + 1 << "): " << s;
          Finish(std::move(item), /*retry=*/true);
          continue;
        }
        item.uploaded = true;
        uploaded.push_back(std::move(item));
      }
    }
  }
  if (uploaded.empty()) return;
  // 3. After the upload: a block that died while it was on its way is deleted again.
  absl::StatusOr<std::vector<bool>> dead = ask_dead(uploaded);
  if (!dead.ok()) return retry_all(dead.status(), uploaded);
  for (size_t i = 0; i < uploaded.size(); ++i) {
    Item& item = uploaded[i];
    if ((*dead)[i]) {
      if (absl::Status s = (*store)->Delete(item.key); !s.ok()) {
        NIGHFS_LOG(WARNING) << "proxy writeback: cannot delete " << item.key
                            << ", which died during its upload: " << s;
        Finish(std::move(item), /*retry=*/true);
        continue;
      }
      (void)cache_->Remove(volume_id, item.key);
      metrics_->dead_blocks_dropped.fetch_add(1);
      Finish(std::move(item), /*retry=*/false);
      continue;
    }
    if (absl::Status s = cache_->MarkClean(volume_id, item.key); !s.ok()) {
      NIGHFS_LOG(WARNING) << "proxy writeback: " << s;
      Finish(std::move(item), /*retry=*/true);
      continue;
    }
    metrics_->flushed_blocks.fetch_add(1);
    Finish(std::move(item), /*retry=*/false);
  }
}

}  // namespace nighfs::proxy
