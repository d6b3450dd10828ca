// ThreadSanitizer annotations for Debian's prebuilt abseil synchronization library.
//
// Why: absl::Mutex, absl::CondVar and absl::Notification live in libabsl_synchronization.so,
// which Debian builds without -fsanitize=thread. abseil only tells TSan about its locks when
// it is itself compiled with TSan (ABSL_TSAN_MUTEX_* in mutex.cc), so under TSan every field
// guarded by an absl::Mutex shows up as a data race: TSan never sees the lock
// (absl_tsan_shim_check.cc: 5 reports without this file, none with it). No suppression can
// fix that without hiding every real race in the same code.
//
// What: scripts/sanitize.sh builds this file as a small shared library (not instrumented,
// no abseil link: it only needs the headers) and LD_PRELOADs it into the TSan test run. It
// interposes the out-of-line abseil entry points the project (and abseil itself) call through
// the PLT, forwards each to the real function (dlsym RTLD_NEXT) and wraps it in the
// __tsan_mutex_* / __tsan_acquire / __tsan_release annotations abseil would have emitted.
// The __tsan_* symbols are weak: processes without TSan (node for s3rver/Azurite, python for
// meson) load the library harmlessly and nothing in them calls abseil.
//
// Await / CondVar::Wait release the mutex while they wait: they are annotated as an unlock
// followed by a lock (writer mode: every Await in the tree holds a writer lock), with TSan's
// ignore window (pre_unlock .. post_unlock) covering the wait and the condition evaluations.

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
void __tsan_mutex_destroy(void* addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_pre_lock(void* addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_post_lock(void* addr, unsigned flags, int recursion) __attribute__((weak));
int __tsan_mutex_pre_unlock(void* addr, unsigned flags) __attribute__((weak));
void __tsan_mutex_post_unlock(void* addr, unsigned flags) __attribute__((weak));
}

namespace {

// Flag values from <sanitizer/tsan_interface.h> (gcc 12 / clang 14).
constexpr unsigned kReadLock = 1u << 3;
constexpr unsigned kTryLock = 1u << 4;
constexpr unsigned kTryLockFailed = 1u << 5;

// How many shim wrappers this thread is inside. abseil calls some of its own public entry
// points through the PLT, i.e. through the shim again: AwaitWithTimeout calls
// AwaitWithDeadline, CondVar::WaitWithTimeout calls WaitWithDeadline, Notification::Notify locks
// its Mutex. Only the outermost call annotates; a nested one annotating again would unlock a
// mutex TSan already sees unlocked ("unlock of an unlocked mutex", then false races).
thread_local int shim_depth = 0;

class Depth {
 public:
  Depth() { ++shim_depth; }
  ~Depth() { --shim_depth; }
  Depth(const Depth&) = delete;
  Depth& operator=(const Depth&) = delete;
};

bool Tsan() { return __tsan_mutex_pre_lock != nullptr && shim_depth == 1; }

void PreLock(void* mu, unsigned flags) {
  if (Tsan()) __tsan_mutex_pre_lock(mu, flags);
}
void PostLock(void* mu, unsigned flags) {
  if (Tsan()) __tsan_mutex_post_lock(mu, flags, 0);
}
void PreUnlock(void* mu, unsigned flags) {
  if (Tsan()) __tsan_mutex_pre_unlock(mu, flags);
}
void PostUnlock(void* mu, unsigned flags) {
  if (Tsan()) __tsan_mutex_post_unlock(mu, flags);
}

// Runs `wait` (an abseil call that releases `mu` while it waits and holds it again when it
// returns) as an unlock followed by a lock, the wait inside TSan's ignore window.
template <typename Wait>
auto WhileReleased(void* mu, Wait wait) {
  PreUnlock(mu, 0);
  auto r = wait();
  PostUnlock(mu, 0);
  PreLock(mu, 0);
  PostLock(mu, 0);
  return r;
}

// The real abseil function behind a mangled name (the inline namespace is Debian's, so the
// names are read from the library rather than spelled out: see Real() callers).
template <typename Fn>
Fn Real(const char* mangled) {
  void* sym = ::dlsym(RTLD_NEXT, mangled);
  if (sym == nullptr) {
    std::fprintf(stderr, "absl_tsan_shim: %s not found: %s\n", mangled, ::dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(sym);
}

#define ABSL_NS_STR2(x) #x
#define ABSL_NS_STR(x) ABSL_NS_STR2(x)
// "_ZN4absl" <len><inline namespace> ...: the prefix of every mangled abseil member name.
#define NS ABSL_NS_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME)
static_assert(sizeof(NS) - 1 < 10, "inline namespace name must have a one-digit length");
#define MANGLED(rest) \
  (std::string("_ZN4absl") + std::to_string(sizeof(NS) - 1) + NS + rest).c_str()
#define MANGLED_CONST(rest) \
  (std::string("_ZNK4absl") + std::to_string(sizeof(NS) - 1) + NS + rest).c_str()

// Notification keeps its flag right after its Mutex. HasBeenNotified() is inline (an acquire
// load of that flag in our instrumented code), so Notify releases on the flag's own address:
// TSan keys atomics and __tsan_release by address, and the inline load then synchronizes.
static_assert(sizeof(absl::Notification) == 2 * sizeof(absl::Mutex),
              "absl::Notification layout changed: {Mutex mutex_; atomic<bool> notified_yet_;}");
void* NotifiedKey(const absl::Notification* n) {
  return const_cast<char*>(reinterpret_cast<const char*>(n)) + sizeof(absl::Mutex);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  Depth nest;
  static auto real = Real<void (*)(Mutex*)>(MANGLED("5MutexD2Ev"));
  if (Tsan()) __tsan_mutex_destroy(this, 0);
  real(this);
}

void Mutex::Lock() {
  Depth nest;
  static auto real = Real<void (*)(Mutex*)>(MANGLED("5Mutex4LockEv"));
  PreLock(this, 0);
  real(this);
  PostLock(this, 0);
}

void Mutex::Unlock() {
  Depth nest;
  static auto real = Real<void (*)(Mutex*)>(MANGLED("5Mutex6UnlockEv"));
  PreUnlock(this, 0);
  real(this);
  PostUnlock(this, 0);
}

bool Mutex::TryLock() {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*)>(MANGLED("5Mutex7TryLockEv"));
  PreLock(this, kTryLock);
  bool ok = real(this);
  PostLock(this, kTryLock | (ok ? 0 : kTryLockFailed));
  return ok;
}

void Mutex::ReaderLock() {
  Depth nest;
  static auto real = Real<void (*)(Mutex*)>(MANGLED("5Mutex10ReaderLockEv"));
  PreLock(this, kReadLock);
  real(this);
  PostLock(this, kReadLock);
}

void Mutex::ReaderUnlock() {
  Depth nest;
  static auto real = Real<void (*)(Mutex*)>(MANGLED("5Mutex12ReaderUnlockEv"));
  PreUnlock(this, kReadLock);
  real(this);
  PostUnlock(this, kReadLock);
}

bool Mutex::ReaderTryLock() {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*)>(MANGLED("5Mutex13ReaderTryLockEv"));
  PreLock(this, kReadLock | kTryLock);
  bool ok = real(this);
  PostLock(this, kReadLock | kTryLock | (ok ? 0 : kTryLockFailed));
  return ok;
}

void Mutex::LockWhen(const Condition& cond) {
  Depth nest;
  static auto real =
      Real<void (*)(Mutex*, const Condition&)>(MANGLED("5Mutex8LockWhenERKNS0_9ConditionE"));
  PreLock(this, 0);
  real(this, cond);
  PostLock(this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  Depth nest;
  static auto real = Real<void (*)(Mutex*, const Condition&)>(
      MANGLED("5Mutex14ReaderLockWhenERKNS0_9ConditionE"));
  PreLock(this, kReadLock);
  real(this, cond);
  PostLock(this, kReadLock);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      MANGLED("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  PreLock(this, 0);
  bool r = real(this, cond, timeout);
  PostLock(this, 0);
  return r;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      MANGLED("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  PreLock(this, 0);
  bool r = real(this, cond, deadline);
  PostLock(this, 0);
  return r;
}

// Await*: held (writer) before and after; released while waiting.
void Mutex::Await(const Condition& cond) {
  Depth nest;
  static auto real =
      Real<void (*)(Mutex*, const Condition&)>(MANGLED("5Mutex5AwaitERKNS0_9ConditionE"));
  WhileReleased(this, [&] {
    real(this, cond);
    return true;
  });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      MANGLED("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE"));
  return WhileReleased(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  Depth nest;
  static auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      MANGLED("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE"));
  return WhileReleased(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  Depth nest;
  static auto real = Real<void (*)(CondVar*, Mutex*)>(MANGLED("7CondVar4WaitEPNS0_5MutexE"));
  WhileReleased(mu, [&] {
    real(this, mu);
    return true;
  });
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  Depth nest;
  static auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      MANGLED("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE"));
  return WhileReleased(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  Depth nest;
  static auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      MANGLED("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE"));
  return WhileReleased(mu, [&] { return real(this, mu, deadline); });
}

void Notification::Notify() {
  Depth nest;
  static auto real = Real<void (*)(Notification*)>(MANGLED("12Notification6NotifyEv"));
  if (Tsan()) __tsan_release(NotifiedKey(this));
  real(this);
}

void Notification::WaitForNotification() const {
  Depth nest;
  static auto real = Real<void (*)(const Notification*)>(
      MANGLED_CONST("12Notification19WaitForNotificationEv"));
  real(this);
  if (Tsan()) __tsan_acquire(NotifiedKey(this));
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  Depth nest;
  static auto real = Real<bool (*)(const Notification*, absl::Duration)>(
      MANGLED_CONST("12Notification30WaitForNotificationWithTimeoutENS0_8DurationE"));
  bool r = real(this, timeout);
  if (r && Tsan()) __tsan_acquire(NotifiedKey(this));
  return r;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  Depth nest;
  static auto real = Real<bool (*)(const Notification*, absl::Time)>(
      MANGLED_CONST("12Notification31WaitForNotificationWithDeadlineENS0_4TimeE"));
  bool r = real(this, deadline);
  if (r && Tsan()) __tsan_acquire(NotifiedKey(this));
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl
