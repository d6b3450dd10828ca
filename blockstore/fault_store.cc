#include "blockstore/fault_store.h"

#include <cassert>
#include <utility>

namespace nighfs::blockstore {

FaultInjectingStore::FaultInjectingStore(std::unique_ptr<BlockStore> base)
    : BlockStoreWrapper(std::move(base)) {}

void FaultInjectingStore::Program(Op op, absl::Status status, int count, bool after_applying) {
  // An OK "fault" or a count of 0 would silently test nothing; treat both as caller bugs.
  assert(!status.ok());
  assert(count == kForever || count > 0);
  if (status.ok() || (count != kForever && count <= 0)) return;
  absl::MutexLock lock(&mu_);
  faults_[static_cast<int>(op)].push_back(Fault{std::move(status), count, after_applying});
}

void FaultInjectingStore::FailNext(Op op, absl::Status status, int count) {
  Program(op, std::move(status), count, /*after_applying=*/false);
}

void FaultInjectingStore::FailNextAfterApplying(Op op, absl::Status status, int count) {
  Program(op, std::move(status), count, /*after_applying=*/true);
}

void FaultInjectingStore::CorruptNextGet(int count) {
  absl::MutexLock lock(&mu_);
  corrupt_gets_ += count;
}

void FaultInjectingStore::TruncateNextGet(int count) {
  absl::MutexLock lock(&mu_);
  truncate_gets_ += count;
}

void FaultInjectingStore::ClearFaults() {
  absl::MutexLock lock(&mu_);
  for (auto& q : faults_) q.clear();
  corrupt_gets_ = 0;
  truncate_gets_ = 0;
}

int FaultInjectingStore::calls(Op op) const {
  absl::MutexLock lock(&mu_);
  return calls_[static_cast<int>(op)];
}

FaultInjectingStore::Decision FaultInjectingStore::Begin(Op op) {
  absl::MutexLock lock(&mu_);
  const int i = static_cast<int>(op);
  ++calls_[i];
  std::deque<Fault>& queue = faults_[i];
  if (queue.empty()) return {};
  Fault& f = queue.front();
  Decision d{f.status, f.after_applying};
  if (f.remaining != kForever && --f.remaining == 0) queue.pop_front();
  return d;
}

void FaultInjectingStore::Mangle(std::string& data) {
  if (data.empty()) return;
  absl::MutexLock lock(&mu_);
  if (corrupt_gets_ > 0) {
    --corrupt_gets_;
    data[data.size() / 2] ^= static_cast<char>(0xff);
  }
  if (truncate_gets_ > 0) {
    --truncate_gets_;
    data.pop_back();
  }
}

absl::StatusOr<std::string> FaultInjectingStore::Get(std::string_view key, uint64_t offset,
                                                     uint64_t length) {
  const Decision d = Begin(Op::kGet);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::StatusOr<std::string> r = base().Get(key, offset, length);
  if (!d.status.ok()) return d.status;
  if (r.ok()) Mangle(*r);
  return r;
}

absl::Status FaultInjectingStore::Put(std::string_view key, std::string_view data) {
  const Decision d = Begin(Op::kPut);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::Status r = base().Put(key, data);
  return d.status.ok() ? r : d.status;
}

absl::StatusOr<std::string> FaultInjectingStore::PutAndLocate(std::string_view key,
                                                              std::string_view data) {
  const Decision d = Begin(Op::kPut);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::StatusOr<std::string> r = base().PutAndLocate(key, data);
  if (!d.status.ok()) return d.status;
  return r;
}

absl::Status FaultInjectingStore::Delete(std::string_view key) {
  const Decision d = Begin(Op::kDelete);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::Status r = base().Delete(key);
  return d.status.ok() ? r : d.status;
}

absl::StatusOr<ObjectInfo> FaultInjectingStore::Head(std::string_view key) {
  const Decision d = Begin(Op::kHead);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::StatusOr<ObjectInfo> r = base().Head(key);
  if (!d.status.ok()) return d.status;
  return r;
}

absl::StatusOr<ListPage> FaultInjectingStore::List(std::string_view prefix,
                                                   std::string_view page_token, int max_keys) {
  const Decision d = Begin(Op::kList);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::StatusOr<ListPage> r = base().List(prefix, page_token, max_keys);
  if (!d.status.ok()) return d.status;
  return r;
}

absl::Status FaultInjectingStore::Check() {
  const Decision d = Begin(Op::kCheck);
  if (!d.status.ok() && !d.after_applying) return d.status;
  absl::Status r = base().Check();
  return d.status.ok() ? r : d.status;
}

}  // namespace nighfs::blockstore
