// MetaServiceImpl's calls for proxy servers (AuthorizeBlockAccess, DeadBlocks) and the known
// proxies a Block.holder must name; see proto/meta.proto, "proxies", and docs/ARCHITECTURE.md
// for how a proxy's writeback and the garbage collector agree.
//
// Who may call them is the RPC layer's business (meta/auth.cc: a proxy token or the admin
// token, never a volume token); in-process callers are trusted.
#include <openssl/crypto.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "meta/auth.h"
#include "meta/meta_service_impl.h"
#include "meta/principal.h"

namespace nighfs::meta::internal {
namespace {

constexpr size_t kMaxProxyAddressBytes = 255;
constexpr int kMaxDeadBlocksIds = 10'000;
// Ids per IN (...) list: well under SQLite's bound parameters limit.
constexpr size_t kDeadBlocksBatch = 500;
// A known proxy's row is rewritten at most this often by AuthorizeBlockAccess (a hot path).
constexpr int64_t kProxyNoteIntervalNs = int64_t{60} * 1'000'000'000;
// Entries of the in-memory "recently noted" map before it is cleared (a bound, not a cache
// that must hit: a miss costs one small write).
constexpr size_t kMaxNotedProxies = 10'000;

bool IsHostChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

// "(?, ?, ...)" with `n` parameters, for an IN list.
std::string InList(size_t n) {
  std::string s = "(";
  for (size_t i = 0; i < n; ++i) s += i == 0 ? "?" : ", ?";
  return s + ")";
}

// The ids of `ids` (within volume `vol`) that `sql` (volume_id = ?1, block_id IN (...)) returns.
absl::Status CollectIn(Connection* db, const std::string& sql, uint64_t vol,
                       const std::vector<uint64_t>& ids, absl::flat_hash_set<uint64_t>* out) {
  ASSIGN_OR_RETURN(std::unique_ptr<Statement> st, db->Prepare(sql));
  int index = 1;
  st->BindInt64(index++, static_cast<int64_t>(vol));
  for (uint64_t id : ids) st->BindInt64(index++, static_cast<int64_t>(id));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::OkStatus();
    out->insert(static_cast<uint64_t>(st->ColumnInt64(0)));
  }
}

// Whether volume `vol`, absent from the volumes table, existed once: ids are never reused, so
// every block id of it is dead for good.
absl::StatusOr<bool> WasDeleted(Connection* db, uint64_t vol) {
  ASSIGN_OR_RETURN(int64_t tomb,
                   QueryInt(db, 0, "SELECT COUNT(*) FROM deleted_volumes WHERE id = ?", vol));
  if (tomb > 0) return true;
  ASSIGN_OR_RETURN(int64_t highest_deleted, GetMetaInt(db, "max_deleted_volume_id", 0));
  if (static_cast<int64_t>(vol) <= highest_deleted) return true;
  ASSIGN_OR_RETURN(int64_t highest_live, QueryInt(db, 0, "SELECT MAX(id) FROM volumes"));
  return static_cast<int64_t>(vol) < highest_live;
}

}  // namespace

absl::Status CheckProxyAddress(std::string_view address) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "proxy address ", Quote(address.substr(0, 64)), ": ", why,
        " (want HOST:PORT, [IPv6]:PORT, or one of those after http://)"));
  };
  if (address.size() > kMaxProxyAddressBytes) {
    return bad(absl::StrCat("longer than ", kMaxProxyAddressBytes, " bytes"));
  }
  std::string_view rest = address;
  // The scheme says how to reach it, as every nighfs address does: bare = https.
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  }
  const size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = rest.substr(0, colon);
  const std::string_view port = rest.substr(colon + 1);
  uint32_t port_number = 0;
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(),
                   [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
      !absl::SimpleAtoi(std::string(port), &port_number) || port_number == 0 || port_number > 65535) {
    return bad("the port must be a number in 1..65535");
  }
  if (host.starts_with("[")) {
    if (host.size() < 3 || !host.ends_with("]")) return bad("unbalanced brackets");
    for (char c : host.substr(1, host.size() - 2)) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') {
        return bad("not an IPv6 address in brackets");
      }
    }
    return absl::OkStatus();
  }
  if (host.empty()) return bad("no host");
  if (!std::all_of(host.begin(), host.end(), IsHostChar) || host.front() == '-' ||
      host.front() == '.') {
    return bad("the host must be a DNS name or an IP address");
  }
  return absl::OkStatus();
}

absl::Status MetaServiceImpl::NoteProxy(const std::string& address, uint64_t token_id) {
  const int64_t now = Now();
  {
    absl::MutexLock lock(&proxies_mu_);
    auto it = noted_proxies_.find(address);
    if (it != noted_proxies_.end() && it->second.token_id == token_id &&
        now - it->second.written_ns < kProxyNoteIntervalNs && now >= it->second.written_ns) {
      return absl::OkStatus();
    }
  }
  RETURN_IF_ERROR(Write([&](Tx& tx) -> absl::Status {
    return Exec(tx.db,
                "INSERT INTO known_proxies (address, token_id, last_seen_ns) VALUES (?, ?, ?) "
                "ON CONFLICT (address) DO UPDATE SET token_id = excluded.token_id, "
                "last_seen_ns = excluded.last_seen_ns",
                Text{address}, token_id, tx.now);
  }));
  absl::MutexLock lock(&proxies_mu_);
  if (noted_proxies_.size() >= kMaxNotedProxies) noted_proxies_.clear();
  noted_proxies_[address] = NotedProxy{token_id, now};
  return absl::OkStatus();
}

absl::StatusOr<pb::AuthorizeBlockAccessResponse> MetaServiceImpl::AuthorizeBlockAccess(
    const pb::AuthorizeBlockAccessRequest& req) {
  if (!req.proxy_address().empty()) {
    RETURN_IF_ERROR(CheckProxyAddress(req.proxy_address()));
    // The proxy itself is authenticated (auth.cc): it is known whatever its client presents.
    RETURN_IF_ERROR(NoteProxy(req.proxy_address(), CurrentPrincipal().token_id));
  }
  const std::string& secret = req.token();
  if (secret.empty()) return absl::UnauthenticatedError("no client token");
  pb::AuthorizeBlockAccessResponse r;
  if (secret.starts_with(kAdminTokenPrefix)) {
    const std::string hash = Sha256(secret);
    const std::string& admin = options_.admin_token_sha256;
    if (admin.empty() || admin.size() != hash.size() ||
        CRYPTO_memcmp(admin.data(), hash.data(), hash.size()) != 0) {
      return absl::UnauthenticatedError("invalid admin token");
    }
    ASSIGN_OR_RETURN(VolumeRow v, Read([&](Tx& tx) -> absl::StatusOr<VolumeRow> {
      ASSIGN_OR_RETURN(std::optional<VolumeRow> found, tx.FindVolumeByName(req.volume()));
      if (!found) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
      return *found;
    }));
    *r.mutable_volume() = v.Proto();
    r.set_access(pb::ACCESS_WRITE);
    r.set_expires_ns(0);
    r.set_path("/");
    return r;
  }
  // The lookup of a bearer token (auth.cc), uncached: the proxy caches the answer.
  ASSIGN_OR_RETURN(std::optional<TokenGrant> grant, FindToken(secret));
  if (!grant) return absl::UnauthenticatedError("invalid token");
  RETURN_IF_ERROR(CheckTokenLive(*grant, Now()));
  if (grant->proxy) {
    return absl::PermissionDeniedError("a proxy token grants no access to blocks");
  }
  if (grant->volume_name != req.volume()) {
    return absl::PermissionDeniedError(
        absl::StrCat("this token is not valid for volume ", Quote(req.volume())));
  }
  ASSIGN_OR_RETURN(VolumeRow v, Read([&](Tx& tx) { return tx.GetVolume(grant->volume_id); }));
  *r.mutable_volume() = v.Proto();
  r.set_access(grant->can_write ? pb::ACCESS_WRITE : pb::ACCESS_READ);
  r.set_expires_ns(grant->expires_ns);
  r.set_path(grant->path);
  return r;
}

absl::StatusOr<pb::DeadBlocksResponse> MetaServiceImpl::DeadBlocks(
    const pb::DeadBlocksRequest& req) {
  if (req.ids_size() > kMaxDeadBlocksIds) {
    return absl::InvalidArgumentError(
        absl::StrCat("DeadBlocks takes at most ", kMaxDeadBlocksIds, " ids, not ", req.ids_size()));
  }
  std::vector<uint64_t> ids(req.ids().begin(), req.ids().end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  const uint64_t vol = req.volume_id();
  return Read([&](Tx& tx) -> absl::StatusOr<pb::DeadBlocksResponse> {
    pb::DeadBlocksResponse r;
    ASSIGN_OR_RETURN(int64_t exists,
                     QueryInt(tx.db, 0, "SELECT COUNT(*) FROM volumes WHERE id = ?", vol));
    if (exists == 0) {
      ASSIGN_OR_RETURN(bool deleted, WasDeleted(tx.db, vol));
      if (!deleted) return absl::NotFoundError(absl::StrCat("no volume with id ", vol));
      for (uint64_t id : ids) r.add_dead_ids(id);
      return r;
    }
    for (size_t begin = 0; begin < ids.size(); begin += kDeadBlocksBatch) {
      const std::vector<uint64_t> batch(
          ids.begin() + begin, ids.begin() + std::min(ids.size(), begin + kDeadBlocksBatch));
      const std::string in = InList(batch.size());
      // Freed: queued for deletion, or deleted (a tombstone within the retention).
      absl::flat_hash_set<uint64_t> freed;
      RETURN_IF_ERROR(CollectIn(tx.db,
                                absl::StrCat("SELECT block_id FROM gc_blocks WHERE volume_id = ? "
                                             "AND block_id IN ", in),
                                vol, batch, &freed));
      RETURN_IF_ERROR(CollectIn(tx.db,
                                absl::StrCat("SELECT block_id FROM gc_tombstones WHERE "
                                             "volume_id = ? AND block_id IN ", in),
                                vol, batch, &freed));
      absl::flat_hash_set<uint64_t> referenced;
      RETURN_IF_ERROR(CollectIn(tx.db,
                                absl::StrCat("SELECT block_id FROM blocks WHERE volume_id = ? "
                                             "AND block_id IN ", in),
                                vol, batch, &referenced));
      // Reclaimed ranges overlapping the batch (sorted, disjoint): an unreferenced id in one
      // can never be committed (CommitBlocks answers ESTALE).
      std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [first, end)
      {
        ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                        "SELECT first_id, count FROM block_id_ranges "
                                        "WHERE volume_id = ? AND reclaimed <> 0 AND "
                                        "first_id <= ? AND first_id + count > ? "
                                        "ORDER BY first_id",
                                        vol, batch.back(), batch.front()));
        while (true) {
          ASSIGN_OR_RETURN(bool row, st->Step());
          if (!row) break;
          const uint64_t first = static_cast<uint64_t>(st->ColumnInt64(0));
          ranges.emplace_back(first, first + static_cast<uint64_t>(st->ColumnInt64(1)));
        }
      }
      size_t ri = 0;
      for (uint64_t id : batch) {
        while (ri < ranges.size() && ranges[ri].second <= id) ++ri;
        const bool reclaimed = ri < ranges.size() && ranges[ri].first <= id;
        if (freed.contains(id) || (reclaimed && !referenced.contains(id))) r.add_dead_ids(id);
      }
    }
    return r;
  });
}

}  // namespace nighfs::meta::internal
