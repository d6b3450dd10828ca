// The shared building blocks of the metadata operations: errors and name checks, the row
// readers of the inodes and volumes tables, and Tx's helpers (inode, dentry and volume
// access, links, freeing inodes into garbage collection, sessions).
#include "meta/meta_service_impl.h"

#include <cerrno>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "common/retry.h"
#include "common/status_macros.h"
#include "meta/alloc_gc.h"

namespace nighfs::meta::internal {

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

absl::StatusOr<VolumeRow> Tx::GetVolume(uint64_t volume_id) {
  ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kVolumeCols,
                                                   " FROM volumes WHERE id = ?"),
                                  volume_id));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no volume with id ", volume_id));
  return ReadVolume(*st);
}

absl::StatusOr<std::optional<VolumeRow>> Tx::FindVolumeByName(std::string_view name) {
  ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kVolumeCols,
                                                   " FROM volumes WHERE name = ?"),
                                  Text{name}));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<VolumeRow>();
  return std::optional<VolumeRow>(ReadVolume(*st));
}

absl::StatusOr<std::optional<Inode>> Tx::FindInode(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(auto st, Query(db, absl::StrCat("SELECT ", kInodeCols,
                                                   " FROM inodes WHERE volume_id = ? AND ino = ?"),
                                  vol, ino));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<Inode>();
  return std::optional<Inode>(ReadInode(*st, 0));
}

absl::StatusOr<Inode> Tx::GetInode(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
  if (!n) return FsError(ENOENT, absl::StrCat("no inode ", ino, " in volume ", vol));
  return *n;
}

absl::StatusOr<Inode> Tx::GetDir(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(Inode n, GetInode(vol, ino));
  if (!n.IsDir()) return FsError(ENOTDIR, absl::StrCat("inode ", ino, " is not a directory"));
  return n;
}

absl::StatusOr<Inode> Tx::GetEntryInode(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
  if (!n) return absl::InternalError(absl::StrCat("directory entry names missing inode ", ino));
  return *n;
}

absl::Status Tx::UpdateInode(uint64_t vol, const Inode& n) {
  return Exec(db,
              "UPDATE inodes SET mode = ?, uid = ?, gid = ?, size = ?, nlink = ?, rdev = ?, "
              "atime_ns = ?, mtime_ns = ?, ctime_ns = ?, stored_bytes = ? "
              "WHERE volume_id = ? AND ino = ?",
              n.mode, n.uid, n.gid, n.size, n.nlink, n.rdev, n.atime_ns, n.mtime_ns,
              n.ctime_ns, n.stored_bytes, vol, n.ino);
}

absl::Status Tx::InsertInode(uint64_t vol, const Inode& n, const std::string* target) {
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

absl::StatusOr<std::optional<Dentry>> Tx::FindDentry(uint64_t vol, uint64_t parent,
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

absl::StatusOr<Dentry> Tx::GetDentry(uint64_t vol, uint64_t parent, std::string_view name) {
  ASSIGN_OR_RETURN(std::optional<Dentry> d, FindDentry(vol, parent, name));
  if (!d) {
    return FsError(ENOENT, absl::StrCat("no entry ", Quote(name), " in directory ",
                                        parent));
  }
  return *d;
}

absl::Status Tx::InsertDentry(uint64_t vol, uint64_t parent, std::string_view name, uint64_t ino) {
  return Exec(db, "INSERT INTO dentries (volume_id, parent, name, ino) VALUES (?, ?, ?, ?)",
              vol, parent, Blob{name}, ino);
}

absl::StatusOr<bool> Tx::DirIsEmpty(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(int64_t any, QueryInt(db, 0,
                                         "SELECT 1 FROM dentries WHERE volume_id = ? AND "
                                         "parent = ? LIMIT 1",
                                         vol, ino));
  return any == 0;
}

absl::StatusOr<uint64_t> Tx::AllocIno(uint64_t vol) {
  ASSIGN_OR_RETURN(int64_t next, QueryInt(db, -1,
                                          "SELECT next_ino FROM volumes WHERE id = ?", vol));
  if (next < 0) return absl::NotFoundError(absl::StrCat("no volume with id ", vol));
  RETURN_IF_ERROR(Exec(db, "UPDATE volumes SET next_ino = next_ino + 1 WHERE id = ?", vol));
  return static_cast<uint64_t>(next);
}

absl::StatusOr<bool> Tx::IsAncestorOrSelf(uint64_t vol, uint64_t ancestor, uint64_t ino) {
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

absl::Status Tx::QueueBlocksOfInode(uint64_t vol, uint64_t ino) {
  return Exec(db,
              "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
              "SELECT volume_id, block_id, object_size, ? FROM blocks "
              "WHERE volume_id = ? AND ino = ? AND block_id IS NOT NULL",  // not inline
              now, vol, ino);
}

absl::Status Tx::QueueBlock(uint64_t vol, uint64_t block_id, uint64_t object_size) {
  return Exec(db,
              "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
              "VALUES (?, ?, ?, ?) ON CONFLICT (volume_id, block_id) DO NOTHING",
              vol, block_id, object_size, now);
}

absl::Status Tx::FreeInode(uint64_t vol, uint64_t ino) {
  RETURN_IF_ERROR(QueueBlocksOfInode(vol, ino));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ?", vol, ino));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM xattrs WHERE volume_id = ? AND ino = ?", vol, ino));
  RETURN_IF_ERROR(Exec(db, "DELETE FROM sustained WHERE volume_id = ? AND ino = ?", vol, ino));
  return Exec(db, "DELETE FROM inodes WHERE volume_id = ? AND ino = ?", vol, ino);
}

absl::Status Tx::FreeIfOrphan(uint64_t vol, uint64_t ino) {
  ASSIGN_OR_RETURN(std::optional<Inode> n, FindInode(vol, ino));
  if (!n || n->nlink > 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(int64_t held, QueryInt(db, 0,
                                          "SELECT 1 FROM sustained WHERE volume_id = ? AND "
                                          "ino = ? LIMIT 1",
                                          vol, ino));
  if (held != 0) return absl::OkStatus();
  return FreeInode(vol, ino);
}

absl::Status Tx::CheckLiveSession(uint64_t session_id, uint64_t vol, absl::Duration timeout) {
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

absl::StatusOr<Inode> Tx::DropLink(uint64_t vol, Inode n, uint64_t session_id, bool sustain,
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

absl::Status Tx::EndSession(uint64_t session_id) {
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

}  // namespace nighfs::meta::internal
