// Who the metadata call running on this thread is made by: set by the RPC layer once a request's
// credentials are checked (meta/auth.h), read by the calls that enforce access (volume, subtree,
// read-only, POSIX permissions; docs/SECURITY.md).
//
// A thread-local rather than a parameter of every MetaApi method: MetaApi is also the mount's
// client interface and the in-process interface of tests and tools, which have no principal;
// every call runs start to end on the thread that received it (MetaServiceImpl::Write/Read run
// the transaction on the calling thread), so the scope below covers the whole call.
#ifndef NIGHFS_META_PRINCIPAL_H_
#define NIGHFS_META_PRINCIPAL_H_

#include <cstdint>
#include <string>

namespace nighfs::meta {

struct Principal {
  enum class Kind {
    // An in-process caller holding the MetaService object (tests, tools): trusted fully; a
    // request without `caller` acts as root.
    kInternal,
    // The admin token: volumes, tokens and stores; trusted as kInternal.
    kAdmin,
    // A volume token: only its volume, only its subtree, writes only with write access; every
    // namespace call must carry `caller`, whose POSIX permissions are checked.
    kVolumeToken,
    // A proxy token (ACCESS_PROXY): bound to no volume; may call only the proxy RPCs
    // (AuthorizeBlockAccess, DeadBlocks). token_id is set, volume_id is 0.
    kProxy,
  };
  Kind kind = Kind::kInternal;
  uint64_t token_id = 0;
  uint64_t volume_id = 0;
  bool can_write = true;
  uint64_t root_ino = 1;  // the token's subtree root (1 = the volume's root)
  uint64_t session_id = 0;  // the session whose key came with the request; 0 = none
  // The request's changer_session_id when the key that came with it is that session's; 0 =
  // none (a session that fails the check is not an error there; meta/dir_writers.h).
  uint64_t changer_session_id = 0;
};

// The principal of the call running on this thread (kInternal when no scope is active).
const Principal& CurrentPrincipal();

// Sets the current principal for its lifetime (restores the previous one after).
class ScopedPrincipal {
 public:
  explicit ScopedPrincipal(const Principal& principal);
  ~ScopedPrincipal();
  ScopedPrincipal(const ScopedPrincipal&) = delete;
  ScopedPrincipal& operator=(const ScopedPrincipal&) = delete;

 private:
  const Principal* previous_;
  Principal principal_;
};

}  // namespace nighfs::meta

#endif  // NIGHFS_META_PRINCIPAL_H_
