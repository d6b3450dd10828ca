// The block stores of the volumes this proxy serves, opened once each from the store URL the
// metadata server gave (never from a client) with the proxy's own credentials (--creds-file).
// Volumes are remembered in the journal, so the writeback finds their stores after a restart
// before any client has come back.
#ifndef NIGHFS_PROXY_VOLUMES_H_
#define NIGHFS_PROXY_VOLUMES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "blockstore/block_store.h"
#include "metadata_client/meta_api.h"
#include "proxy/journal.h"

namespace nighfs::proxy {

// Opens the store of a URL (the seam tests replace).
using StoreOpener =
    std::function<absl::StatusOr<std::shared_ptr<blockstore::BlockStore>>(const std::string& url)>;

// OpenBlockStore with these credentials.
StoreOpener CredentialStoreOpener(blockstore::StoreCredentials credentials);

// Thread-safe.
class Volumes {
 public:
  // `journal` must outlive this.
  Volumes(Journal* journal, StoreOpener opener);

  // Loads the volumes the journal remembers (their stores open lazily).
  absl::Status Load();
  // The store of a volume the metadata server just described; recorded in the journal first.
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> StoreFor(const pb::Volume& volume);
  // The store of a volume met before (now or in an earlier run); NotFound if never met.
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> StoreForId(uint64_t volume_id);

 private:
  struct Known {
    VolumeRow row;
    std::shared_ptr<blockstore::BlockStore> store;  // null until opened
  };
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> OpenLocked(Known& known)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Journal* const journal_;
  const StoreOpener opener_;
  absl::Mutex mu_;
  absl::flat_hash_map<uint64_t, Known> volumes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nighfs::proxy

#endif  // NIGHFS_PROXY_VOLUMES_H_
