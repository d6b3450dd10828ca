// MetaServiceImpl's volume and session calls: CreateVolume, ListVolumes, DeleteVolume, Mount,
// Heartbeat, Unmount, and the expiry of sessions that stopped heartbeating.
#include "meta/meta_service_impl.h"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "meta/alloc_gc.h"
#include "meta/principal.h"

namespace nighfs::meta::internal {
namespace {

// Whether `path` is `root` or below it, compared lexically and after resolving the symlinks
// of the parts that exist (so a link inside a root cannot point out of it).
bool Under(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto inside = [](const std::filesystem::path& p, const std::filesystem::path& r) {
    auto [rit, pit] = std::mismatch(r.begin(), r.end(), p.begin(), p.end());
    return rit == r.end() || (std::next(rit) == r.end() && rit->empty());
  };
  const std::filesystem::path lp = path.lexically_normal(), lr = root.lexically_normal();
  if (!inside(lp, lr)) return false;
  std::error_code ec1, ec2;
  const std::filesystem::path cp = std::filesystem::weakly_canonical(lp, ec1);
  const std::filesystem::path cr = std::filesystem::weakly_canonical(lr, ec2);
  return !ec1 && !ec2 && inside(cp, cr);
}

// One message whatever the path is (missing, a file, a link, unreadable): no existence oracle.
absl::Status CheckFileRoot(const std::string& path, const std::vector<std::string>& roots) {
  if (!path.empty() && path.front() == '/') {
    for (const std::string& root : roots) {
      if (Under(path, root)) return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "file:// store ", path, " is outside the folders this server allows for file stores",
      roots.empty() ? " (none: start nighfs-meta with --allow-file-root DIR)"
                    : " (nighfs-meta --allow-file-root)"));
}

}  // namespace

absl::StatusOr<pb::CreateVolumeResponse> MetaServiceImpl::CreateVolume(
    const pb::CreateVolumeRequest& req) {
  RETURN_IF_ERROR(CheckVolumeName(req.name()));
  uint32_t block_size = req.block_size() == 0 ? kDefaultBlockSize : req.block_size();
  if ((block_size & (block_size - 1)) != 0 || block_size < kMinBlockSize ||
      block_size > kMaxBlockSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "block size ", block_size, " must be a power of two from 64 KiB to 64 MiB"));
  }
  absl::StatusOr<blockstore::StoreUrl> url = blockstore::ParseStoreUrl(req.store_url());
  if (!url.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid store URL for volume ", req.name(), ": ", url.status().message()));
  }
  const std::string canonical = url->ToString();
  if (url->scheme == "mem" && !options_.allow_test_stores) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume ", req.name(), ": mem:// stores keep blocks in the metadata server's memory and "
        "lose them when it stops; they are for tests only (nighfs-meta --allow-test-stores)"));
  }

  if (url->scheme == "file" && options_.allowed_file_roots) {
    RETURN_IF_ERROR(CheckFileRoot(url->path, *options_.allowed_file_roots));
  }

  // Reach the store before touching the database: a volume whose blocks cannot be written is
  // useless, and the check may take a while (network), so no lock is held.
  absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> store = options_.open_store(req.store_url());
  if (!store.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot open the block store of volume ",
                                                      req.name(), ": ", store.status().message()));
  }
  if (absl::Status s = (*store)->Check(); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("block store ", (*store)->Describe(),
                                                      " is not usable: ", s.message()));
  }
  const std::string describe = (*store)->Describe();

  ASSIGN_OR_RETURN(pb::CreateVolumeResponse resp, WriteOnce("CreateVolume", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::CreateVolumeResponse> {
    ASSIGN_OR_RETURN(std::optional<VolumeRow> existing, tx.FindVolumeByName(req.name()));
    if (existing) {
      return absl::AlreadyExistsError(absl::StrCat("volume ", req.name(), " already exists"));
    }
    // Block keys are "blk/<id>" relative to the store: two volumes in one store would collide.
    {
      ASSIGN_OR_RETURN(auto st, Query(tx.db, "SELECT name, store_url FROM volumes"));
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        absl::StatusOr<blockstore::StoreUrl> other = blockstore::ParseStoreUrl(st->ColumnText(1));
        if (other.ok() && other->ToString() == canonical) {
          return absl::FailedPreconditionError(absl::StrCat(
              "block store ", describe, " already holds volume ", st->ColumnText(0),
              "; give each volume its own store or prefix"));
        }
      }
    }
    // Ids continue above every id handed out before, so a volume re-created in the store of a
    // deleted one never reuses a key that garbage collection is about to delete.
    ASSIGN_OR_RETURN(int64_t floor, GetMetaInt(tx.db, "block_id_floor", 1));
    ASSIGN_OR_RETURN(int64_t live_max, QueryInt(tx.db, 1, "SELECT MAX(next_block_id) FROM volumes"));
    int64_t next_block_id = std::max<int64_t>({1, floor, live_max});

    RETURN_IF_ERROR(Exec(tx.db,
                         "INSERT INTO volumes (name, block_size, store_url, created_ns, next_ino, "
                         "next_block_id) VALUES (?, ?, ?, ?, ?, ?)",
                         Text{req.name()}, block_size, Text{req.store_url()}, tx.now,
                         kRootIno + 1, next_block_id));
    VolumeRow v;
    v.id = static_cast<uint64_t>(tx.db->LastInsertId());
    v.name = req.name();
    v.block_size = block_size;
    v.store_url = req.store_url();
    v.created_ns = tx.now;

    Inode root;
    root.ino = kRootIno;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    root.atime_ns = root.mtime_ns = root.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.InsertInode(v.id, root, nullptr));
    pb::CreateVolumeResponse r;
    *r.mutable_volume() = v.Proto();
    return r;
  }));
  {
    absl::MutexLock lock(&stores_mu_);
    stores_.try_emplace(req.store_url(), std::shared_ptr<blockstore::BlockStore>(std::move(*store)));
  }
  NIGHFS_LOG(INFO) << "created volume " << req.name() << " (id " << resp.volume().id()
                   << ", block size " << block_size << ") in " << describe;
  return resp;
}

absl::StatusOr<pb::ListVolumesResponse> MetaServiceImpl::ListVolumes(
    const pb::ListVolumesRequest&) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListVolumesResponse> {
    pb::ListVolumesResponse r;
    ASSIGN_OR_RETURN(auto st, Query(tx.db, absl::StrCat("SELECT ", kVolumeCols,
                                                        " FROM volumes ORDER BY id")));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      *r.add_volumes() = ReadVolume(*st).Proto();
    }
    return r;
  });
}

absl::StatusOr<pb::DeleteVolumeResponse> MetaServiceImpl::DeleteVolume(
    const pb::DeleteVolumeRequest& req) {
  const int64_t timeout_ns = absl::ToInt64Nanoseconds(options_.session_timeout);
  return WriteOnce("DeleteVolume", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::DeleteVolumeResponse> {
    ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.name()));
    if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.name()));
    ASSIGN_OR_RETURN(int64_t live, QueryInt(tx.db, 0,
                                            "SELECT COUNT(*) FROM sessions WHERE volume_id = ? "
                                            "AND last_heartbeat_ns >= ?",
                                            v->id, tx.now - timeout_ns));
    if (live > 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "volume ", req.name(), " is mounted (", live, " live session(s)); unmount it first"));
    }
    const uint64_t id = v->id;
    RETURN_IF_ERROR(Exec(tx.db,
                         "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                         "SELECT volume_id, block_id, object_size, ? FROM blocks WHERE volume_id = ? "
                         "AND block_id IS NOT NULL",
                         tx.now, id));
    for (const char* sql : {"DELETE FROM tokens WHERE volume_id = ?",
                            "DELETE FROM sustained WHERE volume_id = ?",
                            "DELETE FROM sessions WHERE volume_id = ?",
                            "DELETE FROM volume_proxy_groups WHERE volume_id = ?",
                            "DELETE FROM blocks WHERE volume_id = ?",
                            "DELETE FROM xattrs WHERE volume_id = ?",
                            "DELETE FROM dentries WHERE volume_id = ?",
                            "DELETE FROM inodes WHERE volume_id = ?"}) {
      RETURN_IF_ERROR(Exec(tx.db, sql, id));
    }
    RETURN_IF_ERROR(EndVolumeAllocations(tx.db, id, tx.now));
    RETURN_IF_ERROR(Exec(tx.db, "INSERT INTO deleted_volumes (id, store_url) VALUES (?, ?)", id,
                         Text{v->store_url}));
    // DeadBlocks answers "all dead" for a volume id up to this one (ids are never reused).
    ASSIGN_OR_RETURN(int64_t highest, GetMetaInt(tx.db, "max_deleted_volume_id", 0));
    RETURN_IF_ERROR(SetMetaInt(tx.db, "max_deleted_volume_id",
                               std::max<int64_t>(highest, static_cast<int64_t>(id))));
    ASSIGN_OR_RETURN(int64_t floor, GetMetaInt(tx.db, "block_id_floor", 1));
    RETURN_IF_ERROR(SetMetaInt(tx.db, "block_id_floor",
                               std::max<int64_t>(floor, static_cast<int64_t>(v->next_block_id))));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM volumes WHERE id = ?", id));
    NIGHFS_LOG(INFO) << "deleted volume " << req.name() << " (id " << id << ")";
    return pb::DeleteVolumeResponse();
  });
}

absl::StatusOr<pb::MountResponse> MetaServiceImpl::Mount(const pb::MountRequest& req) {
  const Principal& who = CurrentPrincipal();
  // The session key is returned, never recorded: a retry derives the same one (tokens.cc).
  const std::string key = DeriveSecret("session", req.request_id(), kSessionKeyBytes);
  ASSIGN_OR_RETURN(
      pb::MountResponse resp,
      WriteOnce("Mount", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::MountResponse> {
        ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume_name()));
        const bool by_token = who.kind == Principal::Kind::kVolumeToken;
        if (by_token && (!v || v->id != who.volume_id)) {
          return absl::PermissionDeniedError(
              absl::StrCat("this token is not valid for volume ", req.volume_name()));
        }
        if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume_name()));
        pb::MountResponse r;
        std::string root_path = "/";
        uint64_t root_ino = kRootIno;
        if (by_token) {
          root_ino = who.root_ino;
          ASSIGN_OR_RETURN(auto st, Query(tx.db, "SELECT root_path FROM tokens WHERE id = ?",
                                          who.token_id));
          ASSIGN_OR_RETURN(bool row, st->Step());
          if (row) root_path = st->ColumnText(0);
        }
        ASSIGN_OR_RETURN(std::optional<Inode> root, tx.FindInode(v->id, root_ino));
        if (!root || !root->IsDir()) {
          return FsError(ENOENT, absl::StrCat("the token's subtree ", root_path, " of volume ",
                                              v->name, " no longer exists"));
        }
        RETURN_IF_ERROR(Exec(tx.db,
                             "INSERT INTO sessions (volume_id, hostname, mount_point, pid, "
                             "created_ns, last_heartbeat_ns, token_id, key_hash) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             v->id, Text{req.hostname()}, Text{req.mount_point()}, req.pid(),
                             tx.now, tx.now, by_token ? who.token_id : 0, Blob{Sha256(key)}));
        r.set_session_id(static_cast<uint64_t>(tx.db->LastInsertId()));
        *r.mutable_volume() = v->Proto();
        *r.mutable_root() = root->Proto();
        r.set_access(!by_token || who.can_write ? pb::ACCESS_WRITE : pb::ACCESS_READ);
        r.set_root_path(root_path);
        r.set_inline_max_bytes(InlineMax(*v));
        NIGHFS_LOG(INFO) << "session " << r.session_id() << ": " << req.hostname() << ":"
                         << req.mount_point() << " (pid " << req.pid() << ") mounted volume "
                         << v->name << (by_token ? absl::StrCat(" with token ", who.token_id,
                                                                " (", root_path, ", ",
                                                                pb::Access_Name(r.access()), ")")
                                                 : std::string(" as admin"));
        return r;
      }));
  resp.set_session_key(key);
  // Not in the recorded reply: the server's setting now, also for a retried Mount.
  resp.set_namespace_sync_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.namespace_sync_interval)));
  return resp;
}

absl::StatusOr<pb::HeartbeatResponse> MetaServiceImpl::Heartbeat(const pb::HeartbeatRequest& req) {
  const int64_t timeout_ns = absl::ToInt64Nanoseconds(options_.session_timeout);
  return Write([&](Tx& tx) -> absl::StatusOr<pb::HeartbeatResponse> {
    ASSIGN_OR_RETURN(int64_t last, QueryInt(tx.db, std::numeric_limits<int64_t>::min(),
                                            "SELECT last_heartbeat_ns FROM sessions WHERE id = ?",
                                            req.session_id()));
    if (last == std::numeric_limits<int64_t>::min()) {
      return absl::NotFoundError(absl::StrCat("no session ", req.session_id(),
                                              " (expired or unmounted); mount again"));
    }
    if (last < tx.now - timeout_ns) {
      // Already expired, only not yet collected: the files it kept open may be gone for good
      // any moment, so it must not come back to life.
      RETURN_IF_ERROR(tx.EndSession(req.session_id()));
      tx.commit_on_error = true;
      return absl::NotFoundError(absl::StrCat("session ", req.session_id(),
                                              " expired; mount again"));
    }
    RETURN_IF_ERROR(Exec(tx.db, "UPDATE sessions SET last_heartbeat_ns = ? WHERE id = ?", tx.now,
                         req.session_id()));
    // What the mount routes over may have changed (proxy groups): one primary-key read.
    ASSIGN_OR_RETURN(int64_t routes,
                     QueryInt(tx.db, 0,
                              "SELECT v.routes_version FROM sessions s JOIN volumes v "
                              "ON v.id = s.volume_id WHERE s.id = ?",
                              req.session_id()));
    pb::HeartbeatResponse r;
    r.set_routes_version(static_cast<uint64_t>(routes));
    return r;
  });
}

absl::StatusOr<pb::UnmountResponse> MetaServiceImpl::Unmount(const pb::UnmountRequest& req) {
  return Write([&](Tx& tx) -> absl::StatusOr<pb::UnmountResponse> {
    // Unmounting an expired session succeeds: the goal, no session, holds.
    RETURN_IF_ERROR(tx.EndSession(req.session_id()));
    if (tx.db->Changes() > 0) NIGHFS_LOG(INFO) << "session " << req.session_id() << " unmounted";
    return pb::UnmountResponse();
  });
}

absl::StatusOr<int64_t> MetaServiceImpl::ExpireSessionsOnce() {
  const int64_t timeout_ns = absl::ToInt64Nanoseconds(options_.session_timeout);
  return Write([&](Tx& tx) -> absl::StatusOr<int64_t> {
    std::vector<uint64_t> stale;
    {
      ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                      "SELECT id FROM sessions WHERE last_heartbeat_ns < ?",
                                      tx.now - timeout_ns));
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        stale.push_back(static_cast<uint64_t>(st->ColumnInt64(0)));
      }
    }
    for (uint64_t id : stale) {
      RETURN_IF_ERROR(tx.EndSession(id));
      NIGHFS_LOG(INFO) << "session " << id << " expired (no heartbeat for "
                       << absl::FormatDuration(options_.session_timeout) << ")";
    }
    return static_cast<int64_t>(stale.size());
  });
}

}  // namespace nighfs::meta::internal
