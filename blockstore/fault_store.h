// A failure-injecting BlockStore for tests of callers: retries, checksum verification and error
// paths can be exercised deterministically, without a misbehaving server.
#ifndef NIGHFS_BLOCKSTORE_FAULT_STORE_H_
#define NIGHFS_BLOCKSTORE_FAULT_STORE_H_

#include <array>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "blockstore/store_wrapper.h"

namespace nighfs::blockstore {

// Forwards every call to a wrapped store (base(), to inspect or seed its contents without
// faults or counting), except the calls programmed to misbehave. Faults
// queue per operation in the order programmed: FailNext(kGet, a, 2) then FailNext(kGet, b, 1)
// fails the next two Gets with `a` and the third with `b`. All methods are thread-safe; when
// several threads race, which of their calls gets a fault is unspecified, but exactly `count`
// calls get it.
class FaultInjectingStore : public BlockStoreWrapper {
 public:
  enum class Op { kGet = 0, kPut, kDelete, kHead, kList, kCheck };
  // As a count: the fault applies to every call until ClearFaults().
  static constexpr int kForever = -1;

  explicit FaultInjectingStore(std::unique_ptr<BlockStore> base);
  FaultInjectingStore(const FaultInjectingStore&) = delete;
  FaultInjectingStore& operator=(const FaultInjectingStore&) = delete;

  // The next `count` calls of `op` return `status` (not OK) without reaching the wrapped
  // store: the request was lost before the server saw it.
  void FailNext(Op op, absl::Status status, int count = 1);
  // The next `count` calls of `op` do reach the wrapped store, which applies them, and then
  // return `status` anyway: the reply was lost (a Put that landed but timed out, say).
  void FailNextAfterApplying(Op op, absl::Status status, int count = 1);
  // The next `count` successful Gets that return at least one byte have their middle byte
  // flipped (XOR 0xff): silent corruption that checksums must catch.
  void CorruptNextGet(int count = 1);
  // The next `count` successful Gets that return at least one byte come back one byte short,
  // as a server closing the connection early would leave them.
  void TruncateNextGet(int count = 1);
  // Forgets every programmed fault. Call counts are kept.
  void ClearFaults();

  // Calls of `op` made so far, including the ones that were failed.
  int calls(Op op) const;
  // Defaults repeated from BlockStore so calls through a FaultInjectingStore& read the same.
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
  static constexpr int kNumOps = 6;
  struct Fault {
    absl::Status status;
    int remaining;  // kForever or > 0
    bool after_applying;
  };
  // What the current call must do: nothing (OK), fail before, or fail after the wrapped call.
  struct Decision {
    absl::Status status;
    bool after_applying = false;
  };

  void Program(Op op, absl::Status status, int count, bool after_applying);
  // Counts a call of `op` and consumes the fault that applies to it, if any.
  Decision Begin(Op op);
  // Applies pending corruption or truncation to a successful Get's data.
  void Mangle(std::string& data);

  mutable absl::Mutex mu_;
  std::array<std::deque<Fault>, kNumOps> faults_ ABSL_GUARDED_BY(mu_);
  std::array<int, kNumOps> calls_ ABSL_GUARDED_BY(mu_) = {};
  int corrupt_gets_ ABSL_GUARDED_BY(mu_) = 0;
  int truncate_gets_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nighfs::blockstore

#endif  // NIGHFS_BLOCKSTORE_FAULT_STORE_H_
