// MetaServiceImpl's volume tokens (CreateToken, ListTokens, RevokeToken) and what the RPC layer
// asks of them (FindToken, InSubtree, CheckSessionKey); see docs/SECURITY.md.
//
// Secrets are never stored: a token row keeps the SHA-256 of its secret, a session row the
// SHA-256 of its key. A CreateToken or Mount retried with the same request id must return the
// same secret, but request_replies keeps replies in clear: the recorded reply has the secret
// cleared, and the secret is derived as HMAC-SHA256(secret_key_, purpose || request_id), so the
// retry recomputes it. secret_key_ is random per database and never leaves the server; a
// request id is known to the client that chose it only, and reusing one after its record
// expired makes the same secret, which the UNIQUE secret_hash refuses.
#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "meta/meta_service_impl.h"
#include "meta/principal.h"

namespace nighfs::meta::internal {
namespace {

constexpr size_t kTokenSecretBytes = 32;
constexpr size_t kMaxTokenNameBytes = 128;
// Hard links of one inode whose parents InSubtree looks at (more are refused, not scanned).
constexpr int kMaxLinksChecked = 1000;

pb::Token ReadToken(const Statement& st) {
  // id, name, volume name, access, root_path, created_ns, expires_ns
  pb::Token t;
  t.set_id(static_cast<uint64_t>(st.ColumnInt64(0)));
  t.set_name(st.ColumnText(1));
  t.set_volume(st.ColumnText(2));
  t.set_access(static_cast<pb::Access>(st.ColumnInt64(3)));
  t.set_path(st.ColumnText(4));
  t.set_created_ns(st.ColumnInt64(5));
  t.set_expires_ns(st.ColumnInt64(6));
  return t;
}

// Proxy tokens have volume_id 0 (no volume) and list with volume "".
constexpr char kTokenSelect[] =
    "SELECT t.id, t.name, COALESCE(v.name, ''), t.access, t.root_path, t.created_ns, "
    "t.expires_ns FROM tokens t LEFT JOIN volumes v ON v.id = t.volume_id "
    "WHERE t.revoked_ns = 0 AND (v.id IS NOT NULL OR t.volume_id = 0)";

}  // namespace

absl::StatusOr<std::string> LoadOrCreateSecretKey(Connection* db) {
  ASSIGN_OR_RETURN(auto txn, db->Begin(sql::TxMode::kWrite));
  std::string key;
  {
    ASSIGN_OR_RETURN(auto st, Query(db, "SELECT value FROM meta WHERE key = 'secret_key'"));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row) key = absl::HexStringToBytes(st->ColumnText(0));
  }
  if (key.size() == 32) return key;
  key = RandomBytes(32);
  RETURN_IF_ERROR(Exec(db,
                       "INSERT INTO meta (key, value) VALUES ('secret_key', ?) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                       Text{absl::BytesToHexString(key)}));
  RETURN_IF_ERROR(txn->Commit());
  return key;
}

std::string MetaServiceImpl::DeriveSecret(std::string_view purpose,
                                          const std::string& request_id, size_t bytes) const {
  if (request_id.empty()) return RandomBytes(bytes);
  std::string data(purpose);
  data.push_back('\0');
  data += request_id;
  std::string mac = HmacSha256(secret_key_, data);
  return mac.substr(0, bytes);
}

absl::StatusOr<pb::CreateTokenResponse> MetaServiceImpl::CreateToken(
    const pb::CreateTokenRequest& req) {
  const bool proxy = req.access() == pb::ACCESS_PROXY;
  if (req.access() != pb::ACCESS_READ && req.access() != pb::ACCESS_WRITE && !proxy) {
    return absl::InvalidArgumentError("a token's access must be read, write or proxy");
  }
  if (proxy && !req.volume().empty()) {
    return absl::InvalidArgumentError("a proxy token is bound to no volume: give no volume");
  }
  if (proxy && !req.path().empty() && req.path() != "/") {
    return absl::InvalidArgumentError("a proxy token has no subtree: give no path");
  }
  if (req.name().size() > kMaxTokenNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("token name longer than ", kMaxTokenNameBytes, " bytes"));
  }
  const std::string secret =
      std::string(kVolumeTokenPrefix) +
      absl::BytesToHexString(DeriveSecret("token", req.request_id(), kTokenSecretBytes));
  ASSIGN_OR_RETURN(
      pb::CreateTokenResponse resp,
      WriteOnce("CreateToken", req.request_id(),
                [&](Tx& tx) -> absl::StatusOr<pb::CreateTokenResponse> {
                  std::optional<VolumeRow> v;
                  if (proxy) {
                    v.emplace();  // id 0, name "": no volume
                  } else {
                    ASSIGN_OR_RETURN(v, tx.FindVolumeByName(req.volume()));
                    if (!v) {
                      return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
                    }
                  }
                  if (req.expires_ns() != 0 && req.expires_ns() <= tx.now) {
                    return absl::InvalidArgumentError("the token's expiry is in the past");
                  }
                  // The subtree: every component must be an existing directory.
                  uint64_t root = kRootIno;
                  std::vector<std::string> parts;
                  for (absl::string_view part : absl::StrSplit(req.path(), '/', absl::SkipEmpty())) {
                    if (part == "." || part == "..") {
                      return absl::InvalidArgumentError(
                          absl::StrCat("token path ", Quote(req.path()), ": no . or .. allowed"));
                    }
                    ASSIGN_OR_RETURN(Dentry d, tx.GetDentry(v->id, root, std::string(part)));
                    ASSIGN_OR_RETURN(Inode n, tx.GetEntryInode(v->id, d.ino));
                    if (!n.IsDir()) {
                      return FsError(ENOTDIR, absl::StrCat("token path ", Quote(req.path()),
                                                           ": ", Quote(std::string(part)),
                                                           " is not a directory"));
                    }
                    root = n.ino;
                    parts.emplace_back(part);
                  }
                  const std::string path = "/" + absl::StrJoin(parts, "/");
                  if (!req.name().empty()) {
                    ASSIGN_OR_RETURN(int64_t taken,
                                     QueryInt(tx.db, 0,
                                              "SELECT COUNT(*) FROM tokens WHERE volume_id = ? "
                                              "AND name = ? AND revoked_ns = 0",
                                              v->id, Text{req.name()}));
                    if (taken > 0) {
                      return absl::AlreadyExistsError(
                          proxy ? absl::StrCat("a proxy token named ", req.name(),
                                               " exists already")
                                : absl::StrCat("volume ", req.volume(),
                                               " already has a token named ", req.name()));
                    }
                  }
                  RETURN_IF_ERROR(Exec(tx.db,
                                       "INSERT INTO tokens (volume_id, name, secret_hash, access, "
                                       "root_path, root_ino, created_ns, expires_ns) "
                                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                       v->id, Text{req.name()}, Blob{Sha256(secret)},
                                       static_cast<int64_t>(req.access()), Text{path}, root,
                                       tx.now, req.expires_ns()));
                  pb::CreateTokenResponse r;
                  pb::Token* t = r.mutable_token();
                  t->set_id(static_cast<uint64_t>(tx.db->LastInsertId()));
                  t->set_name(req.name());
                  t->set_volume(v->name);
                  t->set_access(req.access());
                  t->set_path(path);
                  t->set_created_ns(tx.now);
                  t->set_expires_ns(req.expires_ns());
                  NIGHFS_LOG(INFO) << "created token " << t->id() << " for "
                                   << (proxy ? std::string("proxies")
                                             : absl::StrCat("volume ", v->name))
                                   << " (" << pb::Access_Name(req.access()) << ", " << path
                                   << ")";
                  return r;  // recorded without the secret (see the top of this file)
                }));
  resp.set_secret(secret);
  return resp;
}

absl::StatusOr<pb::ListTokensResponse> MetaServiceImpl::ListTokens(
    const pb::ListTokensRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListTokensResponse> {
    pb::ListTokensResponse r;
    std::unique_ptr<Statement> st;
    if (req.volume().empty()) {
      ASSIGN_OR_RETURN(st, Query(tx.db, absl::StrCat(kTokenSelect, " ORDER BY t.id")));
    } else {
      ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume()));
      if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
      ASSIGN_OR_RETURN(st, Query(tx.db, absl::StrCat(kTokenSelect, " AND t.volume_id = ? ORDER BY t.id"),
                                 v->id));
    }
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      *r.add_tokens() = ReadToken(*st);
    }
    return r;
  });
}

absl::StatusOr<pb::RevokeTokenResponse> MetaServiceImpl::RevokeToken(
    const pb::RevokeTokenRequest& req) {
  return WriteOnce("RevokeToken", req.request_id(),
                   [&](Tx& tx) -> absl::StatusOr<pb::RevokeTokenResponse> {
                     RETURN_IF_ERROR(Exec(tx.db,
                                          "UPDATE tokens SET revoked_ns = ? "
                                          "WHERE id = ? AND revoked_ns = 0",
                                          tx.now, req.id()));
                     if (tx.db->Changes() == 0) {
                       return absl::NotFoundError(absl::StrCat("no live token with id ", req.id()));
                     }
                     NIGHFS_LOG(INFO) << "revoked token " << req.id();
                     return pb::RevokeTokenResponse();
                   });
}

absl::StatusOr<std::optional<TokenGrant>> MetaServiceImpl::FindToken(std::string_view secret) {
  const std::string hash = Sha256(secret);
  return Read([&](Tx& tx) -> absl::StatusOr<std::optional<TokenGrant>> {
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT t.id, t.volume_id, COALESCE(v.name, ''), t.access, "
                                    "t.root_ino, t.expires_ns, t.revoked_ns, t.root_path, "
                                    "v.id IS NOT NULL FROM tokens t "
                                    "LEFT JOIN volumes v ON v.id = t.volume_id "
                                    "WHERE t.secret_hash = ?",
                                    Blob{hash}));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return std::optional<TokenGrant>();
    TokenGrant g;
    g.id = static_cast<uint64_t>(st->ColumnInt64(0));
    g.volume_id = static_cast<uint64_t>(st->ColumnInt64(1));
    g.volume_name = st->ColumnText(2);
    g.proxy = st->ColumnInt64(3) == pb::ACCESS_PROXY;
    g.can_write = st->ColumnInt64(3) == pb::ACCESS_WRITE;
    g.root_ino = static_cast<uint64_t>(st->ColumnInt64(4));
    g.expires_ns = st->ColumnInt64(5);
    g.revoked = st->ColumnInt64(6) != 0;
    g.path = st->ColumnText(7);
    // A volume token outlives no volume (DeleteVolume deletes them; this is belt and braces).
    if (!g.proxy && (g.volume_id == 0 || st->ColumnInt64(8) == 0)) {
      return std::optional<TokenGrant>();
    }
    return std::optional<TokenGrant>(std::move(g));
  });
}

absl::StatusOr<bool> MetaServiceImpl::InSubtree(uint64_t volume_id, uint64_t ino,
                                                uint64_t root_ino, uint64_t token_id) {
  if (root_ino == kRootIno || ino == root_ino) return true;
  return Read([&](Tx& tx) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(std::optional<Inode> n, tx.FindInode(volume_id, ino));
    if (!n) return true;  // the call itself answers ENOENT
    std::vector<uint64_t> parents;
    {
      ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                      "SELECT DISTINCT parent FROM dentries "
                                      "WHERE volume_id = ? AND ino = ? LIMIT ?",
                                      volume_id, ino, kMaxLinksChecked));
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        parents.push_back(static_cast<uint64_t>(st->ColumnInt64(0)));
      }
    }
    for (uint64_t p : parents) {
      ASSIGN_OR_RETURN(bool inside, tx.IsAncestorOrSelf(volume_id, root_ino, p));
      if (inside) return true;
    }
    if (!parents.empty() || token_id == 0) return false;
    // Nameless (unlinked while open): inside if a session of this token keeps it.
    ASSIGN_OR_RETURN(int64_t kept, QueryInt(tx.db, 0,
                                            "SELECT COUNT(*) FROM sustained s "
                                            "JOIN sessions ss ON ss.id = s.session_id "
                                            "WHERE s.volume_id = ? AND s.ino = ? "
                                            "AND ss.token_id = ?",
                                            volume_id, ino, token_id));
    return kept > 0;
  });
}

absl::Status MetaServiceImpl::CheckSessionKey(uint64_t session_id, std::string_view key,
                                              uint64_t token_id) {
  const std::string hash = Sha256(key);
  return Read([&](Tx& tx) -> absl::StatusOr<bool> {
           ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                           "SELECT token_id, key_hash FROM sessions WHERE id = ?",
                                           session_id));
           ASSIGN_OR_RETURN(bool row, st->Step());
           if (!row) {
             return absl::NotFoundError(absl::StrCat("no session ", session_id,
                                                     " (expired or unmounted); mount again"));
           }
           if (static_cast<uint64_t>(st->ColumnInt64(0)) != token_id || st->IsNull(1) ||
               key.empty() || st->ColumnBlob(1) != hash) {
             return absl::PermissionDeniedError(absl::StrCat(
                 "session ", session_id, " was not opened with this token and session key"));
           }
           return true;
         })
      .status();
}

}  // namespace nighfs::meta::internal

namespace nighfs::meta {

absl::Status CheckTokenLive(const TokenGrant& grant, int64_t now_ns) {
  if (grant.revoked) return absl::UnauthenticatedError("token revoked");
  if (grant.expires_ns != 0 && now_ns >= grant.expires_ns) {
    return absl::UnauthenticatedError("token expired");
  }
  return absl::OkStatus();
}

}  // namespace nighfs::meta
