// The POSIX permission rules of meta/access.h. Each follows the Linux 6.1 function named in
// its comment, so the server answers as the kernel would with `default_permissions`.
#include "meta/access.h"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crypto.h"
#include "meta/meta_service_impl.h"
#include "meta/principal.h"

namespace nighfs::meta::internal {
namespace {

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

absl::Status Denied(std::string_view what) {
  return FsError(EACCES, absl::StrCat("permission denied: ", std::string(what)));
}

absl::Status NotPermitted(std::string_view what) {
  return FsError(EPERM, absl::StrCat("operation not permitted: ", std::string(what)));
}

// check_sticky(): in a sticky directory only the owner of the entry or of the directory.
bool StickyForbids(const Cred& c, const Node& dir, const Node& victim) {
  if (!(dir.mode & S_ISVTX) || c.IsRoot()) return false;
  return c.uid != victim.uid && c.uid != dir.uid;
}

}  // namespace

bool Cred::InGroup(uint32_t g) const {
  return g == gid || std::find(groups.begin(), groups.end(), g) != groups.end();
}

absl::StatusOr<Cred> ResolveCaller(bool has_caller, const ::nighfs::meta::v1::Caller& caller) {
  if (has_caller) {
    if (static_cast<size_t>(caller.groups_size()) > kMaxCallerGroups) {
      return FsError(EINVAL, absl::StrCat("caller has ", caller.groups_size(),
                                          " supplementary groups; at most ", kMaxCallerGroups));
    }
    return Cred{caller.uid(), caller.gid(), {caller.groups().begin(), caller.groups().end()}};
  }
  switch (CurrentPrincipal().kind) {
    case Principal::Kind::kInternal:
    case Principal::Kind::kAdmin:
      return Cred::Root();
    case Principal::Kind::kVolumeToken:
    case Principal::Kind::kProxy:  // reaches no namespace call (auth.cc); never root
      break;
  }
  return FsError(EACCES, "a request made under a volume token must name its caller");
}

absl::Status CheckPermission(const Cred& c, const Node& n, int may) {
  if (c.IsRoot()) {
    // CAP_DAC_OVERRIDE: anything but executing a file no one may execute.
    if ((may & kMayExec) && !S_ISDIR(n.mode) && (n.mode & 0111) == 0) {
      return Denied("no execute bit is set");
    }
    return absl::OkStatus();
  }
  uint32_t bits = n.mode;
  if (c.uid == n.uid) {
    bits >>= 6;
  } else if (c.InGroup(n.gid)) {
    bits >>= 3;
  }
  if ((static_cast<int>(bits & 7) & may) == may) return absl::OkStatus();
  return Denied(absl::StrFormat("mode %04o, owner %u:%u, caller %u:%u", n.mode & 07777, n.uid,
                                n.gid, c.uid, c.gid));
}

bool IsOwnerOrRoot(const Cred& c, const Node& n) { return c.IsRoot() || c.uid == n.uid; }

absl::Status CheckSearch(const Cred& c, const Node& dir) {
  return CheckPermission(c, dir, kMayExec);
}

absl::Status CheckCreate(const Cred& c, const Node& dir) {
  return CheckPermission(c, dir, kMayWrite | kMayExec);
}

absl::Status CheckDelete(const Cred& c, const Node& dir, const Node& victim) {
  if (absl::Status s = CheckPermission(c, dir, kMayWrite | kMayExec); !s.ok()) return s;
  if (StickyForbids(c, dir, victim)) {
    return NotPermitted("sticky directory: only the owner of the entry or the directory");
  }
  return absl::OkStatus();
}

absl::Status CheckRename(const Cred& c, const Node& old_dir, const Node& src, const Node& new_dir,
                         const std::optional<Node>& dst, bool same_parent, bool exchange) {
  if (absl::Status s = CheckDelete(c, old_dir, src); !s.ok()) return s;
  if (absl::Status s = dst ? CheckDelete(c, new_dir, *dst) : CheckCreate(c, new_dir); !s.ok()) {
    return s;
  }
  if (!same_parent) {
    if (S_ISDIR(src.mode)) {
      if (absl::Status s = CheckPermission(c, src, kMayWrite); !s.ok()) return s;
    }
    if (exchange && dst && S_ISDIR(dst->mode)) {
      if (absl::Status s = CheckPermission(c, *dst, kMayWrite); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckMknodType(const Cred& c, uint32_t mode) {
  const uint32_t type = mode & S_IFMT;
  if ((type == S_IFCHR || type == S_IFBLK) && !c.IsRoot()) {
    return NotPermitted("only root creates device nodes");
  }
  return absl::OkStatus();
}

absl::Status CheckSetAttr(const Cred& c, const Node& n, uint32_t valid, uint32_t mode,
                          uint32_t uid, uint32_t gid, bool write_granted) {
  namespace pb = ::nighfs::meta::v1;
  constexpr uint32_t kPrivs = S_ISUID | S_ISGID;
  // vfs_truncate()/do_sys_ftruncate(): write permission, or a descriptor open for writing.
  if ((valid & pb::SETATTR_SIZE) && !write_granted) {
    if (absl::Status s = CheckPermission(c, n, kMayWrite); !s.ok()) return s;
  }
  const uint32_t old_mode = n.mode & 07777;
  mode &= 07777;
  const bool kills_privs_only = (mode & ~kPrivs) == (old_mode & ~kPrivs) &&
                                (mode & kPrivs & ~old_mode) == 0 &&
                                (old_mode & kPrivs & ~mode) != 0;
  if ((valid & pb::SETATTR_MODE) && kills_privs_only && !IsOwnerOrRoot(c, n)) {
    if (!write_granted) {
      if (absl::Status s = CheckPermission(c, n, kMayWrite); !s.ok()) {
        return NotPermitted("only the owner changes a file's mode");
      }
    }
    valid &= ~static_cast<uint32_t>(pb::SETATTR_MODE);  // checked: the rest goes on
  }
  // setattr_prepare(), in its order.
  if (c.IsRoot()) return absl::OkStatus();
  // chown_ok(): only root gives a file away; the owner may "change" it to itself.
  if ((valid & pb::SETATTR_UID) && !(c.uid == n.uid && uid == n.uid)) {
    return NotPermitted("only root changes a file's owner");
  }
  // chgrp_ok(): the owner, to a group it is in (or the group the file has).
  if ((valid & pb::SETATTR_GID) && !(c.uid == n.uid && (c.InGroup(gid) || gid == n.gid))) {
    return NotPermitted("only the owner changes a file's group, to a group it belongs to");
  }
  if ((valid & pb::SETATTR_MODE) && c.uid != n.uid) {
    return NotPermitted("only the owner changes a file's mode");
  }
  if ((valid & (pb::SETATTR_ATIME | pb::SETATTR_MTIME | pb::SETATTR_CTIME)) && c.uid != n.uid) {
    return NotPermitted("only the owner sets a file's times");
  }
  // may_setattr(): ATTR_TOUCH (times set to now) by the owner or a writer.
  if ((valid & (pb::SETATTR_ATIME_NOW | pb::SETATTR_MTIME_NOW)) && c.uid != n.uid) {
    if (absl::Status s = CheckPermission(c, n, kMayWrite); !s.ok()) return s;
  }
  return absl::OkStatus();
}

uint32_t ModeAfterSetAttr(const Cred& c, uint32_t valid, uint32_t mode, uint32_t new_gid) {
  namespace pb = ::nighfs::meta::v1;
  if (c.IsRoot()) return mode;
  if ((valid & pb::SETATTR_MODE) && !c.InGroup(new_gid)) mode &= ~static_cast<uint32_t>(S_ISGID);
  if ((valid & (pb::SETATTR_UID | pb::SETATTR_GID)) && !S_ISDIR(mode)) {
    mode &= ~static_cast<uint32_t>(S_ISUID);
    if (mode & S_IXGRP) mode &= ~static_cast<uint32_t>(S_ISGID);
  }
  return mode;
}

absl::Status CheckXattrName(std::string_view name) {
  // Linux answers ERANGE for an empty name as for a too long one.
  if (name.empty() || name.size() > kMaxXattrNameBytes) {
    return FsError(ERANGE, absl::StrCat("xattr name of ", name.size(), " bytes is not in 1..",
                                        kMaxXattrNameBytes));
  }
  return absl::OkStatus();
}

absl::Status CheckXattrAccess(const Cred& c, const Node& n, std::string_view name, bool write) {
  if (absl::Status s = CheckXattrName(name); !s.ok()) return s;
  // The mount refuses POSIX ACLs (see CheckXattrNamespace in mount/fs_namespace.cc).
  if (HasPrefix(name, "system.")) {
    if (write) return FsError(EOPNOTSUPP, "system.* attributes (POSIX ACLs) are not supported");
    return FsError(ENODATA, absl::StrCat("no xattr ", Quote(name)));
  }
  if (HasPrefix(name, "security.")) {
    // No VFS rule; the capability LSM wants CAP_SYS_ADMIN (CAP_SETFCAP) to change one.
    if (write && !c.IsRoot()) return NotPermitted("only root changes security.* attributes");
    return absl::OkStatus();
  }
  if (HasPrefix(name, "trusted.")) {
    if (c.IsRoot()) return absl::OkStatus();
    if (write) return NotPermitted("only root changes trusted.* attributes");
    return FsError(ENODATA, absl::StrCat("no xattr ", Quote(name)));
  }
  if (HasPrefix(name, "user.")) {
    if (!S_ISREG(n.mode) && !S_ISDIR(n.mode)) {
      if (write) return NotPermitted("user.* attributes exist only on files and directories");
      return FsError(ENODATA, absl::StrCat("no xattr ", Quote(name)));
    }
    if (write && S_ISDIR(n.mode) && (n.mode & S_ISVTX) && !IsOwnerOrRoot(c, n)) {
      return NotPermitted("sticky directory: only its owner changes its user.* attributes");
    }
  }
  return CheckPermission(c, n, write ? kMayWrite : kMayRead);
}

namespace {

std::string GrantData(uint64_t volume, uint64_t ino, uint64_t session, int access) {
  std::string d = "nighfs open grant v1";
  for (uint64_t v : {volume, ino, session}) {
    for (int i = 0; i < 8; ++i) d.push_back(static_cast<char>(v >> (8 * i)));
  }
  d.push_back(static_cast<char>(access));
  return d;
}

}  // namespace

std::string MakeGrant(std::string_view key, uint64_t volume, uint64_t ino, uint64_t session,
                      int access) {
  const int a = access & (kMayRead | kMayWrite);
  return std::string(1, static_cast<char>(a)) +
         HmacSha256(key, GrantData(volume, ino, session, a));
}

bool GrantCovers(std::string_view key, std::string_view grant, uint64_t volume, uint64_t ino,
                 uint64_t session, int need) {
  if (grant.size() != 33 || key.empty() || need == 0) return false;
  const int a = static_cast<unsigned char>(grant[0]);
  if ((a & ~(kMayRead | kMayWrite)) != 0 || (a & need) != need) return false;
  const std::string mac = HmacSha256(key, GrantData(volume, ino, session, a));
  return CRYPTO_memcmp(mac.data(), grant.data() + 1, mac.size()) == 0;
}

}  // namespace nighfs::meta::internal
