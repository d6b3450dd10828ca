// nighfs-meta: the metadata server daemon. Serves meta::MetaService over Connect/HTTP.
//
// TEST ONLY: the environment variable NIGHFS_TEST_CRASH_AFTER_COMMIT=N makes the server _exit(86)
// right after its Nth mutation (counting from its start) has committed, before the reply is
// sent: the "applied but not replied" window that exactly-once request ids exist for
// (tests/e2e/meta_fault_e2e_test.cc). Never set it in production.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/connect.h"
#include "common/crypto.h"
#include "common/http_server.h"
#include "common/logging.h"
#include "meta/auth.h"
#include "meta/meta_service.h"
#include "metadata_client/meta_client.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "nighfs-meta: %s\n", message.c_str());
  return 1;
}

// "HOST:PORT" or "[V6]:PORT".
// GET/HEAD /healthz: the one thing nighfs-meta answers without a token.
bool IsHealthProbe(const nighfs::ServerRequest& req) {
  std::string_view path = req.target;
  path = path.substr(0, path.find('?'));
  return path == "/healthz" && (req.method == "GET" || req.method == "HEAD");
}

bool ParseListen(const std::string& s, std::string* host, uint16_t* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  uint32_t p = 0;
  if (!absl::SimpleAtoi(s.substr(colon + 1), &p) || p > 65535 || h.empty()) return false;
  *host = h;
  *port = static_cast<uint16_t>(p);
  return true;
}

// Written whole or not at all (a script polling for the file never reads half a number).
bool WritePortFile(const std::string& path, uint16_t port, std::string* error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << "\n";
    out.flush();
    if (!out) {
      *error = absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno));
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

namespace {

// Seconds ("3600"), or a number with a unit: s, m, h or d ("90m", "7d"). Positive.
absl::StatusOr<absl::Duration> ParseRetention(const std::string& text) {
  static constexpr std::pair<char, absl::Duration> kUnits[] = {
      {'s', absl::Seconds(1)}, {'m', absl::Minutes(1)}, {'h', absl::Hours(1)},
      {'d', absl::Hours(24)}};
  std::string number = text;
  absl::Duration unit = absl::Seconds(1);
  for (const auto& [suffix, d] : kUnits) {
    if (!text.empty() && text.back() == suffix) {
      number = text.substr(0, text.size() - 1);
      unit = d;
    }
  }
  double n = 0;
  if (!absl::SimpleAtod(number, &n) || !(n > 0) || n > 1e7) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a positive duration (e.g. 3600, 90m, 12h, 7d)"));
  }
  return n * unit;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"nighfs metadata server"};
  std::string listen = "127.0.0.1:7420";
  std::string state_dir = "/var/lib/nighfs";
  std::string db_path;
  std::string credentials;
  double gc_grace_s = 30;
  double session_timeout_s = 300;
  int threads = 8;
  double request_reply_ttl_s = 600;
  double gc_interval_s = 5;
  bool allow_test_stores = false;
  uint32_t inline_max_bytes = nighfs::meta::MetaServiceOptions().inline_max_bytes;
  int64_t max_request_replies = 1'000'000;
  std::string log_level = "info";
  std::string port_file;
  std::string admin_token_file;
  std::vector<std::string> allow_file_roots;
  std::string gc_tombstone_retention = "7d";
  app.add_option("--listen", listen, "HOST:PORT to serve on (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir, "folder of the database (DIR/meta.db)")
      ->capture_default_str();
  app.add_option("--db", db_path, "database file (overrides --state-dir)");
  app.add_option("--credentials", credentials,
                 "KEY=VALUE file with block-store secrets (mode 0600)");
  app.add_option("--gc-grace", gc_grace_s,
                 "seconds a freed block stays before it is deleted from its store")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--gc-tombstone-retention", gc_tombstone_retention,
                 "how long DeadBlocks still names a block after garbage collection deleted it, "
                 "so a proxy never uploads it (seconds, or with a unit: 90m, 12h, 7d)")
      ->capture_default_str();
  app.add_option("--session-timeout", session_timeout_s,
                 "seconds without heartbeat after which a mount's session expires")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--request-reply-ttl", request_reply_ttl_s,
                 "seconds the reply of a mutation stays recorded for retries of it "
                 "(exactly-once; longer than any mount's meta op timeout; 0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-request-replies", max_request_replies,
                 "most recorded replies kept; the oldest are forgotten first")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--gc-interval", gc_interval_s,
                 "seconds between rounds of garbage collection and session expiry")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--allow-test-stores", allow_test_stores,
               "accept volumes in mem:// stores, which lose their blocks when this server "
               "stops (tests only)");
  app.add_option("--inline-max-bytes", inline_max_bytes,
                 "largest file (its first block) kept in the metadata database instead of "
                 "the block store: no object PUT or GET for small files (0 = never)")
      ->capture_default_str()
      ->check(CLI::Range(uint32_t{0}, nighfs::meta::kMaxInlineBytes));
  std::string namespace_sync = "always";
  double namespace_sync_interval_s = 1;
  app.add_option("--namespace-sync", namespace_sync,
                 "always: every namespace change (create, mkdir, unlink, rename, chmod...) is "
                 "on disk before its reply; batched: such changes are synced together, within "
                 "--namespace-sync-interval, at the next data commit of any mount, or at a "
                 "mount's fsync/fsyncdir (a crash of this machine, not of this process, can "
                 "lose that window; file data is always on disk when close returns)")
      ->capture_default_str()
      ->check(CLI::IsMember({"always", "batched"}));
  app.add_option("--namespace-sync-interval", namespace_sync_interval_s,
                 "with --namespace-sync=batched: the longest a namespace change stays unsynced, "
                 "in seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 60.0));
  app.add_option("--threads", threads, "HTTP worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--log-level", log_level, "debug, info, warning or error")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  // TLS is the default: plain HTTP must be asked for by name, and is logged as a warning.
  std::string tls_cert, tls_key;
  bool insecure_plaintext = false;
  app.add_option("--tls-cert", tls_cert,
                 "PEM certificate chain of this server (e.g. from nighfs configure init tls)")
      ->type_name("FILE");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert (mode 0600)")
      ->type_name("FILE");
  app.add_flag("--insecure-plaintext", insecure_plaintext,
               "serve plain HTTP without TLS: anyone on the network path can read and change "
               "every request (tests and closed labs only)");
  app.add_option("--admin-token-file", admin_token_file,
                 "the admin token (made 0600 on first start when missing; default "
                 "STATE/admin.token, or beside --db)");
  app.add_option("--allow-file-root", allow_file_roots,
                 "a folder file:// block stores may lie in (repeatable); file:// stores "
                 "elsewhere are refused")
      ->type_name("DIR");
  double token_cache_s = 10;
  app.add_option("--token-cache-ttl", token_cache_s,
                 "seconds a verified volume token is trusted before it is checked again (a "
                 "revocation takes effect within this time; at most 30)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30.0));
  // `nighfs-meta init`: write the admin token (and the state folder) and exit.
  app.fallthrough();  // `nighfs-meta init --state-dir DIR` as well as before "init"
  CLI::App* init = app.add_subcommand(
      "init", "create the state folder and the admin token file, print its path and exit");
  bool rotate_admin = false;
  init->add_flag("--rotate-admin-token", rotate_admin,
                 "replace an existing admin token with a new one (restart the server after)");
  // Overload protection (HttpServerOptions): bounded memory and sockets, 503 beyond.
  double max_buffered_mib = 128;
  double budget_wait_s = 10;
  int max_connections = 1000;
  int max_connections_per_peer = 256;
  app.add_option("--max-buffered-mib", max_buffered_mib,
                 "MiB of request bodies held at once across all connections (at least 64, the "
                 "largest request); a request over it waits, then gets 503")
      ->capture_default_str()
      ->check(CLI::Range(64.0, 1048576.0));
  app.add_option("--budget-wait", budget_wait_s,
                 "seconds a request waits for --max-buffered-mib before getting 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-connections", max_connections,
                 "open connections in all (0 = no limit); more get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-connections-per-peer", max_connections_per_peer,
                 "open connections from one IP address (0 = no limit); more get 503")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  nighfs::LogLevel level;
  if (!nighfs::ParseLogLevel(log_level, &level)) {
    return Fail(absl::StrCat("invalid --log-level '", log_level, "'"));
  }
  nighfs::SetLogLevel(level);
  if (insecure_plaintext && (!tls_cert.empty() || !tls_key.empty())) {
    return Fail("--insecure-plaintext contradicts --tls-cert/--tls-key; pass one or the other");
  }
  if (!insecure_plaintext && (tls_cert.empty() || tls_key.empty())) {
    return Fail(tls_cert.empty() && tls_key.empty()
                    ? "no TLS certificate: pass --tls-cert FILE --tls-key FILE (make a lab pair "
                      "with: nighfs configure init tls DIR), or --insecure-plaintext to serve "
                      "plain HTTP"
                    : "--tls-cert and --tls-key go together; pass both");
  }
  std::string host;
  uint16_t port = 0;
  if (!ParseListen(listen, &host, &port)) {
    return Fail(absl::StrCat("invalid --listen '", listen, "': want HOST:PORT"));
  }
  if (db_path.empty()) {
    std::error_code ec;
    // The database holds every file name: the folder is private to us, also one that existed
    // (a package or an admin may have made it 0755) and whatever the umask.
    std::filesystem::create_directories(state_dir, ec);
    if (ec) return Fail(absl::StrCat("cannot create state directory ", state_dir, ": ", ec.message()));
    if (::chmod(state_dir.c_str(), 0700) != 0) {
      return Fail(absl::StrCat("cannot make state directory ", state_dir, " private (0700): ",
                               std::strerror(errno)));
    }
    db_path = state_dir + "/meta.db";
    if (admin_token_file.empty()) admin_token_file = state_dir + "/admin.token";
  }
  if (admin_token_file.empty()) {
    admin_token_file =
        (std::filesystem::path(db_path).parent_path() / "admin.token").string();
  }
  bool admin_created = false;
  absl::StatusOr<std::string> admin_token =
      nighfs::meta::LoadOrCreateAdminToken(admin_token_file, rotate_admin, &admin_created);
  if (!admin_token.ok()) return Fail(std::string(admin_token.status().message()));
  if (init->parsed()) {
    std::printf("%s admin token: %s\n", admin_created ? "wrote" : "kept", admin_token_file.c_str());
    return 0;
  }
  if (admin_created) {
    NIGHFS_LOG(INFO) << "wrote a new admin token to " << admin_token_file;
  }

  // Every thread started from here on inherits the mask, so only sigwait below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  nighfs::meta::MetaServiceOptions options;
  options.db_path = db_path;
  options.credentials_file = credentials;
  options.gc_grace = absl::Seconds(gc_grace_s);
  {
    absl::StatusOr<absl::Duration> d = ParseRetention(gc_tombstone_retention);
    if (!d.ok()) return Fail(absl::StrCat("--gc-tombstone-retention: ", d.status().message()));
    options.gc_tombstone_retention = *d;
  }
  options.admin_token_sha256 = nighfs::Sha256(*admin_token);
  options.session_timeout = absl::Seconds(session_timeout_s);
  options.request_reply_ttl = absl::Seconds(request_reply_ttl_s);
  options.gc_interval = absl::Seconds(gc_interval_s);
  options.allow_test_stores = allow_test_stores;
  options.inline_max_bytes = inline_max_bytes;
  options.max_request_replies = max_request_replies;
  options.allowed_file_roots = allow_file_roots;
  if (namespace_sync == "batched") {
    options.namespace_sync_interval = absl::Seconds(namespace_sync_interval_s);
    NIGHFS_LOG(INFO) << "namespace changes are synced within " << options.namespace_sync_interval
                     << " (--namespace-sync=batched): a crash of this machine can lose that "
                     << "window of creates, renames and unlinks; file data is synced at commit";
  }
  if (const char* crash = std::getenv("NIGHFS_TEST_CRASH_AFTER_COMMIT"); crash != nullptr) {
    int64_t n = 0;
    if (!absl::SimpleAtoi(crash, &n) || n < 1) {
      return Fail(absl::StrCat("invalid NIGHFS_TEST_CRASH_AFTER_COMMIT '", crash, "'"));
    }
    NIGHFS_LOG(WARNING) << "TEST ONLY: exiting after mutation " << n
                        << " commits (NIGHFS_TEST_CRASH_AFTER_COMMIT)";
    options.test_after_commit = [n, count = std::make_shared<std::atomic<int64_t>>(0)] {
      if (count->fetch_add(1) + 1 == n) _exit(86);
    };
  }
  // One reader connection per HTTP thread, so reads never queue behind each other.
  options.read_connections = std::min(threads, 16);
  absl::StatusOr<std::unique_ptr<nighfs::meta::MetaService>> service =
      nighfs::meta::MetaService::Open(options);
  if (!service.ok()) return Fail(std::string(service.status().message()));

  nighfs::meta::MetaAuthOptions auth_options;
  auth_options.admin_token = *std::move(admin_token);
  auth_options.cache_ttl = absl::Seconds(token_cache_s);
  nighfs::meta::MetaAuthorizer authorizer(service->get(), std::move(auth_options));
  nighfs::ConnectRouter router;
  // Every call authenticated and authorized (meta/auth.h); only /healthz answers anyone.
  nighfs::meta::RegisterMetaServiceWithAuth(service->get(), &authorizer, &router);
  nighfs::HttpServerOptions http;
  http.bind_address = host;
  http.port = port;
  http.threads = threads;
  // Metadata calls are quick (a few SQLite statements; the slow work, GC and store deletes,
  // runs on the background thread): each connection stays on one thread, so a call costs no
  // thread hand-off. The threads still let that many calls wait on the disk at once, which
  // group commit (MetaServiceImpl::Write) turns into one WAL sync for all of them.
  http.io_context_per_thread = true;
  // Metadata requests are small; a large body is a mistake or an attack.
  http.max_body_bytes = 64u << 20;
  http.max_buffered_body_bytes = static_cast<size_t>(max_buffered_mib * (1 << 20));
  http.body_budget_wait = absl::Seconds(budget_wait_s);
  http.max_connections = max_connections;
  http.max_connections_per_peer = max_connections_per_peer;
  http.tls_cert_file = tls_cert;
  http.tls_key_file = tls_key;
  // Nothing but /healthz answers an anonymous request, not even with 404 (no method list for
  // strangers), and it is refused before its body is read, so strangers cannot hold the body
  // budget (--max-buffered-mib) that mounts need. Each method authenticates and authorizes
  // again for itself (RegisterMetaServiceWithAuth).
  http.screen = [&authorizer](const nighfs::ServerRequest& req)
      -> std::optional<nighfs::ServerResponse> {
    if (IsHealthProbe(req)) return std::nullopt;
    if (absl::Status who = authorizer.Authenticate(req).status(); !who.ok()) {
      return nighfs::ConnectErrorResponse(who);
    }
    return std::nullopt;
  };
  absl::StatusOr<std::unique_ptr<nighfs::HttpServer>> server = nighfs::HttpServer::Start(
      http, [&router](const nighfs::ServerRequest& req) -> nighfs::ServerResponse {
        if (IsHealthProbe(req)) {
          nighfs::ServerResponse r;
          r.status = 200;
          r.content_type = "text/plain";
          r.body = "ok";
          return r;
        }
        return router.Handle(req);  // the screen above let only authenticated requests in
      });
  if (!server.ok()) {
    return Fail(absl::StrCat("cannot listen on ", listen, ": ", server.status().message()));
  }
  if (!port_file.empty()) {
    std::string error;
    if (!WritePortFile(port_file, (*server)->port(), &error)) {
      (*server)->Stop();
      return Fail(error);
    }
  }
  if (insecure_plaintext) {
    NIGHFS_LOG(WARNING) << "--insecure-plaintext: serving plain HTTP without TLS; requests and "
                           "replies can be read and changed on the network";
  }
  NIGHFS_LOG(INFO) << "nighfs-meta serving " << (insecure_plaintext ? "http" : "https") << " on "
                   << host << ":" << (*server)->port() << ", database " << db_path;

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  NIGHFS_LOG(INFO) << "received " << strsignal(sig) << ", shutting down";
  // In-flight requests finish before the threads are joined; then the service (background
  // thread, database) closes after nothing can call it any more.
  (*server)->Stop();
  server->reset();
  service->reset();
  NIGHFS_LOG(INFO) << "stopped";
  return 0;
}
