// nighfs-proxy: a crash-safe writeback and read-through block cache between mounts and object
// storage (proxy/server.h). `nighfs-proxy init|deinit ...` runs the administration commands of
// proxy/ops.h instead.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "common/logging.h"
#include "common/token_file.h"
#include "metadata_client/meta_client.h"
#include "proxy/disk_cache.h"
#include "proxy/daemon.h"
#include "proxy/ops.h"
#include "proxy/server.h"
#include "tools/size.h"

namespace {

constexpr char kDefaultCredsFile[] = "/etc/nighfs/proxy.creds";

int Fail(const std::string& message) {
  std::fprintf(stderr, "nighfs-proxy: %s\n", message.c_str());
  return 1;
}

// "250ms", "5s", "2m" (absl::ParseDuration) or a plain number of seconds.
bool ParseDurationFlag(const std::string& text, absl::Duration* out) {
  double seconds = 0;
  if (absl::SimpleAtod(text, &seconds)) {
    *out = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, out)) {
    return false;
  }
  return *out >= absl::ZeroDuration();
}

}  // namespace

int main(int argc, char** argv) {
  if (std::optional<int> code = nighfs::proxy::RunProxyAdminCommand(argc, argv)) return *code;

  CLI::App app{"nighfs-proxy: writeback and read-through block cache in front of object storage"};
  std::string listen = "0.0.0.0:7430";
  std::string advertise;
  std::string meta_address;
  std::string meta_token_file;
  std::string ca_file;
  std::string disk_folder = "/var/cache/nighfs-proxy";
  std::string disk_quota = "90%";
  std::string db_folder;
  int writeback_active = 8;
  std::string writeback_delay = "0";
  bool sync = false;
  bool no_writeback = false;
  std::string creds_file;
  std::string max_object_size = "64M";
  double token_cache_ttl = 10;
  int threads = 32;
  std::string log_level = "info";
  std::string port_file;
  // flexFS's proxy.flexfs spells its flags in camelCase; both spellings work.
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--advertise", advertise,
                 "HOST:PORT (https) or http://HOST:PORT clients reach this proxy at (default: "
                 "--listen, or hostname:PORT when listening on 0.0.0.0; http:// with "
                 "--insecure-plaintext)");
  app.add_option("--meta", meta_address,
                 "the metadata server: HOST:PORT (TLS) or http://HOST:PORT")
      ->required();
  app.add_option("--meta-token-file,--metaTokenFile", meta_token_file,
                 "this proxy's own token (nighfs configure create token --access proxy), 0600")
      ->required();
  app.add_option("--ca-file", ca_file, "PEM CA(s) of the metadata server's certificate");
  nighfs::proxy::TlsFlags tls;
  tls.AddTo(app, "every block and token");
  app.add_option("--disk-folder,--diskFolder", disk_folder, "the cache folder")
      ->capture_default_str();
  app.add_option("--disk-quota,--diskQuota", disk_quota,
                 "bytes of blocks cached at most: 600G, 1T, or a percentage of the file "
                 "system (90%)")
      ->capture_default_str();
  app.add_option("--db-folder,--dbFolder", db_folder,
                 "folder of the journal proxy.db (default: the disk folder)");
  app.add_option("--writeback-active,--writebackActive", writeback_active,
                 "parallel uploads to the stores")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--writeback-delay,--writebackDelay", writeback_delay,
                 "time a block waits after its PUT before it is flushed (e.g. 30s)")
      ->capture_default_str();
  app.add_flag("--sync", sync,
               "fsync each block and its folder before acknowledging it (survives power loss)");
  app.add_flag("--no-writeback,--noWriteback", no_writeback,
               "write-through: acknowledge a PUT after the store has the block");
  app.add_option("--creds-file,--credsFile", creds_file,
                 absl::StrCat("store credentials, KEY=VALUE, mode 0600 (default: ",
                              kDefaultCredsFile, " when it exists, else the environment)"));
  app.add_option("--max-object-size", max_object_size, "largest block accepted (413 beyond)")
      ->capture_default_str();
  app.add_option("--token-cache-ttl", token_cache_ttl,
                 "seconds a client token's answer (also a refusal) is cached, at most 30")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30.0));
  app.add_option("--threads", threads, "HTTP worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--log-level", log_level, "debug, info, warning or error")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  CLI11_PARSE(app, argc, argv);

  nighfs::LogLevel level;
  if (!nighfs::ParseLogLevel(log_level, &level)) {
    return Fail(absl::StrCat("invalid --log-level '", log_level, "'"));
  }
  nighfs::SetLogLevel(level);
  if (absl::Status s = tls.Check(); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  absl::StatusOr<nighfs::proxy::HostPort> bind = nighfs::proxy::ParseListenAddress(listen);
  if (!bind.ok()) return Fail(absl::StrCat("--listen: ", bind.status().message()));
  if (!advertise.empty()) {
    if (absl::Status s = nighfs::proxy::CheckAdvertise(advertise); !s.ok()) {
      return Fail(absl::StrCat("--advertise: ", s.message()));
    }
    if (tls.insecure_plaintext && advertise.rfind("http://", 0) != 0) {
      NIGHFS_LOG(WARNING) << "--advertise " << advertise << " means https, but this proxy "
                          << "serves plain HTTP: clients will fail to reach it unless a TLS "
                          << "front end serves that address (else say http://" << advertise << ")";
    }
  }
  absl::Duration delay;
  if (!ParseDurationFlag(writeback_delay, &delay)) {
    return Fail(absl::StrCat("invalid --writeback-delay '", writeback_delay,
                             "': want e.g. 0, 500ms, 30s, 5m"));
  }
  absl::StatusOr<uint64_t> max_object = nighfs::tools::ParseSize(max_object_size);
  if (!max_object.ok() || *max_object == 0 || *max_object > (1ull << 30)) {
    return Fail(absl::StrCat("invalid --max-object-size '", max_object_size,
                             "': want a size from 1 byte to 1 GiB"));
  }
  std::error_code ec;
  std::filesystem::create_directories(disk_folder, ec);
  if (ec) return Fail(absl::StrCat("cannot create --disk-folder ", disk_folder, ": ", ec.message()));
  absl::StatusOr<uint64_t> quota = nighfs::proxy::ResolveQuota(disk_quota, disk_folder);
  if (!quota.ok()) return Fail(std::string(quota.status().message()));
  if (db_folder.empty()) db_folder = disk_folder;
  std::filesystem::create_directories(db_folder, ec);
  if (ec) return Fail(absl::StrCat("cannot create --db-folder ", db_folder, ": ", ec.message()));

  if (creds_file.empty() && ::access(kDefaultCredsFile, F_OK) == 0) creds_file = kDefaultCredsFile;
  absl::StatusOr<nighfs::blockstore::StoreCredentials> creds =
      nighfs::blockstore::LoadCredentials(creds_file);
  if (!creds.ok()) return Fail(std::string(creds.status().message()));

  absl::StatusOr<std::string> meta_token = nighfs::ReadPrivateTokenFile(meta_token_file);
  if (!meta_token.ok()) return Fail(std::string(meta_token.status().message()));
  nighfs::MetaClientOptions meta_options;
  meta_options.address = meta_address;
  meta_options.ca_file = ca_file;
  meta_options.bearer_token = *meta_token;
  // A client's request waits for its authorization: fail fast rather than hold it a minute.
  meta_options.op_timeout = absl::Seconds(10);
  meta_options.call_timeout = absl::Seconds(5);
  absl::StatusOr<std::unique_ptr<nighfs::MetaApi>> meta = nighfs::NewMetaClient(meta_options);
  if (!meta.ok()) return Fail(std::string(meta.status().message()));

  // Before any thread starts: they inherit the mask.
  nighfs::proxy::BlockStopSignals();

  nighfs::proxy::ProxyOptions options;
  options.http.bind_address = bind->host;
  options.http.port = bind->port;
  options.http.threads = threads;
  options.http.tls_cert_file = tls.cert_file;
  options.http.tls_key_file = tls.key_file;
  options.http.max_connections = 4096;
  options.advertise = advertise;
  options.max_object_size = *max_object;
  options.writeback = !no_writeback;
  options.cache.folder = disk_folder;
  options.cache.journal_path = (std::filesystem::path(db_folder) / "proxy.db").string();
  options.cache.quota_bytes = *quota;
  options.cache.sync = sync;
  options.writeback_options.active = writeback_active;
  options.writeback_options.delay = delay;
  options.token_cache_ttl = absl::Seconds(token_cache_ttl);
  absl::StatusOr<std::unique_ptr<nighfs::proxy::ProxyServer>> server =
      nighfs::proxy::ProxyServer::Start(options, meta->get(),
                                        nighfs::proxy::CredentialStoreOpener(*creds));
  if (!server.ok()) return Fail(std::string(server.status().message()));
  if (!port_file.empty()) {
    if (absl::Status s = nighfs::proxy::WritePortFile(port_file, (*server)->port()); !s.ok()) {
      (*server)->Stop();
      return Fail(std::string(s.message()));
    }
  }
  if (tls.insecure_plaintext) {
    NIGHFS_LOG(WARNING) << "--insecure-plaintext: serving plain HTTP without TLS; blocks and "
                           "tokens can be read and changed on the network";
  }
  const nighfs::proxy::ReconcileReport& report = (*server)->reconcile_report();
  NIGHFS_LOG(INFO) << "nighfs-proxy serving " << (tls.insecure_plaintext ? "PLAINTEXT http" : "TLS https")
                   << " on " << bind->host << ":" << (*server)->port() << " (advertised as "
                   << (*server)->advertise() << "), disk folder " << disk_folder << ", quota "
                   << nighfs::tools::FormatBytes(*quota) << ", journal " << options.cache.journal_path
                   << ", " << report.blocks << " blocks cached (" << report.dirty_blocks
                   << " unflushed), "
                   << (no_writeback ? std::string("write-through")
                                    : absl::StrCat("writeback ", writeback_active, " active"))
                   << (sync ? ", sync" : "") << ", meta " << meta_address;
  if (report.lost_blocks > 0) {
    NIGHFS_LOG(ERROR) << report.lost_blocks
                      << " unflushed blocks were LOST (their cache files were missing or "
                         "damaged; see above)";
  }

  const int sig = nighfs::proxy::WaitForStopSignal();
  NIGHFS_LOG(INFO) << "received " << strsignal(sig) << ", shutting down";
  (*server)->Stop();
  server->reset();
  NIGHFS_LOG(INFO) << "stopped";
  return 0;
}
