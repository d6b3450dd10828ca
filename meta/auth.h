// Who may call nighfs-meta, and what each caller may do (docs/SECURITY.md). Every MetaService
// call over HTTP goes through MetaAuthorizer before the service sees it:
//   1. authentication: "Authorization: Bearer <token>" must be the admin token or a live volume
//      or proxy token; none, an unknown, expired or revoked one is 401 (Unauthenticated);
//   2. authorization, generic over the request's fields (protobuf reflection, so a future
//      request is covered without a list to keep up to date): see Authorize();
//   3. the call runs under a ScopedPrincipal (meta/principal.h) for the checks that need the
//      database (POSIX permissions, Mount's subtree root).
// In-process callers of MetaService (tests, tools) bypass all of this and run as kInternal.
#ifndef NIGHFS_META_AUTH_H_
#define NIGHFS_META_AUTH_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/connect.h"
#include "common/http_server.h"
#include "google/protobuf/message.h"
#include "meta/meta_service.h"
#include "meta/principal.h"

namespace nighfs::meta {

inline constexpr std::string_view kAdminTokenPrefix = "nighfs-admin-";
// The header a mount sends its session key in (hex), with every call after Mount.
inline constexpr std::string_view kSessionHeader = "Nighfs-Session";

// Reads the admin token from `path`, first creating it when missing (or when `rotate`): a new
// 256-bit random "nighfs-admin-<64 hex>" in a file made 0600 whatever the umask (also one
// that existed with a wider mode), in a folder made 0700 when this call creates it. *created says whether it
// was written now. Errors name the path, never the token.
absl::StatusOr<std::string> LoadOrCreateAdminToken(const std::string& path, bool rotate,
                                                   bool* created);

struct MetaAuthOptions {
  // The admin token (kept only as its SHA-256). Empty: no admin calls over HTTP.
  std::string admin_token;
  // How long a verified volume token is trusted without looking at the database again: a
  // revocation takes effect within this time (at most 30 s promised; docs/SECURITY.md).
  absl::Duration cache_ttl = absl::Seconds(10);
  size_t cache_entries = 10000;
};

class MetaAuthorizer {
 public:
  // `service` must outlive this object.
  MetaAuthorizer(MetaService* service, MetaAuthOptions options);

  // Step 1: the principal the request's bearer token stands for, or Unauthenticated;
  // *volume_name gets a volume token's volume name.
  absl::StatusOr<Principal> Authenticate(const ServerRequest& http,
                                         std::string* volume_name = nullptr);

  // Step 2. The admin may do everything; a proxy token only the proxy calls
  // (IsProxyMethod); for a volume token:
  //  - the proxy calls are PermissionDenied;
  //  - admin-only methods (IsAdminOnly) are PermissionDenied;
  //  - a request naming a volume (`volume_id`, or Mount's `volume_name`) must name the
  //    token's; one naming none and no session either is refused (default deny);
  //  - a mutation (a request with `request_id`, except Mount) needs write access;
  //  - every inode-number field (`ino`, `parent`, `*_ino`, `*_parent`) must lie in the token's
  //    subtree (MetaService::InSubtree);
  //  - a nonzero `session_id` needs the session's key in header Nighfs-Session and the
  //    session must have been opened with this token (sets principal->session_id).
  // `volume_name` is what Authenticate returned.
  absl::Status Authorize(std::string_view method, const ServerRequest& http,
                         const google::protobuf::Message& request, std::string_view volume_name,
                         Principal* principal);

  static bool IsAdminOnly(std::string_view method);
  // The calls a proxy token may make (and the admin; never a volume token).
  static bool IsProxyMethod(std::string_view method);
  // Whether a volume token needs write access for `request` (see Authorize).
  static bool NeedsWrite(std::string_view method, const google::protobuf::Message& request);

 private:
  absl::StatusOr<TokenGrant> LookupToken(const std::string& secret);
  // MetaService::CheckSessionKey, with successes remembered for cache_ttl (session ids are
  // never reused, so a remembered binding cannot stand for another session).
  absl::Status CheckSession(uint64_t session_id, const std::string& key, uint64_t token_id);

  MetaService* const service_;
  const std::string admin_hash_;
  const MetaAuthOptions options_;
  struct Cached {
    TokenGrant grant;
    absl::Time fetched;
  };
  absl::Mutex mu_;
  // By the SHA-256 of the secret: the cache holds no secret either.
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
  struct Bound {
    std::string key_hash;
    uint64_t token_id;
    absl::Time fetched;
  };
  absl::flat_hash_map<uint64_t, Bound> sessions_ ABSL_GUARDED_BY(mu_);
};

// Serves `service` on `router` under /nighfs.meta.v1.MetaService/*, every call authenticated
// and authorized by `auth`. Both must outlive the router.
void RegisterMetaServiceWithAuth(MetaService* service, MetaAuthorizer* auth,
                                 ConnectRouter* router);

}  // namespace nighfs::meta

#endif  // NIGHFS_META_AUTH_H_
