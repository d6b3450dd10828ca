#include "tests/e2e/cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/tls_certs.h"
#include "google/protobuf/util/json_util.h"
#include "metadata_client/meta_client.h"
#include "tests/testing/emulators.h"
#include "tests/testing/test_status.h"

namespace nighfs::testing {

namespace {

absl::Mutex admin_mu;
std::map<std::string, std::string>& AdminTokens() {
  static auto* tokens = new std::map<std::string, std::string>();
  return *tokens;
}

absl::StatusOr<std::unique_ptr<MetaApi>> AdminClient(const std::string& meta_address) {
  MetaClientOptions o;
  o.address = meta_address;
  o.ca_file = LabCaFile();
  o.op_timeout = absl::Seconds(20);
  o.bearer_token = AdminTokenFor(meta_address);
  return NewMetaClient(o);
}

}  // namespace

void RegisterMetaAdmin(const std::string& meta_address, const std::string& admin_token_file) {
  std::string token(absl::StripAsciiWhitespace(ReadFileOrEmpty(admin_token_file)));
  absl::MutexLock lock(&admin_mu);
  AdminTokens()[meta_address] = token;
}

std::string AdminTokenFor(const std::string& meta_address) {
  absl::MutexLock lock(&admin_mu);
  auto it = AdminTokens().find(meta_address);
  return it == AdminTokens().end() ? std::string() : it->second;
}

absl::StatusOr<uint64_t> CreateTokenFile(const std::string& meta_address,
                                         const std::string& volume, const std::string& access,
                                         const std::string& path, const std::string& file) {
  auto client = AdminClient(meta_address);
  if (!client.ok()) return client.status();
  meta::v1::CreateTokenRequest req;
  req.set_volume(volume);
  req.set_access(access == "read"    ? meta::v1::ACCESS_READ
                 : access == "proxy" ? meta::v1::ACCESS_PROXY
                                     : meta::v1::ACCESS_WRITE);
  req.set_path(path);
  auto r = (*client)->CreateToken(req);
  if (!r.ok()) return r.status();
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("cannot create " + file);
  const std::string line = r->secret() + "\n";
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!ok) return absl::InternalError("cannot write " + file);
  return r->token().id();
}

bool CanMountFuse() { return ::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0; }

std::string LabTlsDir() {
  // Made once per test binary; the TempDir is destroyed (removed) at exit.
  static TempDir* const tmp = new TempDir();
  static const std::string dir = [] {
    const std::string d = tmp->path() + "/tls";
    absl::Status s = WriteLabTls(d);
    if (!s.ok()) {
      std::fprintf(stderr, "cannot make the lab TLS files: %s\n", s.ToString().c_str());
      std::abort();
    }
    ::setenv("NIGHFS_CA_FILE", (d + "/" + kLabCaCert).c_str(), 1);
    return d;
  }();
  static const bool remove_at_exit = [] { return std::atexit([] { delete tmp; }) == 0; }();
  (void)remove_at_exit;
  return dir;
}

std::string LabCaFile() { return LabTlsDir() + "/" + kLabCaCert; }

std::vector<std::string> LabTlsServerArgs() {
  return {"--tls-cert", LabTlsDir() + "/" + kLabServerCert, "--tls-key",
          LabTlsDir() + "/" + kLabServerKey};
}

namespace {
bool Plaintext(const std::vector<std::string>& args) {
  return std::find(args.begin(), args.end(), "--insecure-plaintext") != args.end();
}

// Starts a daemon and waits until it accepts connections on 127.0.0.1:port; its log is the
// error when it does not come up.
absl::StatusOr<std::unique_ptr<ChildProcess>> StartListening(
    const std::vector<std::string>& argv, const std::string& log_path,
    const std::map<std::string, std::string>& env, int port) {
  auto started = ChildProcess::Start(argv, log_path, env);
  if (!started.ok()) return started.status();
  ChildProcess* p = started->get();
  bool up = WaitFor(
      [&] { return WaitForTcpPort(port, absl::Milliseconds(50)).ok() || !p->Running(); },
      absl::Seconds(20));
  if (!up || !p->Running()) {
    return absl::InternalError(absl::StrCat(std::filesystem::path(argv[0]).filename().string(),
                                            " did not start: ", ReadFileOrEmpty(log_path)));
  }
  return started;
}

// Sends `sig`, waits for the exit (SIGKILL after `timeout`) and forgets the process.
absl::Status StopChild(std::unique_ptr<ChildProcess>* proc, int sig, absl::Duration timeout) {
  if (*proc == nullptr) return absl::OkStatus();
  auto st = (*proc)->Stop(sig, timeout);
  proc->reset();
  return st.status();
}
}  // namespace

std::string MetaServer::address() const {
  return absl::StrCat(Plaintext(extra_args_) ? "http://" : "", "127.0.0.1:", port_);
}

absl::StatusOr<std::unique_ptr<MetaServer>> MetaServer::Start(const std::string& state_dir,
                                                              std::vector<std::string> extra_args) {
  std::unique_ptr<MetaServer> m(new MetaServer());
  m->state_dir_ = state_dir;
  m->extra_args_ = std::move(extra_args);
  m->port_ = FreeLoopbackPort();
  absl::Status s = m->Launch();
  if (!s.ok()) return s;
  return m;
}

absl::Status MetaServer::Launch() {
  std::vector<std::string> argv = {BuildRoot() + "/meta/nighfs-meta", "--listen",
                                   absl::StrCat("127.0.0.1:", port_), "--state-dir", state_dir_};
  // file:// stores of a test live beside its state folder, in the test's temporary root.
  argv.push_back("--allow-file-root");
  argv.push_back(std::filesystem::path(state_dir_).parent_path().string());
  for (const auto& a : extra_args_) argv.push_back(a);
  if (!Plaintext(extra_args_)) {
    for (const auto& a : LabTlsServerArgs()) argv.push_back(a);
  }
  auto started = StartListening(argv, state_dir_ + "/meta.log", env_, port_);
  if (!started.ok()) return started.status();
  proc_ = std::move(*started);
  RegisterMetaAdmin(address(), admin_token_file());
  return absl::OkStatus();
}

MetaServer::~MetaServer() { (void)Stop(); }

absl::Status MetaServer::Stop() { return StopChild(&proc_, SIGTERM, absl::Seconds(20)); }

absl::Status MetaServer::Kill() { return StopChild(&proc_, SIGKILL, absl::Seconds(10)); }

absl::Status MetaServer::Restart() {
  absl::Status s = Stop();
  if (!s.ok()) return s;
  return Launch();
}

std::string MetaServer::log() const { return ReadFileOrEmpty(state_dir_ + "/meta.log"); }

absl::Status CreateVolume(const std::string& meta_address, const std::string& name,
                          const std::string& store_url, uint32_t block_size) {
  auto client = AdminClient(meta_address);
  if (!client.ok()) return client.status();
  meta::v1::CreateVolumeRequest req;
  req.set_name(name);
  req.set_store_url(store_url);
  req.set_block_size(block_size);
  return (*client)->CreateVolume(req).status();
}

absl::StatusOr<uint64_t> CreateProxyGroup(const std::string& meta_address,
                                          const std::string& provider_code,
                                          const std::string& region_code,
                                          const std::vector<std::string>& addresses) {
  auto client = AdminClient(meta_address);
  if (!client.ok()) return client.status();
  meta::v1::CreateProxyGroupRequest req;
  req.set_provider_code(provider_code);
  req.set_region_code(region_code);
  for (const auto& a : addresses) req.add_addresses(a);
  auto r = (*client)->CreateProxyGroup(req);
  if (!r.ok()) return r.status();
  return r->group().id();
}

absl::Status AddVolumeProxyGroup(const std::string& meta_address, const std::string& volume,
                                 uint64_t group_id) {
  auto client = AdminClient(meta_address);
  if (!client.ok()) return client.status();
  meta::v1::CreateVolumeProxyGroupRequest req;
  req.set_volume(volume);
  req.set_proxy_group_id(group_id);
  return (*client)->CreateVolumeProxyGroup(req).status();
}

absl::StatusOr<std::unique_ptr<ProxyServer>> ProxyServer::Start(
    const std::string& meta_address, const std::string& dir, std::vector<std::string> extra_args) {
  std::unique_ptr<ProxyServer> p(new ProxyServer());
  p->meta_address_ = meta_address;
  p->dir_ = dir;
  p->disk_folder_ = dir + "/disk";
  p->db_folder_ = dir + "/db";
  p->token_file_ = dir + "/proxy.token";
  p->extra_args_ = std::move(extra_args);
  std::filesystem::create_directories(p->disk_folder_);
  std::filesystem::create_directories(p->db_folder_);
  auto id = CreateTokenFile(meta_address, "", "proxy", "", p->token_file_);
  if (!id.ok()) return id.status();
  p->port_ = FreeLoopbackPort();
  absl::Status s = p->Launch();
  if (!s.ok()) return s;
  return p;
}

std::string ProxyServer::address() const {
  return absl::StrCat(Plaintext(extra_args_) ? "http://" : "", "127.0.0.1:", port_);
}

std::string ProxyServer::base_url() const {
  return absl::StrCat(Plaintext(extra_args_) ? "http://" : "https://", "127.0.0.1:", port_);
}

absl::Status ProxyServer::Launch() {
  const std::string listen = absl::StrCat("127.0.0.1:", port_);
  std::vector<std::string> argv = {BuildRoot() + "/proxy/nighfs-proxy", "--listen", listen};
  if (std::find(extra_args_.begin(), extra_args_.end(), "--advertise") == extra_args_.end()) {
    argv.insert(argv.end(), {"--advertise", listen});
  }
  argv.insert(argv.end(), {"--meta", meta_address_, "--meta-token-file", token_file_,
                           "--ca-file", LabCaFile(), "--disk-folder", disk_folder_,
                           "--db-folder", db_folder_});
  for (const auto& a : extra_args_) argv.push_back(a);
  if (!Plaintext(extra_args_)) {
    for (const auto& a : LabTlsServerArgs()) argv.push_back(a);
  }
  auto started = StartListening(argv, dir_ + "/proxy.log", {}, port_);
  if (!started.ok()) return started.status();
  proc_ = std::move(*started);
  return absl::OkStatus();
}

ProxyServer::~ProxyServer() { (void)Stop(); }

absl::Status ProxyServer::Stop() { return StopChild(&proc_, SIGTERM, absl::Seconds(20)); }

absl::Status ProxyServer::Kill() { return StopChild(&proc_, SIGKILL, absl::Seconds(10)); }

absl::Status ProxyServer::Restart() {
  absl::Status s = Stop();
  if (!s.ok()) return s;
  return Launch();
}

std::string ProxyServer::log() const { return ReadFileOrEmpty(dir_ + "/proxy.log"); }

std::set<std::string> ProxyCachedBlocks(const ProxyServer& proxy) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(proxy.disk_folder(), ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string p = it->path().string();
    const size_t at = p.find("/blk/");
    if (it->is_regular_file() && at != std::string::npos &&
        it->path().filename().string().find("tmp") == std::string::npos) {
      out.insert(p.substr(at + 1));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<RelayedProxy>> RelayedProxy::Start(
    const std::string& meta_address, const std::string& dir, const RelayParams& params,
    std::vector<std::string> extra_args) {
  std::unique_ptr<RelayedProxy> rp(new RelayedProxy());
  // The relay's port first: the proxy advertises it (holders, AuthorizeBlockAccess).
  RelayOptions ro;
  ro.listen_port = FreeLoopbackPort();
  ro.params = params;
  extra_args.push_back("--advertise");
  extra_args.push_back(absl::StrCat("127.0.0.1:", ro.listen_port));
  auto proxy = ProxyServer::Start(meta_address, dir, std::move(extra_args));
  if (!proxy.ok()) return proxy.status();
  rp->proxy_ = std::move(*proxy);
  ro.upstream_port = rp->proxy_->port();
  auto relay = Relay::Start(ro);
  if (!relay.ok()) return relay.status();
  rp->relay_ = std::move(*relay);
  return rp;
}

RelayedProxy::~RelayedProxy() {
  proxy_.reset();
  relay_.reset();
}

bool IsMounted(const std::string& mount_point) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() > 4 && f[4] == mount_point) return true;
  }
  return false;
}

absl::StatusOr<status::v1::MountStatus> ReadMountStatus(const FuseMount& m) {
  const std::string run = m.path() + ".run";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(run, ec)) {
    if (e.path().extension() != ".json") continue;
    status::v1::MountStatus s;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = true;
    auto r = google::protobuf::util::JsonStringToMessage(ReadFileOrEmpty(e.path()), &s, o);
    if (!r.ok()) return absl::InternalError(std::string(r.message()));
    return s;
  }
  return absl::NotFoundError("no status file in " + run);
}

bool WaitMountStored(const FuseMount& m, absl::Duration timeout) {
  return WaitFor(
      [&] {
        auto s = ReadMountStatus(m);
        return s.ok() && s->updated_ns() > 0 && s->stats().pending_files() == 0 &&
               s->stats().dirty_bytes() == 0 && s->pending().empty();
      },
      timeout);
}

absl::Status WriteS3rverCredentials(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError("cannot create " + path);
  const std::string text = absl::StrCat("AWS_ACCESS_KEY_ID=", kS3rverAccessKey,
                                        "\nAWS_SECRET_ACCESS_KEY=", kS3rverSecret, "\n");
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok ? absl::OkStatus() : absl::InternalError("cannot write " + path);
}

int RunShell(const std::string& command, std::string* output) {
  std::string cmd = "(" + command + ") 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = ::pclose(p);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

absl::StatusOr<std::unique_ptr<FuseMount>> FuseMount::Start(const std::string& spec,
                                                            const std::string& mount_point,
                                                            const std::string& options) {
  std::unique_ptr<FuseMount> m(new FuseMount());
  m->mount_point_ = mount_point;
  std::vector<std::string> argv = {BuildRoot() + "/mount/mount.nighfs", spec, mount_point, "-f"};
  std::string opts = options;
  if (opts.find("ca_file=") == std::string::npos) {
    absl::StrAppend(&opts, opts.empty() ? "" : ",", "ca_file=", LabCaFile());
  }
  if (opts.find("token_file=") == std::string::npos) {
    // "VOLUME@HOST:PORT": a write token for the volume, made as the server's admin.
    const size_t at = spec.rfind('@');
    if (at != std::string::npos) {
      const std::string token_file = mount_point + ".token";
      auto id = CreateTokenFile(spec.substr(at + 1), spec.substr(0, at), "write", "", token_file);
      if (!id.ok()) return id.status();
      absl::StrAppend(&opts, ",token_file=", token_file);
    }
  }
  argv.push_back("-o");
  argv.push_back(opts);
  auto p = ChildProcess::Start(argv, mount_point + ".log",
                               {{"NIGHFS_RUN_DIR", mount_point + ".run"}});
  if (!p.ok()) return p.status();
  m->proc_ = std::move(*p);
  bool up = WaitFor([&] { return IsMounted(mount_point) || !m->proc_->Running(); },
                    absl::Seconds(30));
  if (!up || !IsMounted(mount_point)) {
    return absl::InternalError("mount.nighfs did not mount: " + m->log());
  }
  m->mounted_ = true;
  return m;
}

std::string FuseMount::log() const { return ReadFileOrEmpty(mount_point_ + ".log"); }

absl::StatusOr<int> FuseMount::Unmount() {
  if (!mounted_) return absl::FailedPreconditionError("not mounted");
  mounted_ = false;
  std::string out;
  int rc = RunShell("fusermount3 -u " + mount_point_, &out);
  if (rc != 0) {
    RunShell("umount -l " + mount_point_);
  }
  return proc_->Wait(absl::Seconds(60));
}

FuseMount::~FuseMount() {
  if (mounted_) {
    if (RunShell("fusermount3 -u " + mount_point_) != 0) RunShell("umount -l " + mount_point_);
  }
  if (proc_) (void)proc_->Stop(SIGTERM, absl::Seconds(30));
  if (IsMounted(mount_point_)) RunShell("umount -l " + mount_point_);
}

void ClusterTest::SetUp() {
  if (!CanMountFuse()) {
    if (InCi()) FAIL() << "CI must be able to mount FUSE (root and /dev/fuse)";
    GTEST_SKIP() << "needs root and /dev/fuse";
  }
  root_ = tmp_.path();
  ASSERT_FALSE(root_.empty()) << "cannot create a temporary directory";
  std::filesystem::create_directories(root_ + "/meta");
  std::filesystem::create_directories(root_ + "/blocks");
}

void ClusterTest::TearDown() {
  mounts_.clear();
  meta_.reset();
}

void ClusterTest::StartMeta(std::vector<std::string> args) {
  auto m = MetaServer::Start(root_ + "/meta", std::move(args));
  ASSERT_OK(m);
  meta_ = std::move(*m);
}

void ClusterTest::StartS3rver(const std::string& bucket, std::unique_ptr<S3rver>* server) {
  if (S3rverBinary().empty()) {
    if (InCi()) FAIL() << "s3rver is not installed; CI=true: the emulator tests must run";
    GTEST_SKIP() << "s3rver is not installed (scripts/setup.sh)";
  }
  std::filesystem::create_directories(root_ + "/emulator");
  auto started = S3rver::Start(root_ + "/emulator");
  ASSERT_OK(started);
  *server = std::move(*started);
  ASSERT_OK((*server)->CreateBucket(bucket));
  ASSERT_OK(WriteS3rverCredentials(S3rverCredentialsFile()));
}

FuseMount* ClusterTest::MountVolume(const std::string& volume, const std::string& dir,
                                    const std::string& options) {
  const std::string mp = root_ + "/" + dir;
  std::filesystem::create_directories(mp);
  auto m = FuseMount::Start(volume + "@" + meta_->address(), mp, options);
  EXPECT_OK(m);
  if (!m.ok()) return nullptr;
  mounts_.push_back(std::move(*m));
  return mounts_.back().get();
}

void ClusterTest::UnmountAll() {
  for (auto& m : mounts_) {
    auto st = m->Unmount();
    EXPECT_OK(st);
    if (st.ok()) {
      EXPECT_EQ(*st, 0) << m->log();
    }
  }
  mounts_.clear();
}

}  // namespace nighfs::testing
