// A fixed pool of worker threads running queued closures. Destruction drains the queue.
#ifndef NIGHFS_MOUNT_THREAD_POOL_H_
#define NIGHFS_MOUNT_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace nighfs::fs {

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Run(); });
  }
  ~ThreadPool() {
    {
      absl::MutexLock l(&mu_);
      stopping_ = true;
    }
    for (auto& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  void Submit(std::function<void()> fn) {
    absl::MutexLock l(&mu_);
    queue_.push_back(std::move(fn));
  }

  // Closures queued and not started: optional work (readahead) is skipped while the pool is
  // behind, so neither the queue nor what its closures will allocate grows without bound.
  size_t backlog() const {
    absl::MutexLock l(&mu_);
    return queue_.size();
  }
  size_t threads() const { return workers_.size(); }

 private:
  void Run() {
    while (true) {
      std::function<void()> fn;
      {
        absl::MutexLock l(&mu_);
        mu_.Await(absl::Condition(
            +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->queue_.empty();
            },
            this));
        if (queue_.empty()) return;  // stopping and drained
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace nighfs::fs

#endif  // NIGHFS_MOUNT_THREAD_POOL_H_
