// MetaServiceImpl's proxy groups (issue 13): their configuration (admin) and what a mount
// routes over (GetVolumeRoutes). See proto/meta.proto, "proxy groups".
//
// routes_version is per volume (volumes.routes_version, schema v7): every mutation that changes
// what a volume routes over bumps the version of exactly the volumes it affects, in the same
// transaction, so a mount comparing its Heartbeat's version never misses a change and is not
// woken by another volume's.
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "meta/meta_service_impl.h"

namespace nighfs::meta::internal {
namespace {

constexpr int kMaxGroupMembers = 64;
constexpr size_t kMaxCodeBytes = 32;

absl::Status CheckCode(std::string_view what, std::string_view code) {
  const bool ok = !code.empty() && code.size() <= kMaxCodeBytes &&
                  std::all_of(code.begin(), code.end(), [](char c) {
                    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
                           absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '-';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(std::string(what), " ", Quote(code.substr(0, 64)),
                                                 ": want 1 to ", kMaxCodeBytes,
                                                 " characters of a-z, 0-9 and -"));
}

absl::Status CheckMembers(const google::protobuf::RepeatedPtrField<std::string>& addresses) {
  if (addresses.empty() || addresses.size() > kMaxGroupMembers) {
    return absl::InvalidArgumentError(absl::StrCat("a proxy group has 1 to ", kMaxGroupMembers,
                                                   " members, not ", addresses.size()));
  }
  absl::flat_hash_set<std::string_view> seen;
  for (const std::string& a : addresses) {
    RETURN_IF_ERROR(CheckProxyAddress(a));
    if (!seen.insert(a).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("proxy address ", Quote(a), " is listed twice"));
    }
  }
  return absl::OkStatus();
}

// Replaces the members of group `id` and registers them as known proxies: the admin named
// them, so a Block.holder naming one is accepted before that proxy ever called
// AuthorizeBlockAccess (token_id 0; a proxy's own call later records its token).
absl::Status WriteMembers(Connection* db, uint64_t id,
                          const google::protobuf::RepeatedPtrField<std::string>& addresses,
                          int64_t now) {
  RETURN_IF_ERROR(Exec(db, "DELETE FROM proxy_group_members WHERE group_id = ?", id));
  int64_t position = 0;
  for (const std::string& a : addresses) {
    RETURN_IF_ERROR(Exec(db,
                         "INSERT INTO proxy_group_members (group_id, address, position) "
                         "VALUES (?, ?, ?)",
                         id, Text{a}, position++));
    RETURN_IF_ERROR(Exec(db,
                         "INSERT INTO known_proxies (address, token_id, last_seen_ns) "
                         "VALUES (?, 0, ?) ON CONFLICT (address) DO NOTHING",
                         Text{a}, now));
  }
  return absl::OkStatus();
}

// The group `id` with its members in their configured order; NotFound if there is none.
absl::StatusOr<pb::ProxyGroup> LoadGroup(Connection* db, uint64_t id) {
  pb::ProxyGroup g;
  {
    ASSIGN_OR_RETURN(auto st, Query(db,
                                    "SELECT provider_code, region_code, created_ns, updated_ns "
                                    "FROM proxy_groups WHERE id = ?",
                                    id));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::NotFoundError(absl::StrCat("no proxy group ", id));
    g.set_id(id);
    g.set_provider_code(st->ColumnText(0));
    g.set_region_code(st->ColumnText(1));
    g.set_created_ns(st->ColumnInt64(2));
    g.set_updated_ns(st->ColumnInt64(3));
  }
  ASSIGN_OR_RETURN(auto st, Query(db,
                                  "SELECT address FROM proxy_group_members WHERE group_id = ? "
                                  "ORDER BY position",
                                  id));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    g.add_addresses(st->ColumnText(0));
  }
  return g;
}

absl::StatusOr<std::vector<uint64_t>> Ids(Connection* db, std::string_view sql, uint64_t arg) {
  std::vector<uint64_t> ids;
  ASSIGN_OR_RETURN(auto st, Query(db, sql, arg));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    ids.push_back(static_cast<uint64_t>(st->ColumnInt64(0)));
  }
  return ids;
}

absl::Status BumpRoutes(Connection* db, uint64_t volume_id) {
  return Exec(db, "UPDATE volumes SET routes_version = routes_version + 1 WHERE id = ?",
              volume_id);
}

}  // namespace

absl::StatusOr<pb::ProxyGroupResponse> MetaServiceImpl::CreateProxyGroup(
    const pb::CreateProxyGroupRequest& req) {
  RETURN_IF_ERROR(CheckCode("provider code", req.provider_code()));
  RETURN_IF_ERROR(CheckCode("region code", req.region_code()));
  RETURN_IF_ERROR(CheckMembers(req.addresses()));
  return WriteOnce("CreateProxyGroup", req.request_id(),
                   [&](Tx& tx) -> absl::StatusOr<pb::ProxyGroupResponse> {
                     RETURN_IF_ERROR(Exec(tx.db,
                                          "INSERT INTO proxy_groups (provider_code, region_code, "
                                          "created_ns, updated_ns) VALUES (?, ?, ?, ?)",
                                          Text{req.provider_code()}, Text{req.region_code()},
                                          tx.now, tx.now));
                     const auto id = static_cast<uint64_t>(tx.db->LastInsertId());
                     RETURN_IF_ERROR(WriteMembers(tx.db, id, req.addresses(), tx.now));
                     // No volume is associated with a new group: no routes_version changes.
                     pb::ProxyGroupResponse r;
                     ASSIGN_OR_RETURN(*r.mutable_group(), LoadGroup(tx.db, id));
                     NIGHFS_LOG(INFO) << "created proxy group " << id << " ("
                                      << req.provider_code() << "/" << req.region_code() << ", "
                                      << req.addresses_size() << " member(s))";
                     return r;
                   });
}

absl::StatusOr<pb::ProxyGroupResponse> MetaServiceImpl::UpdateProxyGroup(
    const pb::UpdateProxyGroupRequest& req) {
  RETURN_IF_ERROR(CheckMembers(req.addresses()));
  return WriteOnce("UpdateProxyGroup", req.request_id(),
                   [&](Tx& tx) -> absl::StatusOr<pb::ProxyGroupResponse> {
                     RETURN_IF_ERROR(LoadGroup(tx.db, req.id()).status());
                     RETURN_IF_ERROR(Exec(tx.db,
                                          "UPDATE proxy_groups SET updated_ns = ? WHERE id = ?",
                                          tx.now, req.id()));
                     RETURN_IF_ERROR(WriteMembers(tx.db, req.id(), req.addresses(), tx.now));
                     ASSIGN_OR_RETURN(std::vector<uint64_t> volumes,
                                      Ids(tx.db,
                                          "SELECT volume_id FROM volume_proxy_groups "
                                          "WHERE group_id = ?",
                                          req.id()));
                     for (uint64_t v : volumes) RETURN_IF_ERROR(BumpRoutes(tx.db, v));
                     pb::ProxyGroupResponse r;
                     ASSIGN_OR_RETURN(*r.mutable_group(), LoadGroup(tx.db, req.id()));
                     NIGHFS_LOG(INFO) << "updated proxy group " << req.id() << " ("
                                      << req.addresses_size() << " member(s), "
                                      << volumes.size() << " volume(s) re-route)";
                     return r;
                   });
}

absl::StatusOr<pb::ListProxyGroupsResponse> MetaServiceImpl::ListProxyGroups(
    const pb::ListProxyGroupsRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListProxyGroupsResponse> {
    ASSIGN_OR_RETURN(std::vector<uint64_t> ids,
                     Ids(tx.db, "SELECT id FROM proxy_groups WHERE id > ? ORDER BY id", 0));
    pb::ListProxyGroupsResponse r;
    for (uint64_t id : ids) {
      ASSIGN_OR_RETURN(*r.add_groups(), LoadGroup(tx.db, id));
    }
    return r;
  });
}

absl::StatusOr<pb::DeleteProxyGroupResponse> MetaServiceImpl::DeleteProxyGroup(
    const pb::DeleteProxyGroupRequest& req) {
  return WriteOnce("DeleteProxyGroup", req.request_id(),
                   [&](Tx& tx) -> absl::StatusOr<pb::DeleteProxyGroupResponse> {
                     RETURN_IF_ERROR(LoadGroup(tx.db, req.id()).status());
                     ASSIGN_OR_RETURN(int64_t used,
                                      QueryInt(tx.db, 0,
                                               "SELECT COUNT(*) FROM volume_proxy_groups "
                                               "WHERE group_id = ?",
                                               req.id()));
                     if (used > 0) {
                       return absl::FailedPreconditionError(absl::StrCat(
                           "proxy group ", req.id(), " is associated with ", used,
                           " volume(s); delete those volume proxy groups first"));
                     }
                     // Its members stay known proxies: blocks they hold unflushed keep a
                     // holder that readers may still follow.
                     RETURN_IF_ERROR(Exec(tx.db,
                                          "DELETE FROM proxy_group_members WHERE group_id = ?",
                                          req.id()));
                     RETURN_IF_ERROR(
                         Exec(tx.db, "DELETE FROM proxy_groups WHERE id = ?", req.id()));
                     NIGHFS_LOG(INFO) << "deleted proxy group " << req.id();
                     return pb::DeleteProxyGroupResponse();
                   });
}

absl::StatusOr<pb::CreateVolumeProxyGroupResponse> MetaServiceImpl::CreateVolumeProxyGroup(
    const pb::CreateVolumeProxyGroupRequest& req) {
  return WriteOnce(
      "CreateVolumeProxyGroup", req.request_id(),
      [&](Tx& tx) -> absl::StatusOr<pb::CreateVolumeProxyGroupResponse> {
        ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume()));
        if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
        RETURN_IF_ERROR(LoadGroup(tx.db, req.proxy_group_id()).status());
        ASSIGN_OR_RETURN(int64_t exists,
                         QueryInt(tx.db, 0,
                                  "SELECT COUNT(*) FROM volume_proxy_groups "
                                  "WHERE volume_id = ? AND group_id = ?",
                                  v->id, req.proxy_group_id()));
        if (exists > 0) {
          return absl::AlreadyExistsError(absl::StrCat("volume ", req.volume(),
                                                       " is already associated with proxy group ",
                                                       req.proxy_group_id()));
        }
        RETURN_IF_ERROR(Exec(tx.db,
                             "INSERT INTO volume_proxy_groups (volume_id, group_id, created_ns) "
                             "VALUES (?, ?, ?)",
                             v->id, req.proxy_group_id(), tx.now));
        RETURN_IF_ERROR(BumpRoutes(tx.db, v->id));
        pb::CreateVolumeProxyGroupResponse r;
        r.mutable_association()->set_volume(v->name);
        r.mutable_association()->set_proxy_group_id(req.proxy_group_id());
        r.mutable_association()->set_created_ns(tx.now);
        NIGHFS_LOG(INFO) << "associated volume " << v->name << " with proxy group "
                         << req.proxy_group_id();
        return r;
      });
}

absl::StatusOr<pb::ListVolumeProxyGroupsResponse> MetaServiceImpl::ListVolumeProxyGroups(
    const pb::ListVolumeProxyGroupsRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::ListVolumeProxyGroupsResponse> {
    constexpr char kSelect[] =
        "SELECT v.name, a.group_id, a.created_ns FROM volume_proxy_groups a "
        "JOIN volumes v ON v.id = a.volume_id ";
    std::unique_ptr<Statement> st;
    if (req.volume().empty()) {
      ASSIGN_OR_RETURN(st, Query(tx.db, absl::StrCat(kSelect, "ORDER BY v.name, a.group_id")));
    } else {
      ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume()));
      if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
      ASSIGN_OR_RETURN(st, Query(tx.db, absl::StrCat(kSelect, "WHERE a.volume_id = ? "
                                                              "ORDER BY a.group_id"),
                                 v->id));
    }
    pb::ListVolumeProxyGroupsResponse r;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      pb::VolumeProxyGroup* a = r.add_associations();
      a->set_volume(st->ColumnText(0));
      a->set_proxy_group_id(static_cast<uint64_t>(st->ColumnInt64(1)));
      a->set_created_ns(st->ColumnInt64(2));
    }
    return r;
  });
}

absl::StatusOr<pb::DeleteVolumeProxyGroupResponse> MetaServiceImpl::DeleteVolumeProxyGroup(
    const pb::DeleteVolumeProxyGroupRequest& req) {
  return WriteOnce(
      "DeleteVolumeProxyGroup", req.request_id(),
      [&](Tx& tx) -> absl::StatusOr<pb::DeleteVolumeProxyGroupResponse> {
        ASSIGN_OR_RETURN(std::optional<VolumeRow> v, tx.FindVolumeByName(req.volume()));
        if (!v) return absl::NotFoundError(absl::StrCat("no volume named ", req.volume()));
        RETURN_IF_ERROR(Exec(tx.db,
                             "DELETE FROM volume_proxy_groups WHERE volume_id = ? AND group_id = ?",
                             v->id, req.proxy_group_id()));
        if (tx.db->Changes() == 0) {
          return absl::NotFoundError(absl::StrCat("volume ", req.volume(),
                                                  " is not associated with proxy group ",
                                                  req.proxy_group_id()));
        }
        RETURN_IF_ERROR(BumpRoutes(tx.db, v->id));
        NIGHFS_LOG(INFO) << "dissociated volume " << v->name << " from proxy group "
                         << req.proxy_group_id();
        return pb::DeleteVolumeProxyGroupResponse();
      });
}

absl::StatusOr<pb::GetVolumeRoutesResponse> MetaServiceImpl::GetVolumeRoutes(
    const pb::GetVolumeRoutesRequest& req) {
  return Read([&](Tx& tx) -> absl::StatusOr<pb::GetVolumeRoutesResponse> {
    ASSIGN_OR_RETURN(int64_t version, QueryInt(tx.db, 0,
                                               "SELECT routes_version FROM volumes WHERE id = ?",
                                               req.volume_id()));
    if (version == 0) return absl::NotFoundError(absl::StrCat("no volume ", req.volume_id()));
    ASSIGN_OR_RETURN(std::vector<uint64_t> groups,
                     Ids(tx.db,
                         "SELECT group_id FROM volume_proxy_groups WHERE volume_id = ? "
                         "ORDER BY group_id",
                         req.volume_id()));
    pb::GetVolumeRoutesResponse r;
    r.set_routes_version(static_cast<uint64_t>(version));
    for (uint64_t g : groups) {
      ASSIGN_OR_RETURN(*r.add_groups(), LoadGroup(tx.db, g));
    }
    return r;
  });
}

}  // namespace nighfs::meta::internal
