#include "meta/meta_service.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/errno_status.h"
#include "common/logging.h"
#include "common/retry.h"
#include "common/status_macros.h"
#include "meta/alloc_gc.h"
#include "meta/request_dedup.h"
#include "meta/schema.h"
#include "meta/sql.h"
#include "meta/sql_util.h"

namespace nighfs::meta {
namespace {

using sql::Connection;
using sql::Statement;

constexpr uint64_t kRootIno = 1;
constexpr uint32_t kMaxLinks = 65000;
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxSymlinkBytes = 4095;
constexpr size_t kMaxVolumeNameBytes = 64;
constexpr size_t kMaxXattrNameBytes = 255;
constexpr size_t kMaxXattrValueBytes = 64 * 1024;
constexpr uint32_t kDefaultBlockSize = 4u << 20;
constexpr uint32_t kMinBlockSize = 64u << 10;
constexpr uint32_t kMaxBlockSize = 64u << 20;
constexpr uint32_t kReadDirDefaultLimit = 1000;
constexpr uint32_t kReadDirMaxLimit = 5000;
constexpr uint32_t kMaxAllocBlockIds = 4096;
constexpr uint32_t kRenameNoReplace = 1;
constexpr uint32_t kRenameExchange = 2;
constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;
constexpr uint64_t kMaxFileSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr int kGcPageSize = 1000;
// Deeper than any real tree; reaching it means the dentries form a cycle.
constexpr int kMaxTreeDepth = 1 << 20;

// A file-system error carrying `err`. The code is never one that clients retry (ENODATA and
// EMLINK map to ResourceExhausted, ESTALE to Aborted): the answer is final, the errno says why.
absl::Status FsError(int err, std::string_view message) {
  absl::Status s = PosixError(err, absl::string_view(message.data(), message.size()));
  if (IsRetryable(s)) {
    absl::Status t(absl::StatusCode::kFailedPrecondition, std::string(message));
    SetErrnoPayload(t, err);
    return t;
  }
  return s;
}

std::string Quote(std::string_view name) {
  return absl::StrCat("'", absl::CHexEscape(absl::string_view(name.data(), name.size())), "'");
}

// Integers kept in the meta table (stored as text, as the schema version is).
absl::StatusOr<int64_t> GetMetaInt(Connection* db, std::string_view key, int64_t fallback) {
  ASSIGN_OR_RETURN(auto st, Query(db, "SELECT value FROM meta WHERE key = ?", Text{key}));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(st->ColumnText(0), &v)) {
    return absl::DataLossError(absl::StrCat("meta.", std::string(key), " is not a number"));
  }
  return v;
}

absl::Status SetMetaInt(Connection* db, std::string_view key, int64_t value) {
  return Exec(db,
              "INSERT INTO meta (key, value) VALUES (?, ?) "
              "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
              Text{key}, Text{std::to_string(value)});
}

struct Inode {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t nlink = 0;
  uint64_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  // Sum of the valid lengths of the inode's blocks, kept up to date with its block map.
  uint64_t stored_bytes = 0;

  bool IsDir() const { return S_ISDIR(mode); }
  bool IsReg() const { return S_ISREG(mode); }
  bool IsLnk() const { return S_ISLNK(mode); }

  void ToProto(pb::Attr* a) const {
    a->set_ino(ino);
    a->set_mode(mode);
    a->set_uid(uid);
    a->set_gid(gid);
    a->set_size(size);
    a->set_nlink(nlink);
    a->set_rdev(rdev);
    a->set_atime_ns(atime_ns);
    a->set_mtime_ns(mtime_ns);
    a->set_ctime_ns(ctime_ns);
    a->set_stored_bytes(stored_bytes);
  }
  pb::Attr Proto() const {
    pb::Attr a;
    ToProto(&a);
    return a;
  }
};

// Eleven columns in this order, read by ReadInode.
constexpr char kInodeCols[] =
    "ino, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, stored_bytes";

Inode ReadInode(const Statement& st, int c) {
  Inode n;
  n.ino = static_cast<uint64_t>(st.ColumnInt64(c + 0));
  n.mode = static_cast<uint32_t>(st.ColumnInt64(c + 1));
  n.uid = static_cast<uint32_t>(st.ColumnInt64(c + 2));
  n.gid = static_cast<uint32_t>(st.ColumnInt64(c + 3));
  n.size = static_cast<uint64_t>(st.ColumnInt64(c + 4));
  n.nlink = static_cast<uint32_t>(st.ColumnInt64(c + 5));
  n.rdev = static_cast<uint64_t>(st.ColumnInt64(c + 6));
  n.atime_ns = st.ColumnInt64(c + 7);
  n.mtime_ns = st.ColumnInt64(c + 8);
  n.ctime_ns = st.ColumnInt64(c + 9);
  n.stored_bytes = static_cast<uint64_t>(st.ColumnInt64(c + 10));
  return n;
}

struct VolumeRow {
  uint64_t id = 0;
  std::string name;
  uint32_t block_size = 0;
  std::string store_url;
  int64_t created_ns = 0;
  uint64_t next_ino = 0;
  uint64_t next_block_id = 0;

  pb::Volume Proto() const {
    pb::Volume v;
    v.set_id(id);
    v.set_name(name);
    v.set_block_size(block_size);
    v.set_store_url(store_url);
    v.set_created_ns(created_ns);
    return v;
  }
};

constexpr char kVolumeCols[] =
    "id, name, block_size, store_url, created_ns, next_ino, next_block_id";

VolumeRow ReadVolume(const Statement& st) {
  VolumeRow v;
  v.id = static_cast<uint64_t>(st.ColumnInt64(0));
  v.name = st.ColumnText(1);
  v.block_size = static_cast<uint32_t>(st.ColumnInt64(2));
  v.store_url = st.ColumnText(3);
  v.created_ns = st.ColumnInt64(4);
  v.next_ino = static_cast<uint64_t>(st.ColumnInt64(5));
  v.next_block_id = static_cast<uint64_t>(st.ColumnInt64(6));
  return v;
}

struct Dentry {
  int64_t id = 0;
  uint64_t ino = 0;
};

absl::Status CheckName(std::string_view name) {
  if (name.empty() || name == "." || name == "..") {
    return FsError(EINVAL, absl::StrCat("invalid name ", Quote(name)));
  }
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return FsError(EINVAL, absl::StrCat("name ", Quote(name), " contains '/' or NUL"));
  }
  if (name.size() > kMaxNameBytes) {
    return FsError(ENAMETOOLONG, absl::StrCat("name of ", name.size(), " bytes is longer than ",
                                              kMaxNameBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckVolumeName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= kMaxVolumeNameBytes;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-')) {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat("invalid volume name ", Quote(name),
                                                   ": use 1 to 64 of A-Z a-z 0-9 . _ -"));
  }
  return absl::OkStatus();
}

// One transaction's view: the connection and the single "now" every timestamp of the operation
// uses. The helpers are the building blocks the operations share.
struct Tx {
  Connection* db;
  int64_t now;
  // Set by an operation that fails but must keep what it wrote (a stale session it expired,
  // blocks it queued for GC).
  bool commit_on_error = false;

  absl::StatusOr<VolumeRow> GetVolume(uint64_t volume_id) {
    ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kVolumeCols,
                                                     " FROM volumes WHERE id = ?"),
                                    volume_id));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::NotFoundError(absl::StrCat("no volume with id ", volume_id));
    return ReadVolume(*st);
  }

  absl::StatusOr<std::optional<VolumeRow>> FindVolumeByName(std::string_view name) {
    ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kVolumeCols,
                                                     " FROM volumes WHERE name = ?"),
                                    Text{name}));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<VolumeRow>();
    return std::optional<VolumeRow>(ReadVolume(*st));
  }

  absl::StatusOr<std::optional<Inode>> FindInode(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kInodeCols,
                                                     " FROM inodes WHERE volume_id = ? AND ino = ?"),
                                    vol, ino));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<Inode>();
    return std::optional<Inode>(ReadInode(*st, 0));
  }

  absl::StatusOr<Inode> GetInode(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
    if (!n) return FsError(ENOENT, absl::StrCat("no inode ", ino, " in volume ", vol));
    return *n;
  }

  absl::StatusOr<Inode> GetDir(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(Inode n, GetInode(vol, ino));
    if (!n.IsDir()) return FsError(ENOTDIR, absl::StrCat("inode ", ino, " is not a directory"));
    return n;
  }

  // The inode a directory entry names; a dangling entry is corruption, not ENOENT.
  absl::StatusOr<Inode> GetEntryInode(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
    if (!n) return absl::InternalError(absl::StrCat("directory entry names missing inode ", ino));
    return *n;
  }

  absl::Status UpdateInode(uint64_t vol, const Inode& n) {
    return Exec(db,
                "UPDATE inodes SET mode = ?, uid = ?, gid = ?, size = ?, nlink = ?, rdev = ?, "
                "atime_ns = ?, mtime_ns = ?, ctime_ns = ?, stored_bytes = ? "
                "WHERE volume_id = ? AND ino = ?",
                n.mode, n.uid, n.gid, n.size, n.nlink, n.rdev, n.atime_ns, n.mtime_ns,
                n.ctime_ns, n.stored_bytes, vol, n.ino);
  }

  absl::Status InsertInode(uint64_t vol, const Inode& n, const std::string* target) {
    ASSIGN_OR_RETURN(auto st, Query(db,
                                    "INSERT INTO inodes (volume_id, ino, mode, uid, gid, size, "
                                    "nlink, rdev, atime_ns, mtime_ns, ctime_ns, target) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    vol, n.ino, n.mode, n.uid, n.gid, n.size, n.nlink, n.rdev,
                                    n.atime_ns, n.mtime_ns, n.ctime_ns));
    if (target != nullptr) {
      st->BindBlob(12, *target);
    } else {
      st->BindNull(12);
    }
    return st->Run();
  }

  absl::StatusOr<std::optional<Dentry>> FindDentry(uint64_t vol, uint64_t parent,
                                                   std::string_view name) {
    ASSIGN_OR_RETURN(auto st, Query(db,
                                    "SELECT id, ino FROM dentries "
                                    "WHERE volume_id = ? AND parent = ? AND name = ?",
                                    vol, parent, Blob{name}));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<Dentry>();
    return std::optional<Dentry>(
        Dentry{st->ColumnInt64(0), static_cast<uint64_t>(st->ColumnInt64(1))});
  }

  // The entry `name` in `parent`; ENOENT when there is none.
  absl::StatusOr<Dentry> GetDentry(uint64_t vol, uint64_t parent, std::string_view name) {
    ASSIGN_OR_RETURN(std::optional<Dentry> d, FindDentry(vol, parent, name));
    if (!d) {
      return FsError(ENOENT, absl::StrCat("no entry ", Quote(name), " in directory ",
                                          parent));
    }
    return *d;
  }

  absl::Status InsertDentry(uint64_t vol, uint64_t parent, std::string_view name, uint64_t ino) {
    return Exec(db, "INSERT INTO dentries (volume_id, parent, name, ino) VALUES (?, ?, ?, ?)",
                vol, parent, Blob{name}, ino);
  }

  absl::StatusOr<bool> DirIsEmpty(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(int64_t any, QueryInt(db, 0,
                                           "SELECT 1 FROM dentries WHERE volume_id = ? AND "
                                           "parent = ? LIMIT 1",
                                           vol, ino));
    return any == 0;
  }

  absl::StatusOr<uint64_t> AllocIno(uint64_t vol) {
    ASSIGN_OR_RETURN(int64_t next, QueryInt(db, -1,
                                            "SELECT next_ino FROM volumes WHERE id = ?", vol));
    if (next < 0) return absl::NotFoundError(absl::StrCat("no volume with id ", vol));
    RETURN_IF_ERROR(Exec(db, "UPDATE volumes SET next_ino = next_ino + 1 WHERE id = ?", vol));
    return static_cast<uint64_t>(next);
  }

  // True if `ancestor` is `ino` or one of its ancestors. Directories have exactly one name, so
  // the walk up the dentries is unique.
  absl::StatusOr<bool> IsAncestorOrSelf(uint64_t vol, uint64_t ancestor, uint64_t ino) {
    uint64_t cur = ino;
    for (int depth = 0; depth < kMaxTreeDepth; ++depth) {
      if (cur == ancestor) return true;
      if (cur == kRootIno) return false;
      ASSIGN_OR_RETURN(int64_t parent, QueryInt(db, 0,
                                                "SELECT parent FROM dentries WHERE "
                                                "volume_id = ? AND ino = ? LIMIT 1",
                                                vol, cur));
      if (parent == 0) return false;  // detached (an open, unlinked inode)
      cur = static_cast<uint64_t>(parent);
    }
    return absl::InternalError(absl::StrCat("directory cycle above inode ", ino));
  }

  absl::Status QueueBlocksOfInode(uint64_t vol, uint64_t ino) {
    return Exec(db,
                "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                "SELECT volume_id, block_id, object_size, ? FROM blocks "
                "WHERE volume_id = ? AND ino = ?",
                now, vol, ino);
  }

  absl::Status QueueBlock(uint64_t vol, uint64_t block_id, uint64_t object_size) {
    return Exec(db,
                "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (volume_id, block_id) DO NOTHING",
                vol, block_id, object_size, now);
  }

  // Deletes an inode with its xattrs; its blocks go to garbage collection. The caller has
  // removed every name of it (and, for a directory, checked it is empty).
  absl::Status FreeInode(uint64_t vol, uint64_t ino) {
    RETURN_IF_ERROR(QueueBlocksOfInode(vol, ino));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ?", vol, ino));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM xattrs WHERE volume_id = ? AND ino = ?", vol, ino));
    RETURN_IF_ERROR(Exec(db, "DELETE FROM sustained WHERE volume_id = ? AND ino = ?", vol, ino));
    return Exec(db, "DELETE FROM inodes WHERE volume_id = ? AND ino = ?", vol, ino);
  }

  // Frees an inode that has no name and no session keeping it open.
  absl::Status FreeIfOrphan(uint64_t vol, uint64_t ino) {
    ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
    if (!n || n->nlink > 0) return absl::OkStatus();
    ASSIGN_OR_RETURN(int64_t held, QueryInt(db, 0,
                                            "SELECT 1 FROM sustained WHERE volume_id = ? AND "
                                            "ino = ? LIMIT 1",
                                            vol, ino));
    if (held != 0) return absl::OkStatus();
    return FreeInode(vol, ino);
  }

  absl::Status CheckLiveSession(uint64_t session_id, uint64_t vol, absl::Duration timeout) {
    ASSIGN_OR_RETURN(auto st, Query(db,
                                    "SELECT volume_id, last_heartbeat_ns FROM sessions "
                                    "WHERE id = ?",
                                    session_id));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row || static_cast<uint64_t>(st->ColumnInt64(0)) != vol ||
        st->ColumnInt64(1) < now - absl::ToInt64Nanoseconds(timeout)) {
      return FsError(ESTALE, absl::StrCat("session ", session_id, " is not live on volume ", vol,
                                          " (expired or unmounted); mount again"));
    }
    return absl::OkStatus();
  }

  // Removes one link of a non-directory inode (its name is already gone). At zero links the
  // inode is freed, or kept for `session_id` when `sustain`. Returns the inode after.
  absl::StatusOr<Inode> DropLink(uint64_t vol, Inode n, uint64_t session_id, bool sustain,
                                 absl::Duration session_timeout) {
    if (n.nlink == 0) {
      return absl::InternalError(absl::StrCat("inode ", n.ino, " has a name but nlink 0"));
    }
    n.nlink -= 1;
    n.ctime_ns = now;
    if (n.nlink == 0 && !sustain) {
      RETURN_IF_ERROR(FreeInode(vol, n.ino));
      n.stored_bytes = 0;  // its blocks are garbage now
      return n;
    }
    if (n.nlink == 0) {
      RETURN_IF_ERROR(CheckLiveSession(session_id, vol, session_timeout));
      RETURN_IF_ERROR(Exec(db,
                           "INSERT INTO sustained (session_id, volume_id, ino) VALUES (?, ?, ?) "
                           "ON CONFLICT (session_id, volume_id, ino) DO NOTHING",
                           session_id, vol, n.ino));
    }
    RETURN_IF_ERROR(UpdateInode(vol, n));
    return n;
  }

  // Deletes a session and frees the unnamed inodes only it kept alive.
  absl::Status EndSession(uint64_t session_id) {
    std::vector<std::pair<uint64_t, uint64_t>> held;
    {
      ASSIGN_OR_RETURN(auto st, Query(db,
                                      "SELECT volume_id, ino FROM sustained WHERE session_id = ?",
                                      session_id));
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        held.emplace_back(st->ColumnInt64(0), st->ColumnInt64(1));
      }
    }
    RETURN_IF_ERROR(Exec(db, "DELETE FROM sustained WHERE session_id = ?", session_id));
    for (const auto& [vol, ino] : held) RETURN_IF_ERROR(FreeIfOrphan(vol, ino));
    RETURN_IF_ERROR(EndSessionAllocations(db, session_id, now));
    return Exec(db, "DELETE FROM sessions WHERE id = ?", session_id);
  }
};

class MetaServiceImpl final : public MetaService {
 public:
  MetaServiceImpl(MetaServiceOptions options, std::unique_ptr<Connection> writer,
                  std::vector<std::unique_ptr<Connection>> readers, int lock_fd)
      : options_(std::move(options)), lock_fd_(lock_fd), writer_(std::move(writer)),
        idle_readers_(std::move(readers)) {
    use_readers_ = !idle_readers_.empty();
    if (options_.run_background) background_ = std::thread([this] { BackgroundLoop(); });
  }

  ~MetaServiceImpl() override {
    {
      absl::MutexLock lock(&bg_mu_);
      stop_ = true;
    }
    if (background_.joinable()) background_.join();
    {
      absl::MutexLock lock(&write_mu_);
      writer_.reset();
    }
    {
      absl::MutexLock lock(&pool_mu_);
      idle_readers_.clear();
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  absl::StatusOr<pb::CreateVolumeResponse> CreateVolume(const pb::CreateVolumeRequest& req) override;
  absl::StatusOr<pb::ListVolumesResponse> ListVolumes(const pb::ListVolumesRequest& req) override;
  absl::StatusOr<pb::DeleteVolumeResponse> DeleteVolume(const pb::DeleteVolumeRequest& req) override;
  absl::StatusOr<pb::MountResponse> Mount(const pb::MountRequest& req) override;
  absl::StatusOr<pb::HeartbeatResponse> Heartbeat(const pb::HeartbeatRequest& req) override;
  absl::StatusOr<pb::UnmountResponse> Unmount(const pb::UnmountRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Lookup(const pb::LookupRequest& req) override;
  absl::StatusOr<pb::AttrResponse> GetAttr(const pb::GetAttrRequest& req) override;
  absl::StatusOr<pb::AttrResponse> SetAttr(const pb::SetAttrRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Mknod(const pb::MknodRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Mkdir(const pb::MkdirRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Symlink(const pb::SymlinkRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Link(const pb::LinkRequest& req) override;
  absl::StatusOr<pb::UnlinkResponse> Unlink(const pb::UnlinkRequest& req) override;
  absl::StatusOr<pb::RmdirResponse> Rmdir(const pb::RmdirRequest& req) override;
  absl::StatusOr<pb::RenameResponse> Rename(const pb::RenameRequest& req) override;
  absl::StatusOr<pb::ReadDirResponse> ReadDir(const pb::ReadDirRequest& req) override;
  absl::StatusOr<pb::ReadlinkResponse> Readlink(const pb::ReadlinkRequest& req) override;
  absl::StatusOr<pb::GetBlocksResponse> GetBlocks(const pb::GetBlocksRequest& req) override;
  absl::StatusOr<pb::AllocBlockIdsResponse> AllocBlockIds(const pb::AllocBlockIdsRequest& req) override;
  absl::StatusOr<pb::CommitBlocksResponse> CommitBlocks(const pb::CommitBlocksRequest& req) override;
  absl::StatusOr<pb::ReleaseResponse> Release(const pb::ReleaseRequest& req) override;
  absl::StatusOr<pb::SetXattrResponse> SetXattr(const pb::SetXattrRequest& req) override;
  absl::StatusOr<pb::GetXattrResponse> GetXattr(const pb::GetXattrRequest& req) override;
  absl::StatusOr<pb::ListXattrResponse> ListXattr(const pb::ListXattrRequest& req) override;
  absl::StatusOr<pb::RemoveXattrResponse> RemoveXattr(const pb::RemoveXattrRequest& req) override;
  absl::StatusOr<pb::StatFsResponse> StatFs(const pb::StatFsRequest& req) override;

  absl::StatusOr<int64_t> RunGcOnce() override;
  absl::StatusOr<int64_t> ExpireSessionsOnce() override;
  absl::StatusOr<int64_t> ExpireRequestRepliesOnce() override;

 private:
  int64_t Now() const { return options_.now_ns(); }

  // Runs `fn` in one write transaction: committed if it returns OK (or sets
  // tx.commit_on_error), rolled back otherwise. Writers are serialized.
  template <class Fn>
  auto Write(Fn&& fn) -> std::invoke_result_t<Fn, Tx&> {
    absl::MutexLock lock(&write_mu_);
    // "now" is taken under the lock so timestamps follow the commit order.
    Tx tx{writer_.get(), Now()};
    ASSIGN_OR_RETURN(std::unique_ptr<sql::Transaction> txn, writer_->Begin(sql::TxMode::kWrite));
    auto result = fn(tx);
    if (!result.ok() && !tx.commit_on_error) return result;
    RETURN_IF_ERROR(txn->Commit());
    return result;
  }

  // Write() for a mutation that may be a retry: runs `fn` at most once per `request_id` (see
  // meta/request_dedup.h). A recorded reply is returned without running `fn`; a successful
  // reply is recorded in fn's transaction. Failures are not recorded: a failed mutation
  // changed nothing (or only what a retry would change again), so a retry runs afresh.
  template <class Fn>
  auto WriteOnce(std::string_view method, const std::string& request_id, Fn&& fn)
      -> std::invoke_result_t<Fn, Tx&> {
    using Result = std::invoke_result_t<Fn, Tx&>;
    using Reply = typename Result::value_type;
    const bool dedup = !request_id.empty() && options_.request_reply_ttl > absl::ZeroDuration();
    Result result = Write([&](Tx& tx) -> Result {
      if (!dedup) return fn(tx);
      ASSIGN_OR_RETURN(std::optional<std::string> recorded,
                       FindRecordedReply(tx.db, request_id, method));
      if (recorded) {
        Reply r;
        if (!r.ParseFromString(*recorded)) {
          return absl::DataLossError(absl::StrCat("recorded ", std::string(method), " reply is corrupt"));
        }
        return r;
      }
      ASSIGN_OR_RETURN(Reply r, fn(tx));
      RETURN_IF_ERROR(RecordReply(tx.db, request_id, method, r.SerializeAsString(), tx.now));
      return r;
    });
    if (result.ok() && options_.test_after_commit) options_.test_after_commit();
    return result;
  }

  // Runs `fn` in one read transaction (a consistent snapshot) on a reader connection.
  template <class Fn>
  auto Read(Fn&& fn) -> std::invoke_result_t<Fn, Tx&> {
    if (!use_readers_) return Write(std::forward<Fn>(fn));
    std::unique_ptr<Connection> conn;
    {
      absl::MutexLock lock(&pool_mu_);
      pool_mu_.Await(absl::Condition(this, &MetaServiceImpl::ReaderAvailable));
      conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
    auto result = [&]() -> std::invoke_result_t<Fn, Tx&> {
      Tx tx{conn.get(), Now()};
      ASSIGN_OR_RETURN(std::unique_ptr<sql::Transaction> txn, conn->Begin(sql::TxMode::kRead));
      auto r = fn(tx);
      if (!r.ok()) return r;
      RETURN_IF_ERROR(txn->Commit());
      return r;
    }();
    absl::MutexLock lock(&pool_mu_);
    idle_readers_.push_back(std::move(conn));
    return result;
  }

  bool ReaderAvailable() const ABSL_SHARED_LOCKS_REQUIRED(pool_mu_) {
    return !idle_readers_.empty();
  }

  // Shared by Mknod, Mkdir and Symlink.
  absl::StatusOr<pb::EntryResponse> CreateNode(std::string_view method,
                                               const std::string& request_id, uint64_t vol,
                                               uint64_t parent,
                                               const std::string& name, uint32_t mode,
                                               uint32_t uid, uint32_t gid, uint64_t rdev,
                                               const std::string* target);

  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> GetStore(const std::string& url);
  void BackgroundLoop();

  const MetaServiceOptions options_;
  const int lock_fd_;

  absl::Mutex write_mu_;
  std::unique_ptr<Connection> writer_ ABSL_PT_GUARDED_BY(write_mu_);

  absl::Mutex pool_mu_;
  bool use_readers_ = false;
  std::vector<std::unique_ptr<Connection>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);

  absl::Mutex stores_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<blockstore::BlockStore>> stores_
      ABSL_GUARDED_BY(stores_mu_);

  // Only one GC round at a time (the background thread and a test may both call RunGcOnce).
  absl::Mutex gc_mu_;

  absl::Mutex bg_mu_;
  bool stop_ ABSL_GUARDED_BY(bg_mu_) = false;
  std::thread background_;
};

// ---- volumes and sessions ----

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
                         "SELECT volume_id, block_id, object_size, ? FROM blocks WHERE volume_id = ?",
                         tx.now, id));
    for (const char* sql : {"DELETE FROM sustained WHERE volume_id = ?",
                            "DELETE FROM sessions WHERE volume_id = ?",
                            "DELETE FROM blocks WHERE volume_id = ?",
                            "DELETE FROM xattrs WHERE volume_id = ?",
                            "DELETE FROM dentries WHERE volume_id = ?",
                            "DELETE FROM inodes WHERE volume_id = ?"}) {
      RETURN_IF_ERROR(Exec(tx.db, sql, id));
    }
    RETURN_IF_ERROR(EndVolumeAllocations(tx.db, id, tx.now));
    RETURN_IF_ERROR(Exec(tx.db, "INSERT INTO deleted_volumes (id, store_url) VALUES (?, ?)", id,
                         Text{v->store_url}));
    ASSIGN_OR_RETURN(int64_t floor, GetMetaInt(tx.db, "block_id_floor", 1));
    RETURN_IF_ERROR(SetMetaInt(tx.db, "block_id_floor",
                               std::max<int64_t>(floor, static_cast<int64_t>(v->next_block_id))));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM volumes WHERE id = ?", id));
    NIGHFS_LOG(INFO) << "deleted volume " << req.name() << " (id " << id << ")";
    return pb::DeleteVolumeResponse();
  });
}

absl::StatusOr<pb::MountResponse> MetaServiceImpl::Mount(const pb::MountRequest& req) {
  return WriteOnce("Mount", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::MountResponse> {
    ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume_name()));
    if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume_name()));
    RETURN_IF_ERROR(Exec(tx.db,
                         "INSERT INTO sessions (volume_id, hostname, mount_point, pid, created_ns, "
                         "last_heartbeat_ns) VALUES (?, ?, ?, ?, ?, ?)",
                         v->id, Text{req.hostname()}, Text{req.mount_point()}, req.pid(), tx.now,
                         tx.now));
    pb::MountResponse r;
    r.set_session_id(static_cast<uint64_t>(tx.db->LastInsertId()));
    *r.mutable_volume() = v->Proto();
    ASSIGN_OR_RETURN(Inode root, tx.GetInode(v->id, kRootIno));
    *r.mutable_root() = root.Proto();
    NIGHFS_LOG(INFO) << "session " << r.session_id() << ": " << req.hostname() << ":"
                     << req.mount_point() << " (pid " << req.pid() << ") mounted volume "
                     << v->name;
    return r;
  });
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
    return pb::HeartbeatResponse();
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

// ---- namespace ----

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Lookup(const pb::LookupRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    RETURN_IF_ERROR(tx.GetDir(req.volume_id(), req.parent()).status());
    ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(req.volume_id(), req.parent(), req.name()));
    ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(req.volume_id(), d.ino));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::AttrResponse> MetaServiceImpl::GetAttr(const pb::GetAttrRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::AttrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    pb::AttrResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::AttrResponse> MetaServiceImpl::SetAttr(const pb::SetAttrRequest& req) {
  const uint32_t valid = req.valid();
  if ((valid & pb::SETATTR_SIZE) && req.size() > kMaxFileSize) {
    return FsError(EFBIG, absl::StrCat("size ", req.size(), " is too large"));
  }
  return WriteOnce("SetAttr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::AttrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    if (valid & pb::SETATTR_SIZE) {
      if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
      if (!n.IsReg()) {
        return FsError(EINVAL, absl::StrCat("inode ", n.ino, " is not a regular file"));
      }
    }
    if (valid & pb::SETATTR_MODE) n.mode = (n.mode & S_IFMT) | (req.mode() & 07777);
    if (valid & pb::SETATTR_UID) n.uid = req.uid();
    if (valid & pb::SETATTR_GID) n.gid = req.gid();
    if (valid & pb::SETATTR_ATIME) n.atime_ns = req.atime_ns();
    if (valid & pb::SETATTR_ATIME_NOW) n.atime_ns = tx.now;
    if (valid & pb::SETATTR_MTIME) n.mtime_ns = req.mtime_ns();
    if (valid & pb::SETATTR_MTIME_NOW) n.mtime_ns = tx.now;
    if ((valid & pb::SETATTR_SIZE) && req.size() != n.size) {
      const uint64_t size = req.size();
      if (size < n.size) {
        ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(vol));
        const uint64_t bs = v.block_size;
        // Blocks wholly at or past the new end are dropped; their objects become garbage.
        const uint64_t first_dropped = size / bs + (size % bs != 0 ? 1 : 0);
        ASSIGN_OR_RETURN(int64_t dropped_bytes,
                         QueryInt(tx.db, 0,
                                  "SELECT COALESCE(SUM(length), 0) FROM blocks "
                                  "WHERE volume_id = ? AND ino = ? AND idx >= ?",
                                  vol, n.ino, first_dropped));
        n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, dropped_bytes);
        RETURN_IF_ERROR(Exec(tx.db,
                             "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                             "SELECT volume_id, block_id, object_size, ? FROM blocks "
                             "WHERE volume_id = ? AND ino = ? AND idx >= ?",
                             tx.now, vol, n.ino, first_dropped));
        RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ? AND idx >= ?",
                             vol, n.ino, first_dropped));
        // The block holding the new end keeps its object; bytes past `length` read as zeros,
        // so growing the file later shows a hole, not the old bytes.
        if (size % bs != 0) {
          const uint64_t idx = size / bs;
          const uint64_t keep = size - idx * bs;
          ASSIGN_OR_RETURN(int64_t old_length,
                           QueryInt(tx.db, 0,
                                    "SELECT length FROM blocks WHERE volume_id = ? AND ino = ? "
                                    "AND idx = ?",
                                    vol, n.ino, idx));
          if (static_cast<uint64_t>(old_length) > keep) {
            n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, old_length - keep);
          }
          RETURN_IF_ERROR(Exec(tx.db,
                               "UPDATE blocks SET length = ? WHERE volume_id = ? AND ino = ? AND "
                               "idx = ? AND length > ?",
                               keep, vol, n.ino, idx, keep));
        }
      }
      n.size = size;
      if (!(valid & (pb::SETATTR_MTIME | pb::SETATTR_MTIME_NOW))) n.mtime_ns = tx.now;
    }
    n.ctime_ns = (valid & pb::SETATTR_CTIME) ? req.ctime_ns() : tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    pb::AttrResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::CreateNode(std::string_view method,
                                                              const std::string& request_id,
                                                              uint64_t vol, uint64_t parent,
                                                              const std::string& name,
                                                              uint32_t mode, uint32_t uid,
                                                              uint32_t gid, uint64_t rdev,
                                                              const std::string* target) {
  RETURN_IF_ERROR(CheckName(name));
  return WriteOnce(method, request_id, [&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, parent));
    ASSIGN_OR_RETURN(std::optional<Dentry> existing, tx.FindDentry(vol, parent, name));
    if (existing) {
      return FsError(EEXIST, absl::StrCat(Quote(name), " exists in directory ", parent));
    }
    Inode n;
    ASSIGN_OR_RETURN(n.ino, tx.AllocIno(vol));
    n.mode = mode;
    n.uid = uid;
    n.gid = gid;
    // BSD group semantics under a setgid directory, which new directories inherit.
    if (dir.mode & S_ISGID) {
      n.gid = dir.gid;
      if (S_ISDIR(mode)) n.mode |= S_ISGID;
    }
    n.rdev = rdev;
    n.nlink = S_ISDIR(mode) ? 2 : 1;
    n.size = target != nullptr ? target->size() : 0;
    n.atime_ns = n.mtime_ns = n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.InsertInode(vol, n, target));
    RETURN_IF_ERROR(tx.InsertDentry(vol, parent, name, n.ino));
    if (S_ISDIR(mode)) dir.nlink += 1;
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Mknod(const pb::MknodRequest& req) {
  uint32_t type = req.mode() & S_IFMT;
  if (type == 0) type = S_IFREG;
  switch (type) {
    case S_IFREG:
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      break;
    default:  // S_IFDIR, S_IFLNK and bit patterns that are no type
      return FsError(EINVAL, absl::StrFormat("mknod cannot create file type %#o", type));
  }
  const uint64_t rdev = (type == S_IFCHR || type == S_IFBLK) ? req.rdev() : 0;
  return CreateNode("Mknod", req.request_id(), req.volume_id(), req.parent(), req.name(), type | (req.mode() & 07777),
                    req.uid(), req.gid(), rdev, nullptr);
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Mkdir(const pb::MkdirRequest& req) {
  return CreateNode("Mkdir", req.request_id(), req.volume_id(), req.parent(), req.name(), S_IFDIR | (req.mode() & 07777),
                    req.uid(), req.gid(), 0, nullptr);
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Symlink(const pb::SymlinkRequest& req) {
  if (req.target().empty()) return FsError(ENOENT, "empty symlink target");
  if (req.target().size() > kMaxSymlinkBytes) {
    return FsError(ENAMETOOLONG, absl::StrCat("symlink target of ", req.target().size(),
                                              " bytes is longer than ", kMaxSymlinkBytes));
  }
  if (req.target().find('\0') != std::string::npos) {
    return FsError(EINVAL, "symlink target contains NUL");
  }
  return CreateNode("Symlink", req.request_id(), req.volume_id(), req.parent(), req.name(), S_IFLNK | 0777, req.uid(),
                    req.gid(), 0, &req.target());
}

absl::StatusOr<pb::EntryResponse> MetaServiceImpl::Link(const pb::LinkRequest& req) {
  RETURN_IF_ERROR(CheckName(req.new_name()));
  return WriteOnce("Link", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::EntryResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, req.new_parent()));
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    ASSIGN_OR_RETURN(std::optional<Dentry> existing,
                     tx.FindDentry(vol, req.new_parent(), req.new_name()));
    if (existing) {
      return FsError(EEXIST, absl::StrCat(Quote(req.new_name()), " exists in directory ",
                                          req.new_parent()));
    }
    if (n.IsDir()) return FsError(EPERM, absl::StrCat("cannot link directory ", n.ino));
    // An unlinked file kept open cannot get a name back (linkat(2) gives ENOENT).
    if (n.nlink == 0) return FsError(ENOENT, absl::StrCat("inode ", n.ino, " has been unlinked"));
    if (n.nlink >= kMaxLinks) {
      return FsError(EMLINK, absl::StrCat("inode ", n.ino, " has ", n.nlink, " links already"));
    }
    RETURN_IF_ERROR(tx.InsertDentry(vol, req.new_parent(), req.new_name(), n.ino));
    n.nlink += 1;
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::EntryResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::UnlinkResponse> MetaServiceImpl::Unlink(const pb::UnlinkRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  return WriteOnce("Unlink", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::UnlinkResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, req.parent()));
    ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(vol, req.parent(), req.name()));
    ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(vol, d.ino));
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat(Quote(req.name()), " is a directory"));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", d.id));
    ASSIGN_OR_RETURN(n, tx.DropLink(vol, n, req.session_id(), req.sustain(), options_.session_timeout));
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    pb::UnlinkResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::RmdirResponse> MetaServiceImpl::Rmdir(const pb::RmdirRequest& req) {
  RETURN_IF_ERROR(CheckName(req.name()));
  return WriteOnce("Rmdir", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RmdirResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode dir, tx.GetDir(vol, req.parent()));
    ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(vol, req.parent(), req.name()));
    ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(vol, d.ino));
    if (!n.IsDir()) return FsError(ENOTDIR, absl::StrCat(Quote(req.name()), " is not a directory"));
    ASSIGN_OR_RETURN(bool empty, tx.DirIsEmpty(vol, n.ino));
    if (!empty) return FsError(ENOTEMPTY, absl::StrCat("directory ", Quote(req.name()), " is not empty"));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", d.id));
    RETURN_IF_ERROR(tx.FreeInode(vol, n.ino));
    dir.nlink -= 1;
    dir.mtime_ns = dir.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, dir));
    return pb::RmdirResponse();
  });
}

absl::StatusOr<pb::RenameResponse> MetaServiceImpl::Rename(const pb::RenameRequest& req) {
  const uint32_t flags = req.flags();
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange)) {
    return FsError(EINVAL, absl::StrCat("unsupported rename flags ", flags));
  }
  RETURN_IF_ERROR(CheckName(req.name()));
  RETURN_IF_ERROR(CheckName(req.new_name()));
  const bool exchange = flags & kRenameExchange;
  return WriteOnce("Rename", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RenameResponse> {
    const uint64_t vol = req.volume_id();
    const uint64_t p_old = req.parent();
    const uint64_t p_new = req.new_parent();
    const bool same_parent = p_old == p_new;
    ASSIGN_OR_RETURN(Inode old_dir, tx.GetDir(vol, p_old));
    ASSIGN_OR_RETURN(Inode new_dir, tx.GetDir(vol, p_new));
    ASSIGN_OR_RETURN(Dentry src_d, tx.GetDentry(vol, p_old, req.name()));
    ASSIGN_OR_RETURN(Inode src, tx.GetEntryInode(vol, src_d.ino));
    ASSIGN_OR_RETURN(std::optional<Dentry> dst_d, tx.FindDentry(vol, p_new, req.new_name()));

    // The order of the checks follows Linux's renameat2.
    if ((flags & kRenameNoReplace) && dst_d) {
      return FsError(EEXIST, absl::StrCat(Quote(req.new_name()), " exists in directory ", p_new));
    }
    if (exchange && !dst_d) {
      return FsError(ENOENT, absl::StrCat("no entry ", Quote(req.new_name()), " in directory ",
                                          p_new, " to exchange with"));
    }
    pb::RenameResponse r;
    // Renaming a name onto itself, or onto another name of the same inode, changes nothing.
    if (dst_d && dst_d->ino == src.ino) {
      *r.mutable_moved() = src.Proto();
      return r;
    }
    std::optional<Inode> dst;
    if (dst_d) {
      ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(vol, dst_d->ino));
      dst = n;
    }
    // A directory cannot move below itself.
    if (src.IsDir()) {
      ASSIGN_OR_RETURN(bool loop, tx.IsAncestorOrSelf(vol, src.ino, p_new));
      if (loop) {
        return FsError(EINVAL, absl::StrCat("cannot move directory ", src.ino,
                                            " into its own subtree"));
      }
    }
    if (exchange && dst->IsDir()) {
      ASSIGN_OR_RETURN(bool loop, tx.IsAncestorOrSelf(vol, dst->ino, p_old));
      if (loop) {
        return FsError(EINVAL, absl::StrCat("cannot move directory ", dst->ino,
                                            " into its own subtree"));
      }
    }

    // nlink of the parents: each directory child holds a link to its parent ("..").
    int64_t old_dir_delta = 0;
    int64_t new_dir_delta = 0;
    if (exchange) {
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET ino = ? WHERE id = ?", dst->ino, src_d.id));
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET ino = ? WHERE id = ?", src.ino, dst_d->id));
      if (src.IsDir()) { old_dir_delta -= 1; new_dir_delta += 1; }
      if (dst->IsDir()) { new_dir_delta -= 1; old_dir_delta += 1; }
      src.ctime_ns = tx.now;
      dst->ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, src));
      RETURN_IF_ERROR(tx.UpdateInode(vol, *dst));
      *r.mutable_replaced() = dst->Proto();
    } else {
      if (dst) {
        if (src.IsDir() && !dst->IsDir()) {
          return FsError(ENOTDIR, absl::StrCat(Quote(req.new_name()), " is not a directory"));
        }
        if (!src.IsDir() && dst->IsDir()) {
          return FsError(EISDIR, absl::StrCat(Quote(req.new_name()), " is a directory"));
        }
        if (dst->IsDir()) {
          ASSIGN_OR_RETURN(bool empty, tx.DirIsEmpty(vol, dst->ino));
          if (!empty) {
            return FsError(ENOTEMPTY, absl::StrCat("directory ", Quote(req.new_name()),
                                                   " is not empty"));
          }
        }
        RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM dentries WHERE id = ?", dst_d->id));
      }
      // The entry keeps its id (readdir cookie): a listing of the new directory already past it
      // may miss the moved name, which POSIX allows for entries changed during a listing.
      RETURN_IF_ERROR(Exec(tx.db, "UPDATE dentries SET parent = ?, name = ? WHERE id = ?", p_new,
                           Blob{req.new_name()}, src_d.id));
      if (src.IsDir()) { old_dir_delta -= 1; new_dir_delta += 1; }
      src.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, src));
      if (dst) {
        if (dst->IsDir()) {
          new_dir_delta -= 1;
          RETURN_IF_ERROR(tx.FreeInode(vol, dst->ino));
          dst->nlink = 0;
          dst->ctime_ns = tx.now;
        } else {
          ASSIGN_OR_RETURN(*dst, tx.DropLink(vol, *dst, req.session_id(), req.sustain(),
                                             options_.session_timeout));
        }
        *r.mutable_replaced() = dst->Proto();
      }
    }
    if (same_parent) {
      old_dir.nlink = static_cast<uint32_t>(old_dir.nlink + old_dir_delta + new_dir_delta);
      old_dir.mtime_ns = old_dir.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, old_dir));
    } else {
      old_dir.nlink = static_cast<uint32_t>(old_dir.nlink + old_dir_delta);
      new_dir.nlink = static_cast<uint32_t>(new_dir.nlink + new_dir_delta);
      old_dir.mtime_ns = old_dir.ctime_ns = tx.now;
      new_dir.mtime_ns = new_dir.ctime_ns = tx.now;
      RETURN_IF_ERROR(tx.UpdateInode(vol, old_dir));
      RETURN_IF_ERROR(tx.UpdateInode(vol, new_dir));
    }
    *r.mutable_moved() = src.Proto();
    return r;
  });
}

absl::StatusOr<pb::ReadDirResponse> MetaServiceImpl::ReadDir(const pb::ReadDirRequest& req) {
  uint32_t limit = req.limit() == 0 ? kReadDirDefaultLimit : std::min(req.limit(), kReadDirMaxLimit);
  // A cookie past INT64_MAX cannot have come from us: nothing follows it.
  const int64_t cookie = req.cookie() > kMaxFileSize ? std::numeric_limits<int64_t>::max()
                                                     : static_cast<int64_t>(req.cookie());
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ReadDirResponse> {
    const uint64_t vol = req.volume_id();
    RETURN_IF_ERROR(tx.GetDir(vol, req.ino()).status());
    // One row more than asked tells whether the listing is complete.
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT d.id, d.name, i.ino, i.mode, i.uid, i.gid, i.size, "
                                    "i.nlink, i.rdev, i.atime_ns, i.mtime_ns, i.ctime_ns, "
                                    "i.stored_bytes FROM dentries d JOIN inodes i "
                                    "ON i.volume_id = d.volume_id AND i.ino = d.ino "
                                    "WHERE d.volume_id = ? AND d.parent = ? AND d.id > ? "
                                    "ORDER BY d.id LIMIT ?",
                                    vol, req.ino(), cookie, limit + 1));
    pb::ReadDirResponse r;
    r.set_eof(true);
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      if (static_cast<uint32_t>(r.entries_size()) == limit) {
        r.set_eof(false);
        break;
      }
      Inode n = ReadInode(*st, 2);
      pb::DirEntry* e = r.add_entries();
      e->set_cookie(static_cast<uint64_t>(st->ColumnInt64(0)));
      e->set_name(st->ColumnBlob(1));
      e->set_ino(n.ino);
      e->set_mode(n.mode);
      if (req.plus()) n.ToProto(e->mutable_attr());
    }
    return r;
  });
}

absl::StatusOr<pb::ReadlinkResponse> MetaServiceImpl::Readlink(const pb::ReadlinkRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ReadlinkResponse> {
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT mode, target FROM inodes WHERE volume_id = ? AND ino = ?",
                                    req.volume_id(), req.ino()));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return FsError(ENOENT, absl::StrCat("no inode ", req.ino()));
    if (!S_ISLNK(static_cast<uint32_t>(st->ColumnInt64(0)))) {
      return FsError(EINVAL, absl::StrCat("inode ", req.ino(), " is not a symlink"));
    }
    pb::ReadlinkResponse r;
    r.set_target(st->ColumnBlob(1));
    return r;
  });
}

// ---- data ----

absl::StatusOr<pb::GetBlocksResponse> MetaServiceImpl::GetBlocks(const pb::GetBlocksRequest& req) {
  const uint64_t first = std::min(req.first_index(), kMaxFileSize);
  const uint64_t end = (req.count() == 0 || req.count() > kMaxFileSize - first)
                           ? kMaxFileSize
                           : first + req.count();
  return Read([&](Tx& tx) -> absl::StatusOr<pb::GetBlocksResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
    pb::GetBlocksResponse r;
    *r.mutable_attr() = n.Proto();
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT idx, block_id, length, object_size, crc32c FROM blocks "
                                    "WHERE volume_id = ? AND ino = ? AND idx >= ? AND idx < ? "
                                    "ORDER BY idx",
                                    req.volume_id(), n.ino, first, end));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      pb::Block* b = r.add_blocks();
      b->set_index(static_cast<uint64_t>(st->ColumnInt64(0)));
      b->set_id(static_cast<uint64_t>(st->ColumnInt64(1)));
      b->set_length(static_cast<uint32_t>(st->ColumnInt64(2)));
      b->set_object_size(static_cast<uint32_t>(st->ColumnInt64(3)));
      b->set_crc32c(static_cast<uint32_t>(st->ColumnInt64(4)));
    }
    return r;
  });
}

absl::StatusOr<pb::AllocBlockIdsResponse> MetaServiceImpl::AllocBlockIds(
    const pb::AllocBlockIdsRequest& req) {
  if (req.count() < 1 || req.count() > kMaxAllocBlockIds) {
    return FsError(EINVAL, absl::StrCat("block id count ", req.count(), " is not in 1..",
                                        kMaxAllocBlockIds));
  }
  return WriteOnce("AllocBlockIds", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::AllocBlockIdsResponse> {
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(req.volume_id()));
    RETURN_IF_ERROR(Exec(tx.db, "UPDATE volumes SET next_block_id = next_block_id + ? WHERE id = ?",
                         req.count(), v.id));
    RETURN_IF_ERROR(RecordAllocation(tx.db, v.id, v.next_block_id, req.count(), req.session_id()));
    pb::AllocBlockIdsResponse r;
    r.set_first_id(v.next_block_id);
    return r;
  });
}

absl::StatusOr<pb::CommitBlocksResponse> MetaServiceImpl::CommitBlocks(
    const pb::CommitBlocksRequest& req) {
  if (req.min_size() > kMaxFileSize) {
    return FsError(EFBIG, absl::StrCat("size ", req.min_size(), " is too large"));
  }
  return WriteOnce("CommitBlocks", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::CommitBlocksResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(vol));
    const uint64_t bs = v.block_size;
    for (const pb::Block& b : req.blocks()) {
      if (b.length() > b.object_size() || b.object_size() > bs) {
        return FsError(EINVAL, absl::StrCat("block ", b.id(), " at index ", b.index(),
                                            ": need length (", b.length(), ") <= object size (",
                                            b.object_size(), ") <= block size (", bs, ")"));
      }
      if (b.index() > (kMaxFileSize - b.length()) / bs) {
        return FsError(EFBIG, absl::StrCat("block index ", b.index(), " is too large"));
      }
      if (b.id() == 0 || b.id() >= v.next_block_id) {
        return FsError(EINVAL, absl::StrCat("block id ", b.id(), " was never allocated"));
      }
      ASSIGN_OR_RETURN(bool reclaimed, IsReclaimedId(tx.db, vol, b.id()));
      if (reclaimed) {
        return FsError(ESTALE, absl::StrCat("block id ", b.id(), " belonged to a session that "
                                            "ended without committing it; its object may be "
                                            "gone: upload the data again under a new id"));
      }
    }
    ASSIGN_OR_RETURN(std::optional<Inode> found, tx.FindInode(vol, req.ino()));
    if (!found) {
      // The file went away while it was being written. The uploaded objects will never be
      // referenced: hand them to garbage collection rather than leave them in the store.
      for (const pb::Block& b : req.blocks()) {
        ASSIGN_OR_RETURN(int64_t used, QueryInt(tx.db, 0,
                                                "SELECT 1 FROM blocks WHERE volume_id = ? AND "
                                                "block_id = ?",
                                                vol, b.id()));
        if (used == 0) RETURN_IF_ERROR(tx.QueueBlock(vol, b.id(), b.object_size()));
      }
      tx.commit_on_error = true;
      return FsError(ENOENT, absl::StrCat("no inode ", req.ino(), " in volume ", vol));
    }
    Inode n = *found;
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
    if (!n.IsReg()) return FsError(EINVAL, absl::StrCat("inode ", n.ino, " is not a regular file"));

    // Punched holes: the entries go, their objects become garbage, the size stays.
    for (uint64_t idx : req.drop_indexes()) {
      ASSIGN_OR_RETURN(auto old, Query(tx.db,
                                       "SELECT block_id, object_size, length FROM blocks WHERE "
                                       "volume_id = ? AND ino = ? AND idx = ?",
                                       vol, n.ino, idx));
      ASSIGN_OR_RETURN(bool has_old, old->Step());
      if (!has_old) continue;
      const uint64_t old_id = static_cast<uint64_t>(old->ColumnInt64(0));
      const uint64_t old_size = static_cast<uint64_t>(old->ColumnInt64(1));
      const uint64_t old_length = static_cast<uint64_t>(old->ColumnInt64(2));
      old.reset();
      RETURN_IF_ERROR(tx.QueueBlock(vol, old_id, old_size));
      RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ? AND idx = ?",
                           vol, n.ino, idx));
      n.stored_bytes -= std::min(n.stored_bytes, old_length);
    }

    for (const pb::Block& b : req.blocks()) {
      // A block id belongs to one map entry for life; one already freed must not come back,
      // since garbage collection may be deleting its object right now.
      ASSIGN_OR_RETURN(auto owner, Query(tx.db,
                                         "SELECT ino, idx FROM blocks WHERE volume_id = ? AND "
                                         "block_id = ?",
                                         vol, b.id()));
      ASSIGN_OR_RETURN(bool owned, owner->Step());
      if (owned && (static_cast<uint64_t>(owner->ColumnInt64(0)) != n.ino ||
                    static_cast<uint64_t>(owner->ColumnInt64(1)) != b.index())) {
        return FsError(EINVAL, absl::StrCat("block id ", b.id(), " is already in use by inode ",
                                            owner->ColumnInt64(0), " index ",
                                            owner->ColumnInt64(1)));
      }
      owner.reset();
      ASSIGN_OR_RETURN(int64_t freed, QueryInt(tx.db, 0,
                                               "SELECT 1 FROM gc_blocks WHERE volume_id = ? AND "
                                               "block_id = ?",
                                               vol, b.id()));
      if (freed != 0) {
        return FsError(EINVAL, absl::StrCat("block id ", b.id(), " has been freed"));
      }
      ASSIGN_OR_RETURN(auto old, Query(tx.db,
                                       "SELECT block_id, object_size, length FROM blocks WHERE "
                                       "volume_id = ? AND ino = ? AND idx = ?",
                                       vol, n.ino, b.index()));
      ASSIGN_OR_RETURN(bool has_old, old->Step());
      if (has_old) {
        n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, old->ColumnInt64(2));
      }
      n.stored_bytes += b.length();
      if (has_old && static_cast<uint64_t>(old->ColumnInt64(0)) != b.id()) {
        const uint64_t old_id = static_cast<uint64_t>(old->ColumnInt64(0));
        const uint64_t old_size = static_cast<uint64_t>(old->ColumnInt64(1));
        old.reset();
        RETURN_IF_ERROR(tx.QueueBlock(vol, old_id, old_size));
      }
      old.reset();
      RETURN_IF_ERROR(Exec(tx.db,
                           "INSERT INTO blocks (volume_id, ino, idx, block_id, length, "
                           "object_size, crc32c) VALUES (?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT (volume_id, ino, idx) DO UPDATE SET "
                           "block_id = excluded.block_id, length = excluded.length, "
                           "object_size = excluded.object_size, crc32c = excluded.crc32c",
                           vol, n.ino, b.index(), b.id(), b.length(), b.object_size(),
                           b.crc32c()));
    }
    n.size = std::max<uint64_t>(n.size, req.min_size());
    n.mtime_ns = req.mtime_ns() != 0 ? req.mtime_ns() : tx.now;
    n.ctime_ns = tx.now;
    if (req.clear_suid()) {
      n.mode &= ~static_cast<uint32_t>(S_ISUID);
      if (n.mode & S_IXGRP) n.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    pb::CommitBlocksResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::ReleaseResponse> MetaServiceImpl::Release(const pb::ReleaseRequest& req) {
  return WriteOnce("Release", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::ReleaseResponse> {
    RETURN_IF_ERROR(Exec(tx.db,
                         "DELETE FROM sustained WHERE session_id = ? AND volume_id = ? AND ino = ?",
                         req.session_id(), req.volume_id(), req.ino()));
    RETURN_IF_ERROR(tx.FreeIfOrphan(req.volume_id(), req.ino()));
    return pb::ReleaseResponse();
  });
}

// ---- xattrs ----

absl::Status CheckXattrName(std::string_view name) {
  // Linux answers ERANGE for an empty name as for a too long one.
  if (name.empty() || name.size() > kMaxXattrNameBytes) {
    return FsError(ERANGE, absl::StrCat("xattr name of ", name.size(), " bytes is not in 1..",
                                        kMaxXattrNameBytes));
  }
  return absl::OkStatus();
}

absl::StatusOr<pb::SetXattrResponse> MetaServiceImpl::SetXattr(const pb::SetXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  if (req.value().size() > kMaxXattrValueBytes) {
    return FsError(E2BIG, absl::StrCat("xattr value of ", req.value().size(),
                                       " bytes is larger than ", kMaxXattrValueBytes));
  }
  if ((req.flags() & ~(kXattrCreate | kXattrReplace)) != 0) {
    return FsError(EINVAL, absl::StrCat("unsupported xattr flags ", req.flags()));
  }
  return WriteOnce("SetXattr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::SetXattrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    ASSIGN_OR_RETURN(int64_t exists, QueryInt(tx.db, 0,
                                              "SELECT 1 FROM xattrs WHERE volume_id = ? AND "
                                              "ino = ? AND name = ?",
                                              vol, n.ino, Blob{req.name()}));
    if ((req.flags() & kXattrCreate) && exists) {
      return FsError(EEXIST, absl::StrCat("xattr ", Quote(req.name()), " exists"));
    }
    if ((req.flags() & kXattrReplace) && !exists) {
      return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    }
    RETURN_IF_ERROR(Exec(tx.db,
                         "INSERT INTO xattrs (volume_id, ino, name, value) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (volume_id, ino, name) DO UPDATE SET value = excluded.value",
                         vol, n.ino, Blob{req.name()}, Blob{req.value()}));
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    return pb::SetXattrResponse();
  });
}

absl::StatusOr<pb::GetXattrResponse> MetaServiceImpl::GetXattr(const pb::GetXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::GetXattrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT value FROM xattrs WHERE volume_id = ? AND ino = ? "
                                    "AND name = ?",
                                    req.volume_id(), n.ino, Blob{req.name()}));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    pb::GetXattrResponse r;
    r.set_value(st->ColumnBlob(0));
    return r;
  });
}

absl::StatusOr<pb::ListXattrResponse> MetaServiceImpl::ListXattr(const pb::ListXattrRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListXattrResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT name FROM xattrs WHERE volume_id = ? AND ino = ? "
                                    "ORDER BY name",
                                    req.volume_id(), n.ino));
    pb::ListXattrResponse r;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      r.add_names(st->ColumnBlob(0));
    }
    return r;
  });
}

absl::StatusOr<pb::RemoveXattrResponse> MetaServiceImpl::RemoveXattr(
    const pb::RemoveXattrRequest& req) {
  RETURN_IF_ERROR(CheckXattrName(req.name()));
  return WriteOnce("RemoveXattr", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::RemoveXattrResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(vol, req.ino()));
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM xattrs WHERE volume_id = ? AND ino = ? AND name = ?",
                         vol, n.ino, Blob{req.name()}));
    if (tx.db->Changes() == 0) return FsError(ENODATA, absl::StrCat("no xattr ", Quote(req.name())));
    n.ctime_ns = tx.now;
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    return pb::RemoveXattrResponse();
  });
}

absl::StatusOr<pb::StatFsResponse> MetaServiceImpl::StatFs(const pb::StatFsRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::StatFsResponse> {
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(req.volume_id()));
    ASSIGN_OR_RETURN(int64_t used, QueryInt(tx.db, 0,
                                            "SELECT COALESCE(SUM(object_size), 0) FROM blocks "
                                            "WHERE volume_id = ?",
                                            v.id));
    ASSIGN_OR_RETURN(int64_t inodes, QueryInt(tx.db, 0,
                                              "SELECT COUNT(*) FROM inodes WHERE volume_id = ?",
                                              v.id));
    pb::StatFsResponse r;
    r.set_used_bytes(static_cast<uint64_t>(used));
    r.set_inodes(static_cast<uint64_t>(inodes));
    r.set_block_size(v.block_size);
    return r;
  });
}

// ---- background work ----

absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> MetaServiceImpl::GetStore(
    const std::string& url) {
  absl::MutexLock lock(&stores_mu_);
  auto it = stores_.find(url);
  if (it != stores_.end()) return it->second;
  ASSIGN_OR_RETURN(std::unique_ptr<blockstore::BlockStore> store, options_.open_store(url));
  std::shared_ptr<blockstore::BlockStore> shared(std::move(store));
  stores_.emplace(url, shared);
  return shared;
}

absl::StatusOr<int64_t> MetaServiceImpl::RunGcOnce() {
  absl::MutexLock gc_lock(&gc_mu_);
  const int64_t cutoff = Now() - absl::ToInt64Nanoseconds(options_.gc_grace);
  struct Garbage {
    uint64_t volume_id;
    uint64_t block_id;
    std::string store_url;  // "" when the volume is unknown
  };
  int64_t deleted = 0;
  uint64_t after_vol = 0;
  uint64_t after_block = 0;
  absl::flat_hash_map<std::string, absl::Status> broken_stores;  // warned once per round
  // Ids of ended sessions never committed join the queue, due at once.
  ASSIGN_OR_RETURN(int64_t reclaimed, Write([&](Tx& tx) -> absl::StatusOr<int64_t> {
    return ReclaimEndedAllocations(tx.db, cutoff);
  }));
  if (reclaimed > 0) {
    NIGHFS_LOG(INFO) << "gc: " << reclaimed << " block id(s) allocated to ended sessions and "
                     << "never committed queued for deletion";
  }
  while (true) {
    // Pages in key order so blocks whose deletion failed are passed over, not fetched again.
    ASSIGN_OR_RETURN(std::vector<Garbage> page, Read([&](Tx& tx) -> absl::StatusOr<std::vector<Garbage>> {
      ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                      "SELECT g.volume_id, g.block_id, "
                                      "COALESCE(v.store_url, d.store_url, '') FROM gc_blocks g "
                                      "LEFT JOIN volumes v ON v.id = g.volume_id "
                                      "LEFT JOIN deleted_volumes d ON d.id = g.volume_id "
                                      "WHERE g.freed_ns <= ? AND (g.volume_id > ? OR "
                                      "(g.volume_id = ? AND g.block_id > ?)) "
                                      "ORDER BY g.volume_id, g.block_id LIMIT ?",
                                      cutoff, after_vol, after_vol, after_block, kGcPageSize));
      std::vector<Garbage> out;
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        out.push_back({static_cast<uint64_t>(st->ColumnInt64(0)),
                       static_cast<uint64_t>(st->ColumnInt64(1)), st->ColumnText(2)});
      }
      return out;
    }));
    if (page.empty()) break;
    after_vol = page.back().volume_id;
    after_block = page.back().block_id;

    std::vector<std::pair<uint64_t, uint64_t>> done;
    for (const Garbage& g : page) {
      if (g.store_url.empty()) {
        // No volume row and no tombstone: nothing says where the object lives, and nothing can
        // ever delete it. Drop the entry rather than retry forever.
        NIGHFS_LOG(ERROR) << "gc: block " << g.block_id << " of unknown volume " << g.volume_id
                          << " dropped from the queue";
        done.emplace_back(g.volume_id, g.block_id);
        continue;
      }
      if (broken_stores.contains(g.store_url)) continue;
      absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> store = GetStore(g.store_url);
      if (!store.ok()) {
        NIGHFS_LOG(WARNING) << "gc: cannot open the block store of volume " << g.volume_id
                            << ": " << store.status().message() << " (retrying next round)";
        broken_stores.emplace(g.store_url, store.status());
        continue;
      }
      absl::Status s = (*store)->Delete(blockstore::BlockKey(g.block_id));
      if (!s.ok()) {
        NIGHFS_LOG(WARNING) << "gc: deleting block " << g.block_id << " from "
                            << (*store)->Describe() << " failed: " << s.message()
                            << " (retrying next round)";
        continue;
      }
      done.emplace_back(g.volume_id, g.block_id);
    }
    if (!done.empty()) {
      RETURN_IF_ERROR(Write([&](Tx& tx) -> absl::Status {
        for (const auto& [vol, block] : done) {
          RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM gc_blocks WHERE volume_id = ? AND block_id = ?",
                               vol, block));
        }
        return absl::OkStatus();
      }));
      deleted += static_cast<int64_t>(done.size());
    }
    if (page.size() < static_cast<size_t>(kGcPageSize)) break;
  }
  // Tombstones of deleted volumes whose blocks are all gone.
  RETURN_IF_ERROR(Write([&](Tx& tx) -> absl::Status {
    return Exec(tx.db,
                "DELETE FROM deleted_volumes WHERE NOT EXISTS "
                "(SELECT 1 FROM gc_blocks WHERE gc_blocks.volume_id = deleted_volumes.id) "
                "AND NOT EXISTS (SELECT 1 FROM block_id_ranges r WHERE "
                "r.volume_id = deleted_volumes.id AND r.reclaimed = 0)");
  }));
  if (deleted > 0) NIGHFS_LOG(DEBUG) << "gc: deleted " << deleted << " block(s)";
  return deleted;
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

absl::StatusOr<int64_t> MetaServiceImpl::ExpireRequestRepliesOnce() {
  return Write([&](Tx& tx) -> absl::StatusOr<int64_t> {
    return ExpireRecordedReplies(
        tx.db, tx.now - absl::ToInt64Nanoseconds(options_.request_reply_ttl),
        options_.max_request_replies);
  });
}

void MetaServiceImpl::BackgroundLoop() {
  while (true) {
    {
      absl::MutexLock lock(&bg_mu_);
      bg_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.gc_interval);
      if (stop_) return;
    }
    if (absl::StatusOr<int64_t> n = ExpireSessionsOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "session expiry failed: " << n.status();
    }
    if (absl::StatusOr<int64_t> n = ExpireRequestRepliesOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "expiring recorded replies failed: " << n.status();
    }
    if (absl::StatusOr<int64_t> n = RunGcOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "garbage collection failed: " << n.status();
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetaService>> MetaService::Open(const MetaServiceOptions& options) {
  if (options.db_path.empty()) return absl::InvalidArgumentError("no database path");
  MetaServiceOptions opts = options;
  if (!opts.now_ns) opts.now_ns = [] { return absl::GetCurrentTimeNanos(); };
  if (opts.gc_interval <= absl::ZeroDuration()) opts.gc_interval = absl::Seconds(5);
  if (!opts.open_store) {
    absl::StatusOr<blockstore::StoreCredentials> creds =
        blockstore::LoadCredentials(opts.credentials_file);
    if (!creds.ok()) {
      return absl::Status(creds.status().code(),
                          absl::StrCat("credentials: ", creds.status().message()));
    }
    opts.open_store = [creds = *std::move(creds)](const std::string& url) {
      return blockstore::OpenBlockStore(url, creds);
    };
  }

  // SQLite's own locks let two processes share a file, but two servers would each believe
  // they own the sessions and the GC queue.
  const std::string lock_path = opts.db_path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  (void)::fchmod(lock_fd, 0600);  // also one an older version created with the umask's mode
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", opts.db_path, " is in use by another nighfs-meta"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }
  auto fail = [lock_fd](absl::Status s) {
    ::close(lock_fd);
    return s;
  };

  // The database holds every file name: private whatever the umask, also when an older version
  // created it with the umask's mode. SQLite gives its WAL and shared-memory files the mode of
  // the database file; ones left by an older version are fixed too.
  {
    int fd = ::open(opts.db_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::fchmod(fd, 0600) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot create ", opts.db_path, " with mode 0600: ", std::strerror(err))));
    }
    ::close(fd);
  }
  absl::StatusOr<std::unique_ptr<Connection>> writer = sql::OpenSqlite(opts.db_path);
  if (!writer.ok()) return fail(writer.status());
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string path = opts.db_path + suffix;
    if (::chmod(path.c_str(), 0600) != 0 && errno != ENOENT) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot make ", path, " private: ", std::strerror(errno))));
    }
  }
  if (absl::Status s = MigrateSchema(writer->get()); !s.ok()) {
    return fail(absl::Status(s.code(), absl::StrCat(opts.db_path, ": ", s.message())));
  }
  std::vector<std::unique_ptr<Connection>> readers;
  for (int i = 0; i < opts.read_connections; ++i) {
    sql::SqliteOptions ro;
    ro.query_only = true;
    absl::StatusOr<std::unique_ptr<Connection>> r = sql::OpenSqlite(opts.db_path, ro);
    if (!r.ok()) return fail(r.status());
    readers.push_back(*std::move(r));
  }
  return std::unique_ptr<MetaService>(
      new MetaServiceImpl(std::move(opts), *std::move(writer), std::move(readers), lock_fd));
}

}  // namespace nighfs::meta
