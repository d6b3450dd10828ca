// Who may use which volume through this proxy: each client's bearer secret is checked with the
// metadata server (AuthorizeBlockAccess) and the answer cached per (secret hash, volume) for a
// short TTL, refusals (401/403) as well, so a flood of bad tokens does not flood the server.
#ifndef NIGHFS_PROXY_AUTHORIZER_H_
#define NIGHFS_PROXY_AUTHORIZER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "metadata_client/meta_api.h"

namespace nighfs::proxy {

// What a secret may do on a volume.
struct Grant {
  pb::Volume volume;
  pb::Access access = pb::ACCESS_UNSPECIFIED;  // READ or WRITE
  bool may_write() const { return access == pb::ACCESS_WRITE; }
};

struct AuthorizerOptions {
  MetaApi* meta = nullptr;    // required; must outlive the authorizer
  std::string proxy_address;  // sent as AuthorizeBlockAccessRequest.proxy_address
  absl::Duration ttl = absl::Seconds(10);  // never past the token's expiry
  size_t max_entries = 100'000;            // the cache is emptied beyond this
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// Thread-safe.
class Authorizer {
 public:
  explicit Authorizer(AuthorizerOptions options) : options_(std::move(options)) {}

  // The grant of `secret` on `volume` (a name). Unauthenticated for no, unknown, expired or
  // revoked secrets; PermissionDenied for a secret of another volume (or of no volume);
  // NotFound for an unknown volume; the metadata server's failure (e.g. Unavailable, not
  // cached) when it could not answer.
  absl::StatusOr<Grant> Authorize(std::string_view secret, std::string_view volume);

  // AuthorizeBlockAccess calls made so far (for tests).
  uint64_t meta_calls() const;

 private:
  struct Entry {
    absl::StatusOr<Grant> answer;
    absl::Time expires;
  };
  // One question to the metadata server per (secret, volume) at a time: the others wait for it.
  struct Pending {
    absl::Notification done;
    absl::StatusOr<Grant> answer;
  };
  absl::StatusOr<Grant> Ask(std::string_view secret, std::string_view volume, absl::Time now,
                            absl::Time* expires);
  const AuthorizerOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> cache_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Pending>> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t meta_calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_AUTHORIZER_H_
