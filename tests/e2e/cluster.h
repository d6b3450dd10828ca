// Real parts for end-to-end tests: a nighfs-meta process on a loopback port and FUSE mounts
// of mount.nighfs, all torn down (unmounted, stopped) by destructors even when a test fails.
#ifndef NIGHFS_TESTS_E2E_CLUSTER_H_
#define NIGHFS_TESTS_E2E_CLUSTER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "status.pb.h"
#include "tests/relay/relay.h"
#include "tests/testing/emulators.h"
#include "tests/testing/process.h"

namespace nighfs::testing {

// Whether this machine can mount FUSE (root and /dev/fuse).
bool CanMountFuse();

// The lab TLS files of this test binary (common/tls_certs.h), made once in a temporary folder
// removed at exit: every nighfs-meta the harness starts serves TLS with them, and every mount
// it starts trusts their CA. The first call also sets NIGHFS_CA_FILE in this process, so the
// `nighfs` CLI that tests run (RunShell, ChildProcess) trusts it without --ca-file.
std::string LabTlsDir();
std::string LabCaFile();  // LabTlsDir()/ca.pem
// {"--tls-cert", ..., "--tls-key", ...} for a nighfs-meta a test starts by itself.
std::vector<std::string> LabTlsServerArgs();

class MetaServer {
 public:
  // Starts nighfs-meta with its state in `state_dir` (kept across Restart()), serving TLS with
  // the lab files unless `extra_args` has --insecure-plaintext.
  static absl::StatusOr<std::unique_ptr<MetaServer>> Start(const std::string& state_dir,
                                                           std::vector<std::string> extra_args = {});
  ~MetaServer();
  absl::Status Stop();
  // Starts again on the same port and state (also after the process died on its own).
  absl::Status Restart();
  // SIGKILL, no chance to clean up (a crash); Restart() brings it back.
  absl::Status Kill();
  // Whether the process is alive (false after Kill, Stop or a crash).
  bool Running() { return proc_ != nullptr && proc_->Running(); }
  // Environment variables for the next Launch (Restart), replacing earlier ones.
  void SetEnv(std::map<std::string, std::string> env) { env_ = std::move(env); }
  int port() const { return port_; }
  // "127.0.0.1:PORT" (TLS), or "http://127.0.0.1:PORT" with --insecure-plaintext.
  std::string address() const;
  std::string log() const;
  // The admin token file nighfs-meta wrote in its state folder.
  std::string admin_token_file() const { return state_dir_ + "/admin.token"; }

 private:
  MetaServer() = default;
  absl::Status Launch();
  std::string state_dir_;
  std::vector<std::string> extra_args_;
  std::map<std::string, std::string> env_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> proc_;
};

// Security harness convention (issue 11): MetaServer starts nighfs-meta with
// --allow-file-root set to the parent of its state folder (the test's temporary root) and
// registers its admin token under its address. CreateVolume and CreateTokenFile act as admin
// with the token registered for the address; FuseMount::Start gives a mount without a
// token_file= option a fresh write token for its volume. A test that starts nighfs-meta by
// itself calls RegisterMetaAdmin(address, STATE/admin.token) once it listens.
void RegisterMetaAdmin(const std::string& meta_address, const std::string& admin_token_file);
// The admin token registered for `meta_address` ("" if none).
std::string AdminTokenFor(const std::string& meta_address);

// Runs the nighfs CLI-equivalent: creates a volume through the metadata API, as admin.
absl::Status CreateVolume(const std::string& meta_address, const std::string& name,
                          const std::string& store_url, uint32_t block_size = 0);

// Creates a volume token as admin and writes its secret to `file` (mode 0600). `access` is
// "read" or "write"; `path` "" or "/" = the whole volume. Returns the token id. `access`
// "proxy" makes a proxy server's own credential instead (ACCESS_PROXY, bound to no volume:
// `volume` and `path` must be ""), what `nighfs configure create token --access proxy` makes.
absl::StatusOr<uint64_t> CreateTokenFile(const std::string& meta_address,
                                         const std::string& volume, const std::string& access,
                                         const std::string& path, const std::string& file);

// Proxy groups (issue 13), as admin (see RegisterMetaAdmin), what `nighfs configure create
// proxy-group` and `create volume-proxy-group` do. Members are "HOST:PORT" as the proxies
// advertise themselves. CreateProxyGroup returns the group's id.
absl::StatusOr<uint64_t> CreateProxyGroup(const std::string& meta_address,
                                          const std::string& provider_code,
                                          const std::string& region_code,
                                          const std::vector<std::string>& addresses);
absl::Status AddVolumeProxyGroup(const std::string& meta_address, const std::string& volume,
                                 uint64_t group_id);

// A nighfs-proxy process (issue 12) on a loopback port, in front of the stores of the volumes
// of one nighfs-meta: started with the lab TLS files (unless `extra_args` has
// --insecure-plaintext), a proxy token of its own made as admin (DIR/proxy.token), --meta,
// --ca-file LabCaFile(), --disk-folder DIR/disk, --db-folder DIR/db and --advertise
// 127.0.0.1:PORT (unless `extra_args` has its own --advertise). Store credentials (--creds-file) and tuning (--sync, --disk-quota,
// --writeback-delay, ...) come in `extra_args`. Stopped (SIGTERM) by the destructor.
class ProxyServer {
 public:
  static absl::StatusOr<std::unique_ptr<ProxyServer>> Start(
      const std::string& meta_address, const std::string& dir,
      std::vector<std::string> extra_args = {});
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;
  // SIGTERM and wait (a clean stop).
  absl::Status Stop();
  // SIGKILL, no chance to clean up (a crash); Restart() brings it back.
  absl::Status Kill();
  // Starts again on the same port, folders and token (also after Kill or a crash).
  absl::Status Restart();
  bool Running() { return proc_ != nullptr && proc_->Running(); }
  // The running process (nullptr after Stop/Kill), e.g. to SIGSTOP/SIGCONT it.
  ChildProcess* process() { return proc_.get(); }
  int port() const { return port_; }
  // "127.0.0.1:PORT" (TLS), or "http://127.0.0.1:PORT" with --insecure-plaintext.
  std::string address() const;
  // "https://127.0.0.1:PORT" or "http://127.0.0.1:PORT", for HTTP requests in tests.
  std::string base_url() const;
  // The mount option that routes a mount's block I/O through this proxy: "proxy=ADDRESS".
  std::string mount_option() const { return "proxy=" + address(); }
  const std::string& disk_folder() const { return disk_folder_; }
  const std::string& db_folder() const { return db_folder_; }
  const std::string& token_file() const { return token_file_; }
  std::string log() const;

 private:
  ProxyServer() = default;
  absl::Status Launch();
  std::string meta_address_;
  std::string dir_;
  std::string disk_folder_;
  std::string db_folder_;
  std::string token_file_;
  std::vector<std::string> extra_args_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> proc_;
};

// The block keys ("blk/...") a proxy holds in its disk cache (DISK/<volume id>/blk/...),
// temporary files left out: which blocks reached (or were read through) that proxy.
std::set<std::string> ProxyCachedBlocks(const ProxyServer& proxy);

// A nighfs-proxy reached only through an in-process latency relay (tests/relay/relay.h), as a
// proxy at another site: the relay listens on a port of its own and the proxy advertises the
// relay's address, so that address is the one to list in a proxy group, and every byte between
// mounts and the proxy takes the relay's delay, jitter and mode. The relay outlives Kill() and
// Restart() of the proxy (a connection then finds no upstream and is reset, as a dead host's
// port would be refused). Destroyed: the proxy is stopped (SIGTERM), then the relay.
class RelayedProxy {
 public:
  // `params`: the relay's initial delay (one-way), jitter, bandwidth and mode. `extra_args` as
  // for ProxyServer::Start (without --advertise).
  static absl::StatusOr<std::unique_ptr<RelayedProxy>> Start(
      const std::string& meta_address, const std::string& dir, const RelayParams& params,
      std::vector<std::string> extra_args = {});
  ~RelayedProxy();
  RelayedProxy(const RelayedProxy&) = delete;
  RelayedProxy& operator=(const RelayedProxy&) = delete;

  // The relay's "127.0.0.1:PORT": the member address for proxy groups.
  std::string address() const { return relay_->address(); }
  ProxyServer& proxy() { return *proxy_; }
  Relay& relay() { return *relay_; }

 private:
  RelayedProxy() = default;
  std::unique_ptr<ProxyServer> proxy_;
  std::unique_ptr<Relay> relay_;
};

class FuseMount {
 public:
  // Runs `mount.nighfs SPEC MOUNTPOINT -f -o OPTIONS` and waits until the mount is live.
  // OPTIONS without a ca_file get ca_file=LabCaFile(). A mount behind a proxy gets
  // ProxyServer::mount_option() in OPTIONS.
  // Without token_file= in OPTIONS, a write token for the volume is made (as admin, see
  // RegisterMetaAdmin) in MOUNTPOINT.token and passed.
  static absl::StatusOr<std::unique_ptr<FuseMount>> Start(const std::string& spec,
                                                          const std::string& mount_point,
                                                          const std::string& options = "");
  ~FuseMount();
  // fusermount3 -u, then waits for the daemon to flush and exit; its exit status.
  absl::StatusOr<int> Unmount();
  const std::string& path() const { return mount_point_; }
  ChildProcess* process() { return proc_.get(); }
  std::string log() const;

 private:
  FuseMount() = default;
  std::string mount_point_;
  std::unique_ptr<ChildProcess> proc_;
  bool mounted_ = false;
};

bool IsMounted(const std::string& mount_point);

// The mount's status file (what `nighfs status` reads; the daemon rewrites it every few
// seconds in MOUNTPOINT.run, FuseMount's NIGHFS_RUN_DIR), parsed.
absl::StatusOr<status::v1::MountStatus> ReadMountStatus(const FuseMount& m);
// Waits until the mount's status says nothing is pending or dirty (every close stored, or
// acknowledged by its proxy); false on timeout.
bool WaitMountStored(const FuseMount& m, absl::Duration timeout);

// Writes the store credentials of s3rver's account (tests/testing/emulators.h) to `path`,
// mode 0600, in the KEY=VALUE format of blockstore::LoadCredentials: for nighfs-meta
// --credentials, mount.nighfs credentials= and nighfs-proxy --creds-file.
absl::Status WriteS3rverCredentials(const std::string& path);

// Runs a shell command; returns its exit status and captures stdout+stderr in *output.
int RunShell(const std::string& command, std::string* output = nullptr);

// The common base of the end-to-end fixtures: a temporary root with meta/ and blocks/, one
// nighfs-meta on it and the mounts a test makes. A fixture's SetUp calls ClusterTest::SetUp()
// first and returns if IsSkipped() || HasFatalFailure().
class ClusterTest : public ::testing::Test {
 protected:
  // Skips without FUSE (fails under CI: it must run there); creates root_/meta, root_/blocks.
  void SetUp() override;
  // Mounts first (they flush to the store and report to the server as they go), then the server.
  void TearDown() override;

  // Starts nighfs-meta with its state in root_/meta; fatal failure if it does not start.
  void StartMeta(std::vector<std::string> args = {});
  // Starts s3rver with its objects in root_/emulator and bucket `bucket` into *server, and
  // writes its account's credentials to root_/credentials (WriteS3rverCredentials). Skips the
  // test when s3rver is not installed (fails in CI). Call under ASSERT_NO_FATAL_FAILURE, then
  // return if IsSkipped().
  void StartS3rver(const std::string& bucket, std::unique_ptr<S3rver>* server);
  std::string S3rverCredentialsFile() const { return root_ + "/credentials"; }
  // The block store under root_/blocks, for CreateVolume.
  std::string BlocksUrl() const { return "file://" + root_ + "/blocks"; }
  // Mounts `volume` at root_/dir, kept until the test ends; nullptr (and a failure) if it fails.
  FuseMount* MountVolume(const std::string& volume, const std::string& dir,
                         const std::string& options = "");
  // Unmounts every mount, expecting each daemon to exit 0, and forgets them.
  void UnmountAll();

  // Declared in destruction order reversed: the directory outlives the server, which outlives
  // the mounts. A derived fixture's members (emulators) go before these.
  TempDir tmp_;
  std::string root_;
  std::unique_ptr<MetaServer> meta_;
  std::vector<std::unique_ptr<FuseMount>> mounts_;
};

}  // namespace nighfs::testing

#endif  // NIGHFS_TESTS_E2E_CLUSTER_H_
