// The POSIX permission rules the metadata server applies to the process a request is made for
// (the request's `caller`, see "Security" in proto/meta.proto), as the kernel applies them
// with `default_permissions` (fs/namei.c, fs/attr.c, fs/xattr.c), and the open grants that let
// an open descriptor keep working after a permission change.
//
// Everything here is pure (no database, no clock): the operations read the inodes, call these
// rules, and only then change anything. Each rule returns OK or the errno the kernel gives
// (EACCES for a missing mode bit, EPERM for an ownership rule) as an FsError.
//
// No POSIX ACLs (the mount refuses system.posix_acl_*), no capabilities finer than root: uid 0
// bypasses every check here as CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, CAP_MKNOD and
// CAP_SYS_ADMIN would (exec permission is not the server's concern).
#ifndef NIGHFS_META_ACCESS_H_
#define NIGHFS_META_ACCESS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "meta.pb.h"

namespace nighfs::meta::internal {

// Who a call acts for.
struct Cred {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary

  static Cred Root() { return Cred{}; }
  bool IsRoot() const { return uid == 0; }
  // The primary or a supplementary group.
  bool InGroup(uint32_t g) const;
};

// The mode and owner of an inode, as the rules see it.
struct Node {
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

// Longest supplementary group list a request may carry (EINVAL beyond).
inline constexpr size_t kMaxCallerGroups = 1024;

// The credentials a request acts with: its `caller` when set; without one, root for an
// in-process or admin principal (tests and tools), and EACCES for a volume-token principal (a
// mount always sends it). Reads meta/principal.h's CurrentPrincipal(): call it on the thread
// that received the request, before entering a transaction.
absl::StatusOr<Cred> ResolveCaller(bool has_caller, const ::nighfs::meta::v1::Caller& caller);

inline constexpr int kMayExec = 1;
inline constexpr int kMayWrite = 2;
inline constexpr int kMayRead = 4;

// generic_permission(): every bit of `may` in the owner, group or other class that applies.
absl::Status CheckPermission(const Cred& c, const Node& n, int may);
bool IsOwnerOrRoot(const Cred& c, const Node& n);

// Search permission on a directory a call traverses (Lookup, and every parent a call names).
absl::Status CheckSearch(const Cred& c, const Node& dir);
// may_create(): write and search on the directory a name is added to.
absl::Status CheckCreate(const Cred& c, const Node& dir);
// may_delete(): write and search on the directory, and in a sticky directory only the owner
// of the entry or of the directory (or root) removes or replaces it (EPERM).
absl::Status CheckDelete(const Cred& c, const Node& dir, const Node& victim);
// vfs_rename(): may_delete of the source; may_create or may_delete (when replaced) of the
// target; a directory moving to another parent needs write on itself (its ".." changes), so
// does the target of an exchange moving the other way.
absl::Status CheckRename(const Cred& c, const Node& old_dir, const Node& src, const Node& new_dir,
                         const std::optional<Node>& dst, bool same_parent, bool exchange);
// Device nodes need CAP_MKNOD (EPERM); fifos, sockets and regular files do not.
absl::Status CheckMknodType(const Cred& c, uint32_t mode);

// SetAttr (setattr_prepare() and the truncate and utimes callers). `valid` holds
// SetAttrValid bits, `mode` the permission bits asked for; `write_granted` says the request
// carries an open grant for writing the file (ftruncate through a descriptor opened for
// writing needs no write permission now).
//
// A mode change by someone other than the owner that only clears S_ISUID/S_ISGID is allowed
// to a writer (write permission or grant): it is the kernel stripping them on a write or
// truncate by another user (file_remove_privs(), sent with ATTR_FORCE, which FUSE does not
// carry), not a chmod.
absl::Status CheckSetAttr(const Cred& c, const Node& n, uint32_t valid, uint32_t mode,
                          uint32_t uid, uint32_t gid, bool write_granted);
// The mode after a permitted SetAttr, given the mode as the request would set it (`mode`, the
// file's type bits included) and its gid after the change: a chmod by a caller outside the
// file's group (not root) drops S_ISGID; a chown or chgrp of a non-directory by anyone but
// root clears S_ISUID, and S_ISGID when group-executable (a setgid file without group execute
// is a mandatory-locking mark, which the kernel keeps).
uint32_t ModeAfterSetAttr(const Cred& c, uint32_t valid, uint32_t mode, uint32_t new_gid);

// Extended attributes: the name and size limits (ERANGE for an empty name or one over 255 bytes;
// SetXattr answers E2BIG for a value over 64 KiB), the namespaces the mount refuses (system.*: EOPNOTSUPP to set or
// remove, ENODATA to get), then xattr_permission(): trusted.* root only (EPERM to change,
// ENODATA to read); security.* root only to change, anyone to read; user.* only on regular
// files and directories (EPERM to change, ENODATA to read elsewhere), only by the owner on a
// sticky directory (EPERM), and otherwise read or write permission like the data.
absl::Status CheckXattrName(std::string_view name);
absl::Status CheckXattrAccess(const Cred& c, const Node& n, std::string_view name, bool write);

// ---- open grants ----
// Checked once, at open, a permission stays with the descriptor: a process may open a file
// for writing, fchmod it to 0 and still write and ftruncate through it, as on a local file
// system. The server answers an open (GetBlocksRequest.open_access, or MknodRequest.open_access
// for a file it creates) with a grant: the access bits and an HMAC-SHA256, under a key kept in
// the database, of the volume, the inode, the session of the principal and the access. Later
// data calls for that descriptor present it instead of having the caller's permission checked
// again. A grant cannot be forged without the key, nor used for another inode, volume or
// session; it ends with its session.
std::string MakeGrant(std::string_view key, uint64_t volume, uint64_t ino, uint64_t session,
                      int access);
// True if `grant` is one MakeGrant made for these and covers every bit of `need`.
bool GrantCovers(std::string_view key, std::string_view grant, uint64_t volume, uint64_t ino,
                 uint64_t session, int need);

}  // namespace nighfs::meta::internal

#endif  // NIGHFS_META_ACCESS_H_
