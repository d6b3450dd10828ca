// Self-check for absl_tsan_shim.cc, run by scripts/sanitize.sh before the TSan suites: every
// access below is ordered by an abseil primitive, so TSan must report nothing with the shim
// preloaded. Without it (Debian's abseil is uninstrumented) each of the three sections is
// reported as a data race, which is what would make every suite noise.
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

int main() {
  absl::Mutex mu;
  int counter = 0;  // guarded by mu
  auto bump = [&] {
    for (int i = 0; i < 10000; ++i) {
      absl::MutexLock l(&mu);
      ++counter;
    }
  };
  std::thread a(bump), b(bump);
  a.join();
  b.join();

  // Notify -> HasBeenNotified (inline acquire load) and -> WaitForNotification.
  int payload = 0;
  absl::Notification n;
  std::thread producer([&] {
    payload = 42;
    n.Notify();
  });
  while (!n.HasBeenNotified()) std::this_thread::yield();
  int seen = payload;
  n.WaitForNotification();
  producer.join();

  // Await releases mu while waiting; the writer's update must be visible after it.
  int ready = 0;  // guarded by mu
  std::thread writer([&] {
    absl::MutexLock l(&mu);
    ready = 1;
  });
  {
    absl::MutexLock l(&mu);
    mu.Await(absl::Condition(+[](int* r) { return *r == 1; }, &ready));
    ready = 2;
  }
  writer.join();

  // The timed waits: abseil implements AwaitWithTimeout (and CondVar::WaitWithTimeout) by
  // calling its *WithDeadline sibling through the PLT, i.e. through the shim again; the shim
  // must annotate the release and re-acquisition once, not twice.
  int step = 0;  // guarded by mu
  std::thread stepper([&] {
    absl::MutexLock l(&mu);
    step = 1;
  });
  {
    absl::MutexLock l(&mu);
    mu.AwaitWithTimeout(absl::Condition(+[](int* s) { return *s == 1; }, &step),
                        absl::Seconds(30));
    step = 2;
  }
  stepper.join();
  absl::CondVar cv;
  int signalled = 0;  // guarded by mu
  std::thread signaller([&] {
    absl::MutexLock l(&mu);
    signalled = 1;
    cv.Signal();
  });
  {
    absl::MutexLock l(&mu);
    while (signalled == 0) cv.WaitWithTimeout(&mu, absl::Milliseconds(100));
    signalled = 2;
  }
  signaller.join();
  int late = 0;
  absl::Notification n2;
  std::thread late_producer([&] {
    late = 7;
    n2.Notify();
  });
  const bool notified = n2.WaitForNotificationWithTimeout(absl::Seconds(30));
  const int late_seen = late;
  late_producer.join();
  return counter == 20000 && seen == 42 && ready == 2 && step == 2 && signalled == 2 &&
                 notified && late_seen == 7
             ? 0
             : 1;
}
