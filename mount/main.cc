// mount.nighfs: mounts a nighfs volume with FUSE. Also a mount(8) helper
// (mount -t nighfs VOLUME@HOST:PORT /mnt/x -o ...).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "blockstore/block_store.h"
#include "blockstore/counting_store.h"
#include "blockstore/proxy_store.h"
#include "blockstore/store_wrapper.h"
#include "common/connect.h"  // ValidUtf8
#include "common/errno_status.h"
#include "common/logging.h"
#include "google/protobuf/util/json_util.h"
#include "common/token_file.h"
#include "metadata_client/meta_client.h"
#include "metadata_client/scoped_meta.h"
#include "mount/fuse_adapter.h"
#include "mount/mount_options.h"
#include "mount/routes.h"
#include "mount/routing.h"
#include "status.pb.h"

namespace nighfs::fs {
namespace {

namespace pb = ::nighfs::meta::v1;

std::string RunDir() {
  const char* d = std::getenv("NIGHFS_RUN_DIR");
  return d && *d ? d : "/run/nighfs/mounts";
}

std::string Hostname() {
  char buf[256] = {0};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

// mountinfo escapes ' ', '\t', '\n' and '\\' in paths as \ooo.
std::string UnescapeMountinfo(std::string_view s) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && octal(s[i + 1]) && octal(s[i + 2]) &&
        octal(s[i + 3])) {
      out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 +
                                      (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// If something is mounted at `mount_point` (absolute, normalized), "FSTYPE SOURCE" of the top
// mount there; "" if nothing is.
std::string MountedAt(const std::string& mount_point) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line, found;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() < 5 || UnescapeMountinfo(f[4]) != mount_point) continue;
    size_t dash = 5;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;
    // Later lines are mounted on top of earlier ones: keep the last.
    found = absl::StrCat(f[dash + 1], " ", UnescapeMountinfo(f[dash + 2]));
  }
  return found;
}

// Unregisters a mount's metadata session unless dismissed: a mount that fails after Mount()
// must not leave a live session behind (it would block `delete volume` until it expires).
class SessionGuard {
 public:
  SessionGuard(MetaApi* meta, uint64_t session_id) : meta_(meta), session_id_(session_id) {}
  ~SessionGuard() {
    if (meta_ == nullptr) return;
    pb::UnmountRequest u;
    u.set_session_id(session_id_);
    if (absl::Status s = meta_->Unmount(u).status(); !s.ok()) {
      NIGHFS_LOG(WARNING) << "could not end metadata session " << session_id_
                          << " (it expires on its own): " << s;
    }
  }
  SessionGuard(const SessionGuard&) = delete;
  SessionGuard& operator=(const SessionGuard&) = delete;
  // From now on the caller ends the session itself.
  void Dismiss() { meta_ = nullptr; }

 private:
  MetaApi* meta_;
  const uint64_t session_id_;
};

// Background work of a live mount: session heartbeats and the status file.
class MountKeeper {
 public:
  // `proxy` is the store inside `store` when the mount goes through -o proxy=, else null.
  MountKeeper(MetaApi* meta, FileSystem* fs, const MountOptions& opts, const pb::Volume& volume,
              const blockstore::CountingStore* store, blockstore::ProxyStore* proxy,
              MountRouting* routing, uint64_t session_id,
              std::shared_ptr<MetaSessionKey> session_key, const pb::MountResponse& mounted)
      : meta_(meta), fs_(fs), opts_(opts), volume_(volume), store_(store), proxy_(proxy),
        routing_(routing),
        session_key_(std::move(session_key)),
        token_access_(mounted.access() == pb::ACCESS_READ ? "read" : "write"),
        token_path_(mounted.root_path().empty() ? "/" : mounted.root_path()),
        namespace_sync_ms_(mounted.namespace_sync_ms()),
        // Behind a proxy the store is the proxy's business: show the volume's, not the proxy.
        store_desc_(proxy != nullptr || (routing != nullptr && routing->active())
                        ? volume.store_url()
                        : store->Describe()),
        session_id_(session_id),
        started_ns_(absl::ToUnixNanos(absl::Now())) {
    status_path_ = absl::StrCat(RunDir(), "/", ::getpid(), ".json");
    // Pings on a thread of their own: a heartbeat waiting out an unreachable metadata server
    // must not leave the proxy's RTT and health stale.
    if (proxy_ != nullptr) pinger_ = std::make_unique<ProxyPinger>(proxy_, absl::Seconds(5));
    // Written here, before the FUSE loop serves anything: `nighfs status` knows the mount from
    // its first request on, and the first heartbeat (up to meta_timeout against a stalled
    // metadata server) does not delay it.
    WriteStatus();
    thread_ = std::thread([this] { Run(); });
  }
  ~MountKeeper() {
    stop_.Notify();
    thread_.join();
    pinger_.reset();
    std::error_code ec;
    std::filesystem::remove(status_path_, ec);
  }
  uint64_t session_id() const { return session_id_.load(); }

 private:
  void Run() {
    absl::Time next_beat = absl::Now();
    while (true) {
      if (absl::Now() >= next_beat) {
        Heartbeat();
        next_beat = absl::Now() + absl::Seconds(10);
      }
      WriteStatus();
      // With proxy groups the route can change within a probe interval: status follows it.
      const absl::Duration every =
          Routed() ? std::min(absl::Seconds(5), opts_.probe_interval) : absl::Seconds(5);
      if (stop_.WaitForNotificationWithTimeout(every)) return;
    }
  }

  // Whether block I/O goes through proxy groups now (a volume may gain or lose them).
  bool Routed() const { return routing_ != nullptr && routing_->active(); }

  void Heartbeat() {
    pb::HeartbeatRequest req;
    req.set_session_id(session_id_.load());
    absl::StatusOr<pb::HeartbeatResponse> r = meta_->Heartbeat(req);
    if (r.ok()) {
      SetMetaState(true, "");
      // A changed proxy-group configuration reaches the router without a remount.
      if (routing_ != nullptr) routing_->OnRoutesVersion(r->routes_version());
      return;
    }
    SetMetaState(false, std::string(r.status().message()));
    if (r.status().code() != absl::StatusCode::kNotFound) {
      NIGHFS_LOG(WARNING) << "heartbeat to metadata server failed: " << r.status();
      return;
    }
    // The server expired our session (we were away too long): register again.
    pb::MountRequest m;
    m.set_volume_name(opts_.volume);
    m.set_hostname(ValidUtf8(Hostname()));
    m.set_mount_point(ValidUtf8(opts_.mount_point));
    m.set_pid(::getpid());
    absl::StatusOr<pb::MountResponse> mr = meta_->Mount(m);
    if (!mr.ok()) {
      NIGHFS_LOG(ERROR) << "re-registering the mount failed: " << mr.status();
      return;
    }
    NIGHFS_LOG(WARNING) << "metadata session expired; new session " << mr->session_id();
    session_key_->Set(mr->session_key());
    session_id_.store(mr->session_id());
    fs_->SetSessionId(mr->session_id());
    SetMetaState(true, "");
  }

  void SetMetaState(bool ok, std::string err) {
    absl::MutexLock l(&mu_);
    meta_ok_ = ok;
    if (!ok) last_error_ = std::move(err);
  }

  void WriteStatus() {
    status::v1::MountStatus s;
    // JSON and protobuf strings take UTF-8 only; `nighfs status PATH` escapes PATH the same way.
    s.set_mount_point(ValidUtf8(opts_.mount_point));
    s.set_volume(volume_.name());
    s.set_volume_id(volume_.id());
    s.set_meta_address(opts_.meta_address);
    s.set_meta_url(NormalizeMetaAddress(opts_.meta_address));
    s.set_meta_ca_file(opts_.ca_file);
    s.set_store_url(store_desc_);
    s.set_block_size(volume_.block_size());
    s.set_session_id(session_id_.load());
    s.set_pid(::getpid());
    s.set_started_ns(started_ns_);
    s.set_updated_ns(absl::ToUnixNanos(absl::Now()));
    s.set_version("0.1.0");
    s.set_token_access(token_access_);
    s.set_token_path(token_path_);
    s.set_namespace_sync_ms(namespace_sync_ms_);
    {
      absl::MutexLock l(&mu_);
      s.set_meta_reachable(meta_ok_);
      s.set_last_meta_error(last_error_);
    }
    if (Routed()) {
      FillGroupsRoute(*store_, routing_->Snapshot(), s.add_routes());
      routing_->FillStatus(s.mutable_routing());
    } else if (pinger_ != nullptr) {
      FillProxyRoute(*store_, proxy_->url(), pinger_->Last(), s.add_routes());
    } else {
      FillDirectRoute(*store_, s.add_routes());
    }
    fs_->FillStats(s.mutable_stats());
    fs_->FillMemoryAndPending(&s);
    std::string json;
    google::protobuf::util::JsonPrintOptions jo;
    jo.add_whitespace = true;
    jo.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(s, &json, jo).ok()) return;
    std::error_code ec;
    std::filesystem::create_directories(RunDir(), ec);
    const std::string tmp = status_path_ + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << json;
      if (!out) return;
    }
    std::filesystem::rename(tmp, status_path_, ec);
  }

  MetaApi* meta_;
  FileSystem* fs_;
  const MountOptions& opts_;
  const pb::Volume volume_;
  const blockstore::CountingStore* const store_;
  blockstore::ProxyStore* const proxy_;
  MountRouting* const routing_;  // null with -o proxy=
  const std::shared_ptr<MetaSessionKey> session_key_;
  const std::string token_access_;
  const std::string token_path_;
  const uint32_t namespace_sync_ms_;
  const std::string store_desc_;
  std::atomic<uint64_t> session_id_;
  const int64_t started_ns_;
  std::string status_path_;
  absl::Mutex mu_;
  bool meta_ok_ ABSL_GUARDED_BY(mu_) = true;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::unique_ptr<ProxyPinger> pinger_;  // only with -o proxy=
  std::thread thread_;
};

int Fail(const std::string& msg) {
  std::fprintf(stderr, "mount.nighfs: %s\n", msg.c_str());
  return 1;
}

// The volume's object store, opened with the mount's store credentials and checked: the
// direct route. Only the default credentials file is optional: a path the user gave must exist,
// or a typo would silently fall back to the environment (or anonymous access).
absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> OpenDirectStore(const MountOptions& opts,
                                                                       const pb::Volume& volume) {
  absl::StatusOr<blockstore::StoreCredentials> creds = blockstore::LoadCredentials(
      opts.credentials_given || ::access(opts.credentials_file.c_str(), F_OK) == 0
          ? opts.credentials_file
          : std::string());
  if (!creds.ok()) return creds.status();
  absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> opened =
      blockstore::OpenBlockStore(volume.store_url(), *creds);
  if (!opened.ok()) {
    return absl::Status(opened.status().code(),
                        absl::StrCat("block store of volume ", volume.name(), ": ",
                                     opened.status().message()));
  }
  if (absl::Status s = (*opened)->Check(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("block store ", (*opened)->Describe(),
                                               " is not usable: ", s.message()));
  }
  return opened;
}

int RunMount(MountOptions opts) {
  if (!opts.log_level.empty()) {
    LogLevel l;
    if (!ParseLogLevel(opts.log_level, &l)) return Fail("bad log_level '" + opts.log_level + "'");
    SetLogLevel(l);
  } else if (opts.debug) {
    SetLogLevel(LogLevel::DEBUG);
  }
  std::error_code ec;
  std::string mp = std::filesystem::absolute(opts.mount_point, ec).lexically_normal().string();
  if (mp.size() > 1 && mp.back() == '/') mp.pop_back();
  struct stat mst;
  if (::stat(mp.c_str(), &mst) != 0 || !S_ISDIR(mst.st_mode)) {
    return Fail("mount point " + mp + " is not a directory");
  }
  opts.mount_point = mp;
  // Mounting over a live mount stacks a second daemon on top and hides the first (issue 10):
  // refuse, as mount(8) users expect, unless asked for.
  if (const std::string what = MountedAt(mp); !what.empty() && !opts.allow_stacked) {
    return Fail("mount point " + mp + " is already mounted (" + what +
                "); unmount it first, or pass -o allow_stacked to mount on top of it");
  }

  // 1. The metadata server and the volume: fail fast with a clear message.
  MetaClientOptions mo;
  mo.address = opts.meta_address;
  mo.ca_file = opts.ca_file;
  if (NormalizeMetaAddress(opts.meta_address).rfind("http://", 0) == 0) {
    NIGHFS_LOG(WARNING) << "metadata server " << opts.meta_address
                        << " over plain HTTP: requests can be read and changed on the network";
  }
  if (opts.token_file.empty()) {
    return Fail("no volume token: pass -o token_file=FILE (make one with: nighfs configure "
                "create token --volume " + opts.volume + " --access write --out FILE)");
  }
  absl::StatusOr<std::string> token = ReadPrivateTokenFile(opts.token_file);
  if (!token.ok()) return Fail(std::string(token.status().message()));
  mo.bearer_token = *std::move(token);
  mo.session_key = std::make_shared<MetaSessionKey>();
  mo.op_timeout = opts.mount_timeout;
  mo.call_timeout = std::min(opts.mount_timeout, absl::Seconds(10));
  absl::StatusOr<std::unique_ptr<MetaApi>> probe = NewMetaClient(mo);
  if (!probe.ok()) return Fail(std::string(probe.status().message()));
  pb::MountRequest mreq;
  mreq.set_volume_name(opts.volume);
  mreq.set_hostname(ValidUtf8(Hostname()));
  mreq.set_mount_point(ValidUtf8(mp));  // a protobuf string: UTF-8 only
  mreq.set_pid(::getpid());
  absl::StatusOr<pb::MountResponse> mounted = (*probe)->Mount(mreq);
  if (!mounted.ok()) {
    if (mounted.status().code() == absl::StatusCode::kUnauthenticated ||
        mounted.status().code() == absl::StatusCode::kPermissionDenied) {
      return Fail("metadata server " + opts.meta_address + " refused the token in " +
                  opts.token_file + " for volume '" + opts.volume +
                  "': " + std::string(mounted.status().message()));
    }
    if (mounted.status().code() == absl::StatusCode::kNotFound) {
      return Fail("metadata server " + opts.meta_address + " has no volume named '" +
                  opts.volume + "' (create it with: nighfs configure create volume " +
                  opts.volume + " --store URL)");
    }
    return Fail("cannot reach metadata server " + opts.meta_address + ": " +
                std::string(mounted.status().message()));
  }
  const pb::Volume volume = mounted->volume();
  opts.fs.inline_max_bytes =
      ResolveInlineMax(opts.fs.inline_max_bytes, mounted->inline_max_bytes());
  mo.session_key->Set(mounted->session_key());
  opts.fs.sync_names_at_fsync = mounted->namespace_sync_ms() > 0;
  // A read-only token mounts read-only: the kernel refuses writes (EROFS) and so does the
  // scoped client below, whatever -o rw says.
  const bool token_read_only = mounted->access() == pb::ACCESS_READ;
  if (token_read_only && !opts.read_only) {
    NIGHFS_LOG(INFO) << "the token gives read access only: mounting read-only";
    opts.read_only = true;
  }
  const uint64_t root_ino = mounted->root().ino() == 0 ? 1 : mounted->root().ino();
  // From here on, every way out that does not reach the FUSE loop ends the session.
  SessionGuard session_guard(probe->get(), mounted->session_id());

  // 2. The block store: straight to the object store (store credentials, reachability,
  // container), or through a proxy, which holds the store credentials itself: the volume token
  // is all this mount needs then. Every block request goes through a CountingStore, so
  // `nighfs status` shows the route's health from real requests.
  // The mount's token and CA reach the proxy of -o proxy= and the holders of unflushed blocks.
  blockstore::ProxyStoreOptions proxy_opts;
  proxy_opts.volume = volume.name();
  proxy_opts.token = mo.bearer_token;
  proxy_opts.ca_file = opts.ca_file;
  std::unique_ptr<blockstore::CountingStore> store;
  blockstore::ProxyStore* proxy = nullptr;
  // Proxy groups of the volume (issue 13), unless -o proxy= overrides them (one proxy, for
  // debugging). A server without them (Unimplemented) or unreachable for them: direct.
  pb::GetVolumeRoutesResponse routes;
  if (opts.proxy.empty()) {
    pb::GetVolumeRoutesRequest rr;
    rr.set_volume_id(volume.id());
    absl::StatusOr<pb::GetVolumeRoutesResponse> got = (*probe)->GetVolumeRoutes(rr);
    if (got.ok()) {
      routes = *std::move(got);
    } else {
      NIGHFS_LOG(WARNING) << "cannot read the proxy groups of volume " << volume.name()
                          << " (going straight to the object store): " << got.status();
    }
  }
  const bool use_groups = !GroupsFromRoutes(routes).empty();
  // With groups the direct store is the last route, optional: without store credentials the
  // mount goes through the groups only (and status says so).
  std::shared_ptr<blockstore::BlockStore> direct;
  std::string direct_missing;
  if (!opts.proxy.empty()) {
    proxy_opts.address = opts.proxy;
    absl::StatusOr<std::unique_ptr<blockstore::ProxyStore>> made =
        blockstore::ProxyStore::Create(proxy_opts);
    if (!made.ok()) return Fail(std::string(made.status().message()));
    proxy = made->get();
    if (proxy->url().rfind("http://", 0) == 0) {
      NIGHFS_LOG(WARNING) << "proxy " << opts.proxy << " over plain HTTP: the volume token and "
                          << "the blocks can be read and changed on the network";
    }
    store = std::make_unique<blockstore::CountingStore>(*std::move(made));
    if (absl::Status s = store->Check(); !s.ok()) {
      return Fail(std::string(s.message()));  // "check of proxy https://HOST:PORT failed: ..."
    }
  } else {
    // Through MountRouting either way (step 4): groups associated with the volume later are
    // picked up without a remount.
    absl::StatusOr<std::unique_ptr<blockstore::BlockStore>> opened = OpenDirectStore(opts, volume);
    if (opened.ok()) {
      direct = *std::move(opened);
    } else if (!use_groups) {
      return Fail(std::string(opened.status().message()));
    } else {
      direct_missing = absl::StrCat("no usable store credentials: ", opened.status().message());
      NIGHFS_LOG(WARNING) << "no direct fallback to the object store: " << direct_missing;
    }
  }
  // A block another mount wrote through a proxy that has not flushed it yet is read from that
  // proxy (Block.holder), whichever route this mount takes.
  blockstore::ProxyStores holders(proxy_opts);
  std::unique_ptr<MountRouting> routing;
  opts.fs.holder_store =
      [&holders](const std::string& address) -> absl::StatusOr<blockstore::BlockStore*> {
    absl::StatusOr<blockstore::ProxyStore*> p = holders.For(address);
    if (!p.ok()) return p.status();
    return *p;
  };

  // 3. The FUSE session.
  std::vector<std::string> fargs = {"mount.nighfs"};
  std::vector<std::string> fopts = {"default_permissions", "subtype=nighfs",
                                    "fsname=" + opts.fsname};
  if (opts.allow_other) fopts.push_back("allow_other");
  if (opts.read_only) fopts.push_back("ro");
  for (const auto& k : opts.kernel_options) fopts.push_back(k);
  fargs.push_back("-o");
  fargs.push_back(absl::StrJoin(fopts, ","));
  if (opts.debug) fargs.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : fargs) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  FuseContext ctx;
  ctx.block_size = volume.block_size();
  fuse_session* se = fuse_session_new(&args, NighfsFuseOps(), sizeof(fuse_lowlevel_ops), &ctx);
  // The session keeps what it parsed; the argument list libfuse may have rebuilt is ours to
  // free (LeakSanitizer found it left in every mount process).
  fuse_opt_free_args(&args);
  if (se == nullptr) return Fail("cannot create the FUSE session (see messages above)");
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_session_destroy(se);
    return Fail("cannot install signal handlers");
  }
  if (fuse_session_mount(se, mp.c_str()) != 0) {
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return Fail("cannot mount at " + mp + " (is /dev/fuse available and are you root?)");
  }
  std::fprintf(stderr, "mount.nighfs: volume %s mounted at %s (metadata %s, blocks %s %s)\n",
               volume.name().c_str(), mp.c_str(), opts.meta_address.c_str(),
               proxy != nullptr || use_groups ? "through" : "in",
               use_groups ? "proxy groups"
               : proxy != nullptr ? proxy->url().c_str()
                                  : direct->Describe().c_str());
  if (!opts.foreground) {
    std::string log = opts.log_file;
    if (log.empty()) log = "/var/log/nighfs/mount-" + volume.name() + ".log";
    std::filesystem::create_directories(std::filesystem::path(log).parent_path(), ec);
    fuse_daemonize(0);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) {
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
  }

  // 4. Threads start only now, after the fork of fuse_daemonize.
  MetaClientOptions ro = mo;
  ro.op_timeout = opts.meta_timeout;
  ro.call_timeout = absl::Seconds(30);
  absl::StatusOr<std::unique_ptr<MetaApi>> meta = NewMetaClient(ro);
  int rc = 0;
  if (!meta.ok()) {
    NIGHFS_LOG(ERROR) << meta.status();
    rc = 1;
  } else {
    // The token's scope at one place: its subtree root is the mount's inode 1.
    std::unique_ptr<MetaApi> scoped = NewScopedMetaApi(meta->get(), root_ino, opts.read_only);
    if (opts.proxy.empty()) {
      // Made here, after the fork: the router starts its prober thread. Without groups yet,
      // calls go to the direct store until a heartbeat brings some.
      MountRoutingOptions ro;
      ro.meta = meta->get();
      ro.volume_id = volume.id();
      ro.member_options = proxy_opts;
      ro.direct = std::move(direct);
      ro.direct_missing_reason = direct_missing;
      ro.probe_interval = opts.probe_interval;
      ro.probe_timeout = opts.probe_timeout;
      ro.route_deadline = opts.route_deadline;
      absl::StatusOr<std::unique_ptr<MountRouting>> made = MountRouting::CreateWith(ro, routes);
      if (made.ok() && *made != nullptr) {
        routing = *std::move(made);
        // `routing` owns the router and outlives the file system and this counting view.
        store = std::make_unique<blockstore::CountingStore>(
            std::make_unique<blockstore::BlockStoreWrapper>(std::shared_ptr<blockstore::BlockStore>(
                routing->store(), [](blockstore::BlockStore*) {})));
      } else {
        NIGHFS_LOG(ERROR) << "proxy-group routing: "
                          << (made.ok() ? absl::InternalError("no route") : made.status());
      }
    }
    absl::StatusOr<std::unique_ptr<FileSystem>> fs = store == nullptr
        ? absl::StatusOr<std::unique_ptr<FileSystem>>(
              absl::FailedPreconditionError("no block store"))
        :
        FileSystem::Create(scoped.get(), store.get(), volume, mounted->session_id(), opts.fs);
    if (!fs.ok()) {
      NIGHFS_LOG(ERROR) << fs.status();
      rc = 1;
    } else {
      ctx.fs = fs->get();
      {
        MountKeeper keeper(meta->get(), fs->get(), opts, volume, store.get(), proxy,
                           routing.get(), mounted->session_id(), mo.session_key, *mounted);
        fuse_loop_config* cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_max_threads(cfg, 64);
        fuse_loop_cfg_set_idle_threads(cfg, 16);
        rc = fuse_session_loop_mt(se, cfg);
        fuse_loop_cfg_destroy(cfg);
        // The loop reports the signal that ended it (SIGTERM, SIGINT, SIGHUP): a clean stop.
        if (rc == SIGTERM || rc == SIGINT || rc == SIGHUP) rc = 0;
        // SIGTERM or an unmount ended the loop: everything buffered is made durable.
        absl::Status s = (*fs)->FlushAll();
        if (!s.ok()) {
          NIGHFS_LOG(ERROR) << "flush at unmount failed: " << s;
          rc = 1;
        }
        // The keeper may have re-registered under a new id: end that one, not the first.
        session_guard.Dismiss();
        pb::UnmountRequest u;
        u.set_session_id(keeper.session_id());
        (void)(*meta)->Unmount(u);
      }
      fuse_session_unmount(se);
      ctx.fs = nullptr;
    }
  }
  if (rc != 0) fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  NIGHFS_LOG(INFO) << "unmounted " << mp;
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nighfs::fs

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(nighfs::fs::MountUsage().c_str(), args.empty() ? stderr : stdout);
    return args.empty() ? 1 : 0;
  }
  absl::StatusOr<nighfs::fs::MountOptions> opts = nighfs::fs::ParseMountArgs(args);
  if (!opts.ok()) {
    std::fprintf(stderr, "mount.nighfs: %s\n%s", std::string(opts.status().message()).c_str(),
                 nighfs::fs::MountUsage().c_str());
    return 1;
  }
  return nighfs::fs::RunMount(*std::move(opts));
}
