#include "proxy/authorizer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "proxy/av.h"

namespace nighfs::proxy {

namespace {

// Answers that say something about the token or the volume, not about the server's state.
bool IsFinalAnswer(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnauthenticated ||
         s.code() == absl::StatusCode::kPermissionDenied ||
         s.code() == absl::StatusCode::kNotFound;
}

}  // namespace

absl::StatusOr<Grant> Authorizer::Authorize(std::string_view secret, std::string_view volume) {
  if (secret.empty()) {
    return absl::UnauthenticatedError("no token: send Authorization: Bearer <volume token>");
  }
  // The secret itself is never kept: its hash names the cache entry.
  const std::string cache_key =
      absl::StrCat(Sha256(secret), absl::string_view("\0", 1), AV(volume));
  const absl::Time now = options_.now();
  std::shared_ptr<Pending> pending;
  bool asker = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = cache_.find(cache_key); it != cache_.end() && now < it->second.expires) {
      return it->second.answer;
    }
    std::shared_ptr<Pending>& slot = pending_[cache_key];
    if (slot == nullptr) {
      slot = std::make_shared<Pending>();
      asker = true;
      ++meta_calls_;
    }
    pending = slot;
  }
  if (!asker) {
    pending->done.WaitForNotification();
    return pending->answer;
  }
  absl::Time expires;
  absl::StatusOr<Grant> answer = Ask(secret, volume, now, &expires);
  {
    absl::MutexLock lock(&mu_);
    pending_.erase(cache_key);
    // Answers about the token are cached (refusals too); the server's own failures are not.
    if (answer.ok() || IsFinalAnswer(answer.status())) {
      if (cache_.size() >= options_.max_entries) {
        absl::erase_if(cache_, [now](const auto& kv) { return kv.second.expires <= now; });
        if (cache_.size() >= options_.max_entries) cache_.clear();
      }
      cache_[cache_key] = Entry{answer, expires};
    }
  }
  pending->answer = answer;
  pending->done.Notify();
  return answer;
}

absl::StatusOr<Grant> Authorizer::Ask(std::string_view secret, std::string_view volume,
                                      absl::Time now, absl::Time* expires) {
  *expires = now + options_.ttl;
  pb::AuthorizeBlockAccessRequest request;
  request.set_volume(std::string(volume));
  request.set_token(std::string(secret));
  request.set_proxy_address(options_.proxy_address);
  absl::StatusOr<pb::AuthorizeBlockAccessResponse> response =
      options_.meta->AuthorizeBlockAccess(request);
  if (!response.ok()) {
    if (!IsFinalAnswer(response.status())) {
      NIGHFS_LOG(WARNING) << "proxy: cannot authorize a request for volume " << volume << ": "
                          << response.status();
    }
    return response.status();
  }
  if (response->access() != pb::ACCESS_READ && response->access() != pb::ACCESS_WRITE) {
    return absl::PermissionDeniedError("this token does not grant block access");
  }
  Grant grant;
  grant.volume = response->volume();
  grant.access = response->access();
  if (response->expires_ns() > 0) {
    *expires = std::min(*expires, absl::FromUnixNanos(response->expires_ns()));
  }
  return grant;
}

uint64_t Authorizer::meta_calls() const {
  absl::MutexLock lock(&mu_);
  return meta_calls_;
}

}  // namespace nighfs::proxy
