#include "tools/cli.h"

#include <algorithm>
#include <cstdint>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http_client.h"
#include "common/logging.h"
#include "common/tls_certs.h"
#include "common/token_file.h"
#include "metadata_client/meta_client.h"
#include "tools/cli_internal.h"
#include "tools/mount_status.h"
#include "tools/render.h"
#include "tools/size.h"
#include "tools/table.h"

#ifndef NIGHFS_VERSION
#define NIGHFS_VERSION "unknown"
#endif

namespace nighfs::tools {
namespace {

namespace metapb = ::nighfs::meta::v1;

// `nighfs status` must answer promptly even when a metadata server is down: it reports
// reachability, it does not wait for it.
constexpr absl::Duration kStatusProbeTimeout = absl::Seconds(2);

using internal::Fail;
using internal::Globals;
using internal::Message;

constexpr char kDefaultAdminTokenFile[] = "/var/lib/nighfs/admin.token";

std::string MetaBaseUrl(const std::string& address) {
  std::string url = NormalizeMetaAddress(address);
  while (url.size() > 1 && url.back() == '/') url.pop_back();
  return url;
}

std::unique_ptr<HttpClient> NewProbeClient(absl::Duration timeout, const std::string& ca_file) {
  HttpClientOptions options;
  options.ca_file = ca_file;
  options.connect_timeout = timeout;
  options.default_timeout = timeout;
  options.max_idle_connections = 4;
  return HttpClient::Create(options);
}

// One GET /healthz. Any HTTP answer proves the server is reachable; only 2xx says it is well.
MetaProbe ProbeMeta(HttpClient& http, const std::string& address, absl::Duration timeout) {
  HttpRequest request;
  request.method = "GET";
  request.url = MetaBaseUrl(address) + "/healthz";
  request.timeout = timeout;
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> response = http.Do(request);
  MetaProbe probe;
  probe.latency = absl::Now() - start;
  if (!response.ok()) {
    probe.result = MetaProbe::Result::kUnreachable;
    probe.detail = std::string(response.status().message());
  } else if (response->status >= 200 && response->status < 300) {
    probe.result = MetaProbe::Result::kHealthy;
    probe.detail = absl::StrCat("HTTP ", response->status);
  } else {
    probe.result = MetaProbe::Result::kUnhealthy;
    std::string body = response->body.substr(0, 200);
    body = body.substr(0, body.find('\n'));
    probe.detail = absl::StrCat("HTTP ", response->status, body.empty() ? "" : ": ", body);
  }
  return probe;
}

}  // namespace

namespace internal {

// A client for the metadata server, after one quick probe: an unreachable server (refused,
// no route, DNS failure, nothing answering within --timeout) is reported at once in plain
// words instead of after the RPC layer's retries run out.
absl::StatusOr<std::unique_ptr<MetaApi>> ConnectMeta(const Globals& g) {
  std::unique_ptr<HttpClient> http = NewProbeClient(g.timeout, g.ca_file);
  const MetaProbe probe = ProbeMeta(*http, g.meta, g.timeout);
  if (probe.result == MetaProbe::Result::kUnreachable) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach metadata server at ", g.meta, ": ", probe.detail));
  }
  MetaClientOptions options;
  options.address = g.meta;
  options.ca_file = g.ca_file;
  // Every configure command is administration: it needs the admin token.
  const std::string path = g.admin_token_file.empty() ? kDefaultAdminTokenFile
                                                      : g.admin_token_file;
  absl::StatusOr<std::string> token = ReadPrivateTokenFile(path);
  if (!token.ok()) {
    return absl::Status(token.status().code(),
                        absl::StrCat(token.status().message(),
                                     " (configure commands need the admin token: "
                                     "--admin-token-file PATH or $NIGHFS_ADMIN_TOKEN_FILE)"));
  }
  options.bearer_token = *std::move(token);
  // Transient failures (a server restarting, 503s) are still retried, within --timeout.
  options.op_timeout = g.timeout;
  options.call_timeout = g.timeout;
  return NewMetaClient(options);
}

std::string Message(const absl::Status& s) {
  if (!s.message().empty()) return std::string(s.message());
  return s.ToString();
}

int Fail(std::ostream& err, const std::string& message) {
  err << "nighfs: " << Printable(message) << "\n";
  return kExitFailure;
}

}  // namespace internal

namespace {

using internal::ConnectMeta;

int CreateVolume(const Globals& g, const std::string& name, const std::string& store,
                 const std::string& block_size_text, std::ostream& out, std::ostream& err) {
  metapb::CreateVolumeRequest request;
  request.set_name(name);
  request.set_store_url(store);
  if (!block_size_text.empty()) {
    absl::StatusOr<uint64_t> size = ParseSize(block_size_text);
    if (!size.ok()) return Fail(err, absl::StrCat("--block-size: ", Message(size.status())));
    if (*size == 0) return Fail(err, "--block-size: must be greater than zero");
    if (*size > std::numeric_limits<uint32_t>::max()) {
      return Fail(err, absl::StrCat("--block-size: ", FormatBytes(*size),
                                    " is too large (at most 4 GiB - 1 byte)"));
    }
    request.set_block_size(static_cast<uint32_t>(*size));
  }
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  absl::StatusOr<metapb::CreateVolumeResponse> response = (*api)->CreateVolume(request);
  if (!response.ok()) {
    return Fail(err, absl::StrCat("cannot create volume \"", name, "\": ",
                                  Message(response.status())));
  }
  out << RenderCreatedVolume(response->volume());
  return kExitOk;
}

int ListVolumes(const Globals& g, bool json, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  absl::StatusOr<metapb::ListVolumesResponse> response =
      (*api)->ListVolumes(metapb::ListVolumesRequest());
  if (!response.ok()) {
    return Fail(err, absl::StrCat("cannot list volumes: ", Message(response.status())));
  }
  const std::vector<metapb::Volume> volumes(response->volumes().begin(),
                                            response->volumes().end());
  out << (json ? RenderVolumesJson(volumes) : RenderVolumeTable(volumes));
  return kExitOk;
}

int DeleteVolume(const Globals& g, const std::string& name, bool yes, std::ostream& out,
                 std::ostream& err) {
  // Deleting a volume deletes every file in it; an explicit --yes is the only confirmation
  // that works the same in a terminal and in a script.
  if (!yes) {
    return Fail(err, absl::StrCat("deleting volume \"", name,
                                  "\" removes all of its files; add --yes to confirm"));
  }
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  metapb::DeleteVolumeRequest request;
  request.set_name(name);
  absl::StatusOr<metapb::DeleteVolumeResponse> response = (*api)->DeleteVolume(request);
  if (!response.ok()) {
    return Fail(err, absl::StrCat("cannot delete volume \"", name, "\": ",
                                  Message(response.status())));
  }
  out << "deleted volume " << Printable(name) << "\n";
  return kExitOk;
}

int InitTls(const std::string& dir, const std::vector<std::string>& hosts, bool force,
            std::ostream& out, std::ostream& err) {
  LabTlsOptions options;
  options.hosts = hosts;
  options.overwrite = force;
  if (absl::Status s = WriteLabTls(dir, options); !s.ok()) {
    return Fail(err, absl::StrCat("cannot make the lab TLS files: ", Message(s)));
  }
  std::string names;
  for (const std::string& n : LabTlsNames(options)) absl::StrAppend(&names, names.empty() ? "" : ", ", n);
  out << "wrote a lab CA and a server certificate to " << Printable(dir) << "\n"
      << "  " << kLabCaCert << "      the CA certificate: give it to clients (-o ca_file=, --ca-file)\n"
      << "  " << kLabCaKey << "      the CA key (0600): keep it private\n"
      << "  " << kLabServerCert << "  the server certificate, for: " << Printable(names) << "\n"
      << "  " << kLabServerKey << "  its key (0600)\n"
      << "start the server with: nighfs-meta --tls-cert " << Printable(dir) << "/" << kLabServerCert
      << " --tls-key " << Printable(dir) << "/" << kLabServerKey << "\n";
  return kExitOk;
}

// "30d", "12h", "90m", "45s", "1h30m" (absl durations plus days), or plain seconds.
absl::StatusOr<absl::Duration> ParseExpiry(const std::string& text) {
  absl::Duration d;
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!text.empty() && text.back() == 'd' &&
             absl::SimpleAtod(text.substr(0, text.size() - 1), &seconds)) {
    d = absl::Hours(24 * seconds);
  } else if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration (e.g. 30d, 12h, 90m)"));
  }
  if (d <= absl::ZeroDuration()) return absl::InvalidArgumentError("must be positive");
  return d;
}

// Written 0600 whatever the umask, replacing a file that exists (after making it 0600).
absl::Status WriteSecretFile(const std::string& path, const std::string& secret) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  const std::string line = secret + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  const int err = errno;
  ::close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(err)));
  return absl::OkStatus();
}

struct CreateTokenArgs {
  std::string volume, access, path, expires, name, out_file;
};

int CreateToken(const Globals& g, const CreateTokenArgs& a, std::ostream& out, std::ostream& err) {
  metapb::CreateTokenRequest request;
  request.set_volume(a.volume);
  const bool proxy = a.access == "proxy";
  if (a.access == "read") {
    request.set_access(metapb::ACCESS_READ);
  } else if (a.access == "write") {
    request.set_access(metapb::ACCESS_WRITE);
  } else if (proxy) {
    // A proxy server's own credential (nighfs-proxy --meta-token-file): bound to no volume.
    request.set_access(metapb::ACCESS_PROXY);
  } else {
    return Fail(err, absl::StrCat("--access: '", a.access, "' is not read, write or proxy"));
  }
  if (proxy && (!a.volume.empty() || !a.path.empty())) {
    return Fail(err, "--access proxy: a proxy token is bound to no volume; give no --volume "
                     "or --path");
  }
  if (!proxy && a.volume.empty()) {
    return Fail(err, absl::StrCat("--volume is required for a ", a.access, " token"));
  }
  request.set_path(a.path);
  request.set_name(a.name);
  if (!a.expires.empty()) {
    absl::StatusOr<absl::Duration> d = ParseExpiry(a.expires);
    if (!d.ok()) return Fail(err, absl::StrCat("--expires: ", Message(d.status())));
    request.set_expires_ns(absl::ToUnixNanos(absl::Now() + *d));
  }
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  absl::StatusOr<metapb::CreateTokenResponse> response = (*api)->CreateToken(request);
  if (!response.ok()) {
    return Fail(err, absl::StrCat(proxy ? std::string("cannot create a proxy token: ")
                                        : absl::StrCat("cannot create a token for volume \"",
                                                       a.volume, "\": "),
                                  Message(response.status())));
  }
  out << RenderCreatedToken(response->token());
  if (!a.out_file.empty()) {
    if (absl::Status s = WriteSecretFile(a.out_file, response->secret()); !s.ok()) {
      // The token exists but nobody has its secret: revoke it rather than leave it behind.
      metapb::RevokeTokenRequest revoke;
      revoke.set_id(response->token().id());
      (void)(*api)->RevokeToken(revoke);
      return Fail(err, absl::StrCat(Message(s), " (the token was revoked)"));
    }
    out << "secret written to " << Printable(a.out_file) << " (mode 0600)\n";
  } else {
    out << (proxy ? "secret (shown only now; run nighfs-proxy with --meta-token-file=FILE "
                    "holding it, mode 0600):\n"
                  : "secret (shown only now; mount with -o token_file=FILE holding it, mode "
                    "0600):\n")
        << response->secret() << "\n";
  }
  return kExitOk;
}

absl::StatusOr<std::vector<metapb::Token>> FetchTokens(MetaApi& api, const std::string& volume) {
  metapb::ListTokensRequest request;
  request.set_volume(volume);
  absl::StatusOr<metapb::ListTokensResponse> response = api.ListTokens(request);
  if (!response.ok()) return response.status();
  return std::vector<metapb::Token>(response->tokens().begin(), response->tokens().end());
}

int ListTokens(const Globals& g, const std::string& volume, bool json, std::ostream& out,
               std::ostream& err) {
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  absl::StatusOr<std::vector<metapb::Token>> tokens = FetchTokens(**api, volume);
  if (!tokens.ok()) return Fail(err, absl::StrCat("cannot list tokens: ", Message(tokens.status())));
  out << (json ? RenderTokensJson(*tokens) : RenderTokenTable(*tokens));
  return kExitOk;
}

int RevokeToken(const Globals& g, const std::string& which, const std::string& volume,
                std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<MetaApi>> api = ConnectMeta(g);
  if (!api.ok()) return Fail(err, Message(api.status()));
  uint64_t id = 0;
  if (!absl::SimpleAtoi(which, &id)) {
    // A name: unique per volume, so it must name exactly one live token.
    absl::StatusOr<std::vector<metapb::Token>> tokens = FetchTokens(**api, volume);
    if (!tokens.ok()) return Fail(err, absl::StrCat("cannot list tokens: ", Message(tokens.status())));
    int found = 0;
    for (const auto& t : *tokens) {
      if (t.name() == which) {
        id = t.id();
        ++found;
      }
    }
    if (found == 0) return Fail(err, absl::StrCat("no live token named \"", which, "\""));
    if (found > 1) {
      return Fail(err, absl::StrCat("several volumes have a token named \"", which,
                                    "\"; add --volume or give its id"));
    }
  }
  metapb::RevokeTokenRequest request;
  request.set_id(id);
  absl::StatusOr<metapb::RevokeTokenResponse> response = (*api)->RevokeToken(request);
  if (!response.ok()) {
    return Fail(err, absl::StrCat("cannot revoke token ", which, ": ", Message(response.status())));
  }
  out << "revoked token " << id << " (mounts using it are refused within 10 s)\n";
  return kExitOk;
}

std::string TrimmedJson(const std::string& json) {
  size_t end = json.find_last_not_of(" \t\r\n");
  return end == std::string::npos ? std::string() : json.substr(0, end + 1);
}

void PrintStale(const MountScan& scan, std::ostream& out) {
  if (scan.stale.empty()) return;
  out << "\nstale status files (their mount daemon is gone):\n";
  for (const auto& f : scan.stale) {
    out << "  " << Printable(f.path) << ": " << f.reason;
    if (!f.mount_point.empty()) {
      out << "; was mounted at " << Printable(f.mount_point)
          << " (if it still fails with \"Transport endpoint is not connected\", run: "
          << "fusermount3 -u " << Printable(f.mount_point) << ")";
    }
    out << "\n";
  }
}

int Status(const Globals& g, const std::string& mount_point, bool json, std::ostream& out,
           std::ostream& err) {
  absl::StatusOr<MountScan> scan = ScanMounts();
  if (!scan.ok()) return Fail(err, Message(scan.status()));
  for (const auto& f : scan->broken) {
    err << "nighfs: warning: ignoring " << Printable(f.path) << ": " << Printable(f.reason)
        << "\n";
  }

  std::vector<const MountStatusFile*> selected;
  if (!mount_point.empty()) {
    const MountStatusFile* m = FindMount(*scan, mount_point);
    if (m == nullptr) {
      if (const SkippedStatusFile* dead = FindStale(*scan, mount_point); dead != nullptr) {
        return Fail(err, absl::StrCat(mount_point, " is not a running nighfs mount: its mount ",
                                      "daemon (pid ", dead->pid, ") is gone; unmount it with ",
                                      "`fusermount3 -u ", mount_point, "`"));
      }
      return Fail(err, absl::StrCat(mount_point, " is not a nighfs mount (no status in ",
                                    MountRunDir(), ")"));
    }
    selected.push_back(m);
  } else {
    for (const auto& m : scan->mounts) selected.push_back(&m);
  }

  if (json) {
    // The files exactly as the daemons wrote them: one object for a named mount point, an
    // array otherwise, so scripts see every field, including ones this tool does not know.
    if (!mount_point.empty()) {
      out << TrimmedJson(selected[0]->json) << "\n";
      return kExitOk;
    }
    out << "[";
    for (size_t i = 0; i < selected.size(); ++i) {
      out << (i == 0 ? "\n" : ",\n") << TrimmedJson(selected[i]->json);
    }
    out << (selected.empty() ? "]\n" : "\n]\n");
    return kExitOk;
  }

  if (selected.empty()) {
    out << "no nighfs mounts\n";
    PrintStale(*scan, out);
    return kExitOk;
  }
  // By address and CA file: mounts often share a server. Each probe trusts what its mount
  // trusts (the mount's ca_file, else --ca-file), so it checks the path the mount uses.
  std::map<std::pair<std::string, std::string>, MetaProbe> probes;
  const absl::Time now = absl::Now();
  for (size_t i = 0; i < selected.size(); ++i) {
    const auto& status = selected[i]->status;
    const std::string address =
        status.meta_url().empty() ? status.meta_address() : status.meta_url();
    const std::string ca_file = status.meta_ca_file().empty() ? g.ca_file : status.meta_ca_file();
    auto it = probes.find({address, ca_file});
    if (it == probes.end()) {
      MetaProbe probe;
      if (address.empty()) {
        probe.detail = "the mount reports no address";
      } else {
        const absl::Duration timeout = std::min(g.timeout, kStatusProbeTimeout);
        std::unique_ptr<HttpClient> http = NewProbeClient(timeout, ca_file);
        probe = ProbeMeta(*http, address, timeout);
      }
      it = probes.emplace(std::pair{address, ca_file}, std::move(probe)).first;
    }
    if (i > 0) out << "\n";
    out << RenderMountStatus(status, it->second, now);
  }
  if (mount_point.empty()) PrintStale(*scan, out);
  return kExitOk;
}

}  // namespace

std::string_view NighfsVersion() { return NIGHFS_VERSION; }

int RunNighfsCli(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"Administer nighfs volumes and inspect the nighfs mounts of this host.",
               "nighfs"};
  // Subcommands created after this inherit it: global options such as --meta may come after
  // the subcommand words ("nighfs configure list volumes --meta host:7420").
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(NighfsVersion()));

  std::string meta_flag;
  double timeout_seconds = 10;
  bool verbose = false;
  CLI::Option* meta_opt = app.add_option(
      "--meta", meta_flag,
      absl::StrCat("metadata server HOST:PORT (TLS), https://HOST:PORT, or http://HOST:PORT for a "
                   "server started with --insecure-plaintext (default: $NIGHFS_META, else ",
                   kDefaultMetaAddress, ")"))
      ->type_name("ADDR");
  std::string ca_file_flag;
  CLI::Option* ca_file_opt =
      app.add_option("--ca-file", ca_file_flag,
                     "PEM file of the CA that signed the metadata server's certificate "
                     "(default: $NIGHFS_CA_FILE, else the system CA store)")
          ->type_name("PATH");
  app.add_option("--timeout", timeout_seconds,
                 "seconds to wait for the metadata server before giving up")
      ->type_name("SECONDS")
      ->capture_default_str();
  app.add_flag("-v,--verbose", verbose, "log retries and other details to stderr");
  std::string admin_token_file;
  app.add_option("--admin-token-file", admin_token_file,
                 absl::StrCat("the metadata server's admin token, needed by configure commands "
                              "(default: $NIGHFS_ADMIN_TOKEN_FILE, else ",
                              kDefaultAdminTokenFile, ")"))
      ->type_name("PATH");

  CLI::App* configure =
      app.add_subcommand(
      "configure", "create, list and delete volumes, tokens and proxy groups on the metadata "
                   "server "
                   "(needs the admin token)");
  configure->require_subcommand(1);

  CLI::App* create = configure->add_subcommand("create", "create an object");
  create->require_subcommand(1);
  CLI::App* create_volume = create->add_subcommand("volume", "create a volume");
  std::string create_name, create_store, create_block_size;
  create_volume->add_option("NAME", create_name, "volume name")->required();
  create_volume
      ->add_option("--store", create_store,
                   "block store URL: file:///PATH, s3://BUCKET/PREFIX?..., gs://..., "
                   "oci://..., azure://ACCOUNT/CONTAINER/PREFIX?...")
      ->type_name("URL")
      ->required();
  create_volume->add_option(
      "--block-size", create_block_size,
      "bytes per block, e.g. 4M, 1MiB, 65536 (default: the server's, 4 MiB)")
      ->type_name("SIZE");

  CLI::App* init = configure->add_subcommand("init", "create local setup files");
  init->require_subcommand(1);
  CLI::App* init_tls = init->add_subcommand(
      "tls", "make a lab CA and a server certificate signed by it in DIR (ca.pem, ca.key, "
             "server.pem, server.key)");
  std::string tls_dir;
  std::vector<std::string> tls_hosts;
  bool tls_force = false;
  init_tls->add_option("DIR", tls_dir, "folder for the files (created 0700)")->required();
  init_tls->add_option("--host", tls_hosts,
                       "another DNS name or IP address the server is reached by (repeatable); "
                       "localhost, 127.0.0.1, ::1 and this host's name are always included")
      ->type_name("NAME");
  init_tls->add_flag("--force", tls_force, "replace existing files");
  CLI::App* create_token = create->add_subcommand(
      "token", "create a volume token (its secret is shown once) for mounts: -o token_file=; "
               "or, with --access proxy, a proxy server's token (nighfs-proxy --meta-token-file)");
  CreateTokenArgs token_args;
  create_token->add_option("--volume", token_args.volume,
                           "the volume (required for read and write; none for proxy)");
  create_token->add_option("--access", token_args.access,
                           "read or write (a volume token), or proxy (a proxy server's own)")
      ->required()
      ->check(CLI::IsMember({"read", "write", "proxy"}));
  create_token->add_option("--path", token_args.path,
                           "confine it to this directory of the volume (default /)");
  create_token->add_option("--expires", token_args.expires,
                           "lifetime, e.g. 30d, 12h, 90m (default: never expires)");
  create_token->add_option("--name", token_args.name, "a label, unique per volume");
  create_token->add_option("--out", token_args.out_file,
                           "write the secret to this file (mode 0600) instead of printing it")
      ->type_name("FILE");

  CLI::App* list = configure->add_subcommand("list", "list objects");
  list->require_subcommand(1);
  CLI::App* list_volumes = list->add_subcommand("volumes", "list the volumes");
  bool list_json = false;
  list_volumes->add_flag("--json", list_json, "print JSON instead of a table");

  CLI::App* list_tokens = list->add_subcommand("tokens", "list the live volume tokens");
  std::string list_tokens_volume;
  bool list_tokens_json = false;
  list_tokens->add_option("--volume", list_tokens_volume, "only this volume's");
  list_tokens->add_flag("--json", list_tokens_json, "print JSON instead of a table");

  CLI::App* revoke = configure->add_subcommand("revoke", "revoke an object");
  revoke->require_subcommand(1);
  CLI::App* revoke_token = revoke->add_subcommand(
      "token", "revoke a volume token (mounts using it are refused within 10 s)");
  std::string revoke_which, revoke_volume;
  revoke_token->add_option("TOKEN", revoke_which, "the token's id or name")->required();
  revoke_token->add_option("--volume", revoke_volume, "the volume (for a name)");

  CLI::App* del = configure->add_subcommand("delete", "delete an object");
  del->require_subcommand(1);
  CLI::App* delete_volume =
      del->add_subcommand("volume", "delete a volume and every file in it");
  std::string delete_name;
  bool delete_yes = false;
  delete_volume->add_option("NAME", delete_name, "volume name")->required();
  delete_volume->add_flag("--yes", delete_yes, "confirm the deletion");

  internal::ProxyGroupCommands proxy_groups;
  proxy_groups.Add(configure, create, list, del);

  CLI::App* status = app.add_subcommand(
      "status", "show the nighfs mounts of this host: routes, health and counters");
  std::string status_mount;
  bool status_json = false;
  status->add_option("MOUNTPOINT", status_mount, "show only the mount at this path")
      ->type_name("PATH");
  status->add_flag("--json", status_json, "print the mounts' status files as JSON");

  CLI::App* version = app.add_subcommand("version", "print the nighfs version");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version arrive here too, with exit code 0.
    const int code = app.exit(e, out, err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (verbose) {
    SetLogLevel(LogLevel::DEBUG);
  } else if (std::getenv("NIGHFS_LOG_LEVEL") == nullptr) {
    // The RPC layer logs each retry as a warning; a command line tool reports the outcome.
    SetLogLevel(LogLevel::ERROR);
  }

  Globals g;
  if (meta_opt->count() > 0) {
    g.meta = meta_flag;
    if (g.meta.empty()) {
      err << "nighfs: --meta: empty address\n";
      return kExitUsage;
    }
  } else if (const char* env = std::getenv("NIGHFS_META"); env != nullptr && *env != '\0') {
    g.meta = env;
  } else {
    g.meta = kDefaultMetaAddress;
  }
  if (ca_file_opt->count() > 0) {
    g.ca_file = ca_file_flag;
  } else if (const char* env = std::getenv("NIGHFS_CA_FILE"); env != nullptr) {
    g.ca_file = env;
  }
  if (!(timeout_seconds > 0)) {  // also catches NaN
    err << "nighfs: --timeout: must be a positive number of seconds\n";
    return kExitUsage;
  }
  g.timeout = absl::Seconds(timeout_seconds);
  if (!admin_token_file.empty()) {
    g.admin_token_file = admin_token_file;
  } else if (const char* env = std::getenv("NIGHFS_ADMIN_TOKEN_FILE");
             env != nullptr && *env != '\0') {
    g.admin_token_file = env;
  }

  if (init_tls->parsed()) return InitTls(tls_dir, tls_hosts, tls_force, out, err);
  if (create_volume->parsed()) {
    return CreateVolume(g, create_name, create_store, create_block_size, out, err);
  }
  if (list_volumes->parsed()) return ListVolumes(g, list_json, out, err);
  if (create_token->parsed()) return CreateToken(g, token_args, out, err);
  if (list_tokens->parsed()) {
    return ListTokens(g, list_tokens_volume, list_tokens_json, out, err);
  }
  if (revoke_token->parsed()) return RevokeToken(g, revoke_which, revoke_volume, out, err);
  if (delete_volume->parsed()) return DeleteVolume(g, delete_name, delete_yes, out, err);
  if (std::optional<int> rc = proxy_groups.Run(g, out, err)) return *rc;
  if (status->parsed()) return Status(g, status_mount, status_json, out, err);
  if (version->parsed()) {
    out << "nighfs " << NighfsVersion() << "\n";
    return kExitOk;
  }
  // require_subcommand() makes this unreachable; say so rather than exit silently.
  err << "nighfs: no command given; see nighfs --help\n";
  return kExitUsage;
}

}  // namespace nighfs::tools
