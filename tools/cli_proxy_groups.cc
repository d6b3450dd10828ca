// `nighfs configure ... proxy-group` and `... volume-proxy-group` (issue 13): the proxy groups
// of the metadata server and which volumes route over them.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tools/cli.h"
#include "tools/cli_internal.h"
#include "tools/render.h"
#include "tools/table.h"

namespace nighfs::tools::internal {
namespace {

namespace metapb = ::nighfs::meta::v1;

std::string GroupTable(const google::protobuf::RepeatedPtrField<metapb::ProxyGroup>& groups) {
  if (groups.empty()) return "no proxy groups\n";
  Table table({"ID", "PROVIDER", "REGION", "MEMBERS"});
  for (const metapb::ProxyGroup& g : groups) {
    table.AddRow({absl::StrCat(g.id()), g.provider_code(), g.region_code(),
                  absl::StrJoin(g.addresses(), ",")});
  }
  return table.Render();
}

// "p1:7430,p2:7430" (spaces around commas allowed) -> the list; validation is the server's.
std::vector<std::string> SplitAddresses(const std::string& text) {
  std::vector<std::string> out;
  for (absl::string_view a : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    out.emplace_back(absl::StripAsciiWhitespace(a));
  }
  return out;
}

std::string RequestId() {
  // Each command is one attempt of one mutation: the client's retries reuse this id.
  return absl::StrCat("cli-", absl::ToUnixNanos(absl::Now()), "-", ::getpid());
}

}  // namespace

void ProxyGroupCommands::Add(CLI::App* configure, CLI::App* create, CLI::App* list,
                             CLI::App* del) {
  create_group_ = create->add_subcommand(
      "proxy-group", "create a proxy group: proxies at one site that share a volume's blocks");
  create_group_->add_option("--provider-code", provider_, "e.g. onprem, aws ([a-z0-9-], <= 32)")
      ->required();
  create_group_->add_option("--region-code", region_, "e.g. dc1, us-east-1 ([a-z0-9-], <= 32)")
      ->required();
  create_group_->add_option("--addresses", addresses_,
                            "members, comma-separated: HOST:PORT (TLS) or http://HOST:PORT")
      ->required();

  CLI::App* update = configure->add_subcommand("update", "change an object");
  update->require_subcommand(1);
  update_group_ = update->add_subcommand(
      "proxy-group", "replace a proxy group's members (running mounts follow within a heartbeat)");
  update_group_->add_option("ID", id_, "the group's id")->required();
  update_group_->add_option("--addresses", addresses_, "the new members, comma-separated")
      ->required();

  list_groups_ = list->add_subcommand("proxy-groups", "list the proxy groups");
  list_groups_->add_flag("--json", json_, "print JSON instead of a table");

  delete_group_ = del->add_subcommand(
      "proxy-group", "delete a proxy group (refused while a volume is associated with it)");
  delete_group_->add_option("ID", id_, "the group's id")->required();

  create_assoc_ = create->add_subcommand(
      "volume-proxy-group", "let a volume's mounts route over a proxy group");
  create_assoc_->add_option("--volume", volume_, "the volume")->required();
  create_assoc_->add_option("--proxy-group-id", id_, "the group's id")->required();

  list_assocs_ = list->add_subcommand("volume-proxy-groups",
                                      "list which volumes route over which proxy groups");
  list_assocs_->add_option("--volume", volume_, "only this volume's");
  list_assocs_->add_flag("--json", json_, "print JSON instead of a table");

  delete_assoc_ = del->add_subcommand("volume-proxy-group",
                                      "stop a volume's mounts routing over a proxy group");
  delete_assoc_->add_option("--volume", volume_, "the volume")->required();
  delete_assoc_->add_option("--proxy-group-id", id_, "the group's id")->required();
}

std::optional<int> ProxyGroupCommands::Run(const Globals& g, std::ostream& out,
                                           std::ostream& err) const {
  const bool any = create_group_->parsed() || update_group_->parsed() ||
                   list_groups_->parsed() || delete_group_->parsed() ||
                   create_assoc_->parsed() || list_assocs_->parsed() || delete_assoc_->parsed();
  if (!any) return std::nullopt;
  absl::StatusOr<std::unique_ptr<MetaApi>> connected = ConnectMeta(g);
  if (!connected.ok()) return Fail(err, Message(connected.status()));
  MetaApi& api = **connected;

  if (create_group_->parsed() || update_group_->parsed()) {
    absl::StatusOr<metapb::ProxyGroupResponse> r;
    if (create_group_->parsed()) {
      metapb::CreateProxyGroupRequest req;
      req.set_provider_code(provider_);
      req.set_region_code(region_);
      for (std::string& a : SplitAddresses(addresses_)) req.add_addresses(std::move(a));
      req.set_request_id(RequestId());
      r = api.CreateProxyGroup(req);
      if (!r.ok()) return Fail(err, "cannot create proxy group: " + Message(r.status()));
      out << "created proxy group " << r->group().id() << "\n";
    } else {
      metapb::UpdateProxyGroupRequest req;
      req.set_id(id_);
      for (std::string& a : SplitAddresses(addresses_)) req.add_addresses(std::move(a));
      req.set_request_id(RequestId());
      r = api.UpdateProxyGroup(req);
      if (!r.ok()) {
        return Fail(err, absl::StrCat("cannot update proxy group ", id_, ": ",
                                      Message(r.status())));
      }
      out << "updated proxy group " << id_ << "\n";
    }
    google::protobuf::RepeatedPtrField<metapb::ProxyGroup> one;
    *one.Add() = r->group();
    out << GroupTable(one);
    return kExitOk;
  }
  if (list_groups_->parsed()) {
    absl::StatusOr<metapb::ListProxyGroupsResponse> r =
        api.ListProxyGroups(metapb::ListProxyGroupsRequest());
    if (!r.ok()) return Fail(err, "cannot list proxy groups: " + Message(r.status()));
    out << (json_ ? ListJson(*r) : GroupTable(r->groups()));
    return kExitOk;
  }
  if (delete_group_->parsed()) {
    metapb::DeleteProxyGroupRequest req;
    req.set_id(id_);
    req.set_request_id(RequestId());
    absl::StatusOr<metapb::DeleteProxyGroupResponse> r = api.DeleteProxyGroup(req);
    if (!r.ok()) {
      return Fail(err, absl::StrCat("cannot delete proxy group ", id_, ": ",
                                    Message(r.status())));
    }
    out << "deleted proxy group " << id_ << "\n";
    return kExitOk;
  }
  if (create_assoc_->parsed()) {
    metapb::CreateVolumeProxyGroupRequest req;
    req.set_volume(volume_);
    req.set_proxy_group_id(id_);
    req.set_request_id(RequestId());
    absl::StatusOr<metapb::CreateVolumeProxyGroupResponse> r = api.CreateVolumeProxyGroup(req);
    if (!r.ok()) {
      return Fail(err, absl::StrCat("cannot associate volume \"", volume_,
                                    "\" with proxy group ", id_, ": ", Message(r.status())));
    }
    out << "volume " << Printable(volume_) << " now routes over proxy group " << id_ << "\n";
    return kExitOk;
  }
  if (list_assocs_->parsed()) {
    metapb::ListVolumeProxyGroupsRequest req;
    req.set_volume(volume_);
    absl::StatusOr<metapb::ListVolumeProxyGroupsResponse> r = api.ListVolumeProxyGroups(req);
    if (!r.ok()) return Fail(err, "cannot list volume proxy groups: " + Message(r.status()));
    if (json_) {
      out << ListJson(*r);
    } else if (r->associations().empty()) {
      out << "no volume proxy groups\n";
    } else {
      Table table({"VOLUME", "PROXY-GROUP"});
      for (const metapb::VolumeProxyGroup& a : r->associations()) {
        table.AddRow({a.volume(), absl::StrCat(a.proxy_group_id())});
      }
      out << table.Render();
    }
    return kExitOk;
  }
  metapb::DeleteVolumeProxyGroupRequest req;
  req.set_volume(volume_);
  req.set_proxy_group_id(id_);
  req.set_request_id(RequestId());
  absl::StatusOr<metapb::DeleteVolumeProxyGroupResponse> r = api.DeleteVolumeProxyGroup(req);
  if (!r.ok()) {
    return Fail(err, absl::StrCat("cannot dissociate volume \"", volume_,
                                  "\" from proxy group ", id_, ": ", Message(r.status())));
  }
  out << "volume " << Printable(volume_) << " no longer routes over proxy group " << id_ << "\n";
  return kExitOk;
}

}  // namespace nighfs::tools::internal
