// What the `nighfs` subcommands share (tools/cli.cc, tools/cli_proxy_groups.cc): the global
// options and the admin connection to the metadata server. Not part of the CLI's interface.
#ifndef NIGHFS_TOOLS_CLI_INTERNAL_H_
#define NIGHFS_TOOLS_CLI_INTERNAL_H_

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "metadata_client/meta_client.h"

namespace nighfs::tools::internal {

struct Globals {
  std::string meta;  // as the user wrote it, for messages
  std::string ca_file;  // --ca-file or $NIGHFS_CA_FILE; empty: the system CA store
  absl::Duration timeout;
  std::string admin_token_file;  // "" = $NIGHFS_ADMIN_TOKEN_FILE, else kDefaultAdminTokenFile
};

// A client for the metadata server with the admin token, after one quick reachability probe.
absl::StatusOr<std::unique_ptr<MetaApi>> ConnectMeta(const Globals& g);

// A status's message for people ("" -> the whole status).
std::string Message(const absl::Status& s);

// Prints "nighfs: MESSAGE" to `err`; returns kExitFailure.
int Fail(std::ostream& err, const std::string& message);

// `nighfs configure {create,update,list,delete} proxy-group(s)` and `volume-proxy-group(s)`
// (issue 13; names as flexFS users know them).
class ProxyGroupCommands {
 public:
  // Adds the subcommands; `update` is created here (proxy groups are its only object).
  void Add(CLI::App* configure, CLI::App* create, CLI::App* list, CLI::App* del);
  // The exit status of the proxy group command that was parsed, if one was.
  std::optional<int> Run(const Globals& g, std::ostream& out, std::ostream& err) const;

 private:
  CLI::App* create_group_ = nullptr;
  CLI::App* update_group_ = nullptr;
  CLI::App* list_groups_ = nullptr;
  CLI::App* delete_group_ = nullptr;
  CLI::App* create_assoc_ = nullptr;
  CLI::App* list_assocs_ = nullptr;
  CLI::App* delete_assoc_ = nullptr;
  std::string provider_, region_, addresses_, volume_;
  uint64_t id_ = 0;
  bool json_ = false;
};

}  // namespace nighfs::tools::internal

#endif  // NIGHFS_TOOLS_CLI_INTERNAL_H_
