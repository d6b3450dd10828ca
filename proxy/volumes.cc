#include "proxy/volumes.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace nighfs::proxy {

StoreOpener CredentialStoreOpener(blockstore::StoreCredentials credentials) {
  return [credentials = std::move(credentials)](const std::string& url)
             -> absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> {
    absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> store =
        blockstore::OpenBlockStore(url, credentials);
    if (!store.ok()) return store.status();
    return std::shared_ptr<blockstore::BlockStore>(*std::move(store));
  };
}

Volumes::Volumes(Journal* journal, StoreOpener opener)
    : journal_(journal), opener_(std::move(opener)) {}

absl::Status Volumes::Load() {
  absl::StatusOr<std::vector<VolumeRow>> rows = journal_->LoadVolumes();
  if (!rows.ok()) return rows.status();
  absl::MutexLock lock(&mu_);
  for (VolumeRow& row : *rows) {
    const uint64_t id = row.id;
    volumes_[id] = Known{std::move(row), nullptr};
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> Volumes::OpenLocked(Known& known) {
  if (known.store != nullptr) return known.store;
  // Opening contacts nothing (OpenBlockStore does not), so holding the lock is cheap.
  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> store = opener_(known.row.store_url);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("cannot open the store of volume ", known.row.name, ": ",
                                     store.status().message()));
  }
  NIGHFS_LOG(INFO) << "proxy: volume " << known.row.name << " (id " << known.row.id
                   << ") uses store " << (*store)->Describe();
  known.store = *store;
  return known.store;
}

absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> Volumes::StoreFor(
    const pb::Volume& volume) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume.id());
  if (it == volumes_.end() || it->second.row.store_url != volume.store_url() ||
      it->second.row.name != volume.name()) {
    VolumeRow row{volume.id(), volume.name(), volume.store_url()};
    if (absl::Status s = journal_->PutVolume(row); !s.ok()) return s;
    if (it != volumes_.end() && it->second.row.store_url != volume.store_url()) {
      NIGHFS_LOG(WARNING) << "proxy: volume " << volume.name() << " moved to another store URL";
    }
    it = volumes_.insert_or_assign(volume.id(), Known{std::move(row), nullptr}).first;
  }
  return OpenLocked(it->second);
}

absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> Volumes::StoreForId(uint64_t volume_id) {
  absl::MutexLock lock(&mu_);
  auto it = volumes_.find(volume_id);
  if (it == volumes_.end()) {
    return absl::NotFoundError(absl::StrCat("volume ", volume_id, " is unknown to this proxy"));
  }
  return OpenLocked(it->second);
}

}  // namespace nighfs::proxy
