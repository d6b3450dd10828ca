// A MetaApi for the proxy's tests: AuthorizeBlockAccess answers from a table of tokens and
// volumes, DeadBlocks from a set of dead ids (with a hook to kill blocks mid-upload); every other
// call is Unimplemented.
#ifndef NIGHFS_TESTS_PROXY_FAKE_META_H_
#define NIGHFS_TESTS_PROXY_FAKE_META_H_

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "metadata_client/meta_api.h"

namespace nighfs::proxy::testing {

// Every call Unimplemented; FakeMeta overrides the two a proxy makes.
class UnimplementedMeta : public MetaApi {
 public:
#define NIGHFS_FAKE_META_METHOD(M, Req, Resp)                               \
  absl::StatusOr<pb::Resp> M(const pb::Req&) override {                     \
    return absl::UnimplementedError(#M " is not part of the proxy's fake"); \
  }
  NIGHFS_META_METHODS(NIGHFS_FAKE_META_METHOD)
#undef NIGHFS_FAKE_META_METHOD
};

class FakeMeta : public UnimplementedMeta {
 public:

  void AddVolume(uint64_t id, const std::string& name, const std::string& store_url) {
    absl::MutexLock lock(&mu_);
    pb::Volume& v = volumes_[name];
    v.set_id(id);
    v.set_name(name);
    v.set_store_url(store_url);
  }
  // A token of `volume` ("" = the admin token: every volume, WRITE).
  void AddToken(const std::string& secret, const std::string& volume, pb::Access access,
                int64_t expires_ns = 0) {
    absl::MutexLock lock(&mu_);
    tokens_[secret] = Token{volume, access, expires_ns};
  }
  void RevokeToken(const std::string& secret) {
    absl::MutexLock lock(&mu_);
    tokens_.erase(secret);
  }
  void KillBlock(uint64_t id) {
    absl::MutexLock lock(&mu_);
    dead_.insert(id);
  }
  // Fails every call with `status` (OK: answer again).
  void SetFailure(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }
  // Runs at the start of each DeadBlocks call (before it answers), with the call's number (0 =
  // first).
  void OnDeadBlocks(std::function<void(int call, const pb::DeadBlocksRequest&)> hook) {
    absl::MutexLock lock(&mu_);
    dead_hook_ = std::move(hook);
  }
  // Each AuthorizeBlockAccess takes this long (a slow or distant server).
  void SetDelay(absl::Duration delay) {
    absl::MutexLock lock(&mu_);
    delay_ = delay;
  }
  int authorize_calls() const {
    absl::MutexLock lock(&mu_);
    return authorize_calls_;
  }
  int dead_calls() const {
    absl::MutexLock lock(&mu_);
    return dead_calls_;
  }
  std::string last_proxy_address() const {
    absl::MutexLock lock(&mu_);
    return last_proxy_address_;
  }

  absl::StatusOr<pb::AuthorizeBlockAccessResponse> AuthorizeBlockAccess(
      const pb::AuthorizeBlockAccessRequest& request) override {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      ++authorize_calls_;
      delay = delay_;
    }
    absl::SleepFor(delay);
    absl::MutexLock lock(&mu_);
    last_proxy_address_ = request.proxy_address();
    if (!failure_.ok()) return failure_;
    auto t = tokens_.find(request.token());
    if (t == tokens_.end()) return absl::UnauthenticatedError("unknown token");
    auto v = volumes_.find(request.volume());
    if (!t->second.volume.empty() && t->second.volume != request.volume()) {
      return absl::PermissionDeniedError("token of another volume");
    }
    if (v == volumes_.end()) return absl::NotFoundError("no such volume");
    pb::AuthorizeBlockAccessResponse response;
    *response.mutable_volume() = v->second;
    response.set_access(t->second.access);
    response.set_expires_ns(t->second.expires_ns);
    response.set_path("/");
    return response;
  }

  absl::StatusOr<pb::DeadBlocksResponse> DeadBlocks(const pb::DeadBlocksRequest& request) override {
    std::function<void(int, const pb::DeadBlocksRequest&)> hook;
    int call;
    {
      absl::MutexLock lock(&mu_);
      call = dead_calls_++;
      hook = dead_hook_;
    }
    if (hook) hook(call, request);
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    pb::DeadBlocksResponse response;
    for (uint64_t id : request.ids()) {
      if (dead_.contains(id)) response.add_dead_ids(id);
    }
    return response;
  }

 private:
  struct Token {
    std::string volume;
    pb::Access access;
    int64_t expires_ns;
  };
  mutable absl::Mutex mu_;
  std::map<std::string, pb::Volume> volumes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Token> tokens_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> dead_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::function<void(int, const pb::DeadBlocksRequest&)> dead_hook_ ABSL_GUARDED_BY(mu_);
  absl::Duration delay_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  int authorize_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int dead_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_proxy_address_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::proxy::testing

#endif  // NIGHFS_TESTS_PROXY_FAKE_META_H_
