// Internal to the metadata server (meta/meta_service.h is the public face): MetaServiceImpl,
// the limits its operations enforce, the row types of the inodes, dentries and volumes tables,
// and Tx, the transaction view whose helpers the operations share. The methods are defined by
// concern: tx.cc (Tx and row helpers), volumes.cc, namespace_ops.cc, data_ops.cc and
// meta_service.cc (Open, the background thread).
#ifndef NIGHFS_META_META_SERVICE_IMPL_H_
#define NIGHFS_META_META_SERVICE_IMPL_H_

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "meta/access.h"
#include "meta/dir_writers.h"
#include "meta/group_commit.h"
#include "meta/meta_service.h"
#include "meta/principal.h"
#include "meta/request_dedup.h"
#include "meta/sql.h"
#include "meta/sql_util.h"

namespace nighfs::meta::internal {

using sql::Connection;
using sql::Statement;

constexpr uint64_t kRootIno = 1;
constexpr uint32_t kMaxLinks = 65000;
constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxSymlinkBytes = 4095;
constexpr size_t kMaxVolumeNameBytes = 64;
constexpr size_t kMaxXattrNameBytes = 255;
constexpr size_t kMaxXattrValueBytes = 64 * 1024;
constexpr uint32_t kDefaultBlockSize = 4u << 20;
constexpr uint32_t kMinBlockSize = 64u << 10;
constexpr uint32_t kMaxBlockSize = 64u << 20;
constexpr uint32_t kReadDirDefaultLimit = 1000;
constexpr uint32_t kReadDirMaxLimit = 5000;
constexpr uint32_t kMaxAllocBlockIds = 4096;
constexpr uint32_t kRenameNoReplace = 1;
constexpr uint32_t kRenameExchange = 2;
constexpr uint32_t kXattrCreate = 1;
constexpr uint32_t kXattrReplace = 2;
constexpr uint64_t kMaxFileSize = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
constexpr int kGcPageSize = 1000;
// Deeper than any real tree; reaching it means the dentries form a cycle.
constexpr int kMaxTreeDepth = 1 << 20;

// A file-system error carrying `err`. The code is never one that clients retry (ENODATA and
// EMLINK map to ResourceExhausted, ESTALE to Aborted): the answer is final, the errno says why.
absl::Status FsError(int err, std::string_view message);

std::string Quote(std::string_view name);

// OK for a proxy address a Block.holder may name: [http://|https://]HOST:PORT or [IPv6]:PORT,
// at most 255 bytes (meta/proxy_ops.cc); InvalidArgument otherwise.
absl::Status CheckProxyAddress(std::string_view address);

// Integers kept in the meta table (stored as text, as the schema version is).
absl::StatusOr<int64_t> GetMetaInt(Connection* db, std::string_view key, int64_t fallback);

absl::Status SetMetaInt(Connection* db, std::string_view key, int64_t value);

// The database's secret key (MetaServiceImpl::secret_key_), made on first open.
absl::StatusOr<std::string> LoadOrCreateSecretKey(Connection* db);

struct Inode {
  uint64_t ino = 0;
  uint32_t mode = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  uint32_t nlink = 0;
  uint64_t rdev = 0;
  int64_t atime_ns = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  // Sum of the valid lengths of the inode's blocks, kept up to date with its block map.
  uint64_t stored_bytes = 0;

  bool IsDir() const { return S_ISDIR(mode); }
  bool IsReg() const { return S_ISREG(mode); }
  bool IsLnk() const { return S_ISLNK(mode); }
  // What the permission rules (meta/access.h) look at.
  Node node() const { return Node{mode, uid, gid}; }

  void ToProto(pb::Attr* a) const {
    a->set_ino(ino);
    a->set_mode(mode);
    a->set_uid(uid);
    a->set_gid(gid);
    a->set_size(size);
    a->set_nlink(nlink);
    a->set_rdev(rdev);
    a->set_atime_ns(atime_ns);
    a->set_mtime_ns(mtime_ns);
    a->set_ctime_ns(ctime_ns);
    a->set_stored_bytes(stored_bytes);
  }
  pb::Attr Proto() const {
    pb::Attr a;
    ToProto(&a);
    return a;
  }
};

// Eleven columns in this order, read by ReadInode.
constexpr char kInodeCols[] =
    "ino, mode, uid, gid, size, nlink, rdev, atime_ns, mtime_ns, ctime_ns, stored_bytes";

Inode ReadInode(const Statement& st, int c);

struct VolumeRow {
  uint64_t id = 0;
  std::string name;
  uint32_t block_size = 0;
  std::string store_url;
  int64_t created_ns = 0;
  uint64_t next_ino = 0;
  uint64_t next_block_id = 0;

  pb::Volume Proto() const {
    pb::Volume v;
    v.set_id(id);
    v.set_name(name);
    v.set_block_size(block_size);
    v.set_store_url(store_url);
    v.set_created_ns(created_ns);
    return v;
  }
};

constexpr char kVolumeCols[] =
    "id, name, block_size, store_url, created_ns, next_ino, next_block_id";

VolumeRow ReadVolume(const Statement& st);

struct Dentry {
  int64_t id = 0;
  uint64_t ino = 0;
};

absl::Status CheckName(std::string_view name);

absl::Status CheckVolumeName(std::string_view name);

// One transaction's view: the connection and the single "now" every timestamp of the operation
// uses. The helpers are the building blocks the operations share.
struct Tx {
  Connection* db;
  int64_t now;
  // Set by an operation that fails but must keep what it wrote (a stale session it expired,
  // blocks it queued for GC).
  bool commit_on_error = false;
  // Directories whose names this operation changed, noted in DirWriters (forgotten again if
  // the operation's writes are undone).
  std::vector<std::pair<uint64_t, uint64_t>> dirs_noted;

  absl::StatusOr<VolumeRow> GetVolume(uint64_t volume_id);

  absl::StatusOr<std::optional<VolumeRow>> FindVolumeByName(std::string_view name);

  absl::StatusOr<std::optional<Inode>> FindInode(uint64_t vol, uint64_t ino);

  absl::StatusOr<Inode> GetInode(uint64_t vol, uint64_t ino);

  absl::StatusOr<Inode> GetDir(uint64_t vol, uint64_t ino);

  // The inode a directory entry names; a dangling entry is corruption, not ENOENT.
  absl::StatusOr<Inode> GetEntryInode(uint64_t vol, uint64_t ino);

  absl::Status UpdateInode(uint64_t vol, const Inode& n);

  absl::Status InsertInode(uint64_t vol, const Inode& n, const std::string* target);

  absl::StatusOr<std::optional<Dentry>> FindDentry(uint64_t vol, uint64_t parent,
                                                   std::string_view name);

  // The entry `name` in `parent`; ENOENT when there is none.
  absl::StatusOr<Dentry> GetDentry(uint64_t vol, uint64_t parent, std::string_view name);

  absl::Status InsertDentry(uint64_t vol, uint64_t parent, std::string_view name, uint64_t ino);

  absl::StatusOr<bool> DirIsEmpty(uint64_t vol, uint64_t ino);

  absl::StatusOr<uint64_t> AllocIno(uint64_t vol);

  // True if `ancestor` is `ino` or one of its ancestors. Directories have exactly one name, so
  // the walk up the dentries is unique.
  absl::StatusOr<bool> IsAncestorOrSelf(uint64_t vol, uint64_t ancestor, uint64_t ino);

  absl::Status QueueBlocksOfInode(uint64_t vol, uint64_t ino);

  absl::Status QueueBlock(uint64_t vol, uint64_t block_id, uint64_t object_size);

  // Deletes an inode with its xattrs; its blocks go to garbage collection. The caller has
  // removed every name of it (and, for a directory, checked it is empty).
  absl::Status FreeInode(uint64_t vol, uint64_t ino);

  // Frees an inode that has no name and no session keeping it open.
  absl::Status FreeIfOrphan(uint64_t vol, uint64_t ino);

  absl::Status CheckLiveSession(uint64_t session_id, uint64_t vol, absl::Duration timeout);

  // Removes one link of a non-directory inode (its name is already gone). At zero links the
  // inode is freed, or kept for `session_id` when `sustain`. Returns the inode after.
  absl::StatusOr<Inode> DropLink(uint64_t vol, Inode n, uint64_t session_id, bool sustain,
                                 absl::Duration session_timeout);

  // Deletes a session and frees the unnamed inodes only it kept alive.
  absl::Status EndSession(uint64_t session_id);
};

class MetaServiceImpl final : public MetaService {
 public:
  // `wal_sync` (null unless options.namespace_sync_interval > 0) syncs the writer's log.
  MetaServiceImpl(MetaServiceOptions options, std::unique_ptr<Connection> writer,
                  std::vector<std::unique_ptr<Connection>> readers, int lock_fd,
                  std::string secret_key, std::unique_ptr<WalSync> wal_sync)
      : options_(std::move(options)), lock_fd_(lock_fd), secret_key_(std::move(secret_key)),
        // Its own key (domain separation), derived rather than stored: one secret per database.
        grant_key_(HmacSha256(secret_key_, "nighfs open grant key v1")),
        wal_sync_(std::move(wal_sync)),
        // A lost batch may have noted changes it did not make.
        writes_(std::make_unique<GroupCommit>(std::move(writer),
                                              [this] { dir_writers_.Clear(); },
                                              wal_sync_.get())),
        idle_readers_(std::move(readers)) {
    use_readers_ = !idle_readers_.empty();
    if (options_.run_background) background_ = std::thread([this] { BackgroundLoop(); });
  }

  ~MetaServiceImpl() override {
    {
      absl::MutexLock lock(&bg_mu_);
      stop_ = true;
    }
    if (background_.joinable()) background_.join();
    writes_.reset();  // nothing calls in any more (see MetaService)
    wal_sync_.reset();  // a last sync, while the writer's log is still open
    {
      absl::MutexLock lock(&pool_mu_);
      idle_readers_.clear();
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
  }

  absl::StatusOr<pb::CreateVolumeResponse> CreateVolume(const pb::CreateVolumeRequest& req) override;
  absl::StatusOr<pb::ListVolumesResponse> ListVolumes(const pb::ListVolumesRequest& req) override;
  absl::StatusOr<pb::DeleteVolumeResponse> DeleteVolume(const pb::DeleteVolumeRequest& req) override;
  absl::StatusOr<pb::MountResponse> Mount(const pb::MountRequest& req) override;
  absl::StatusOr<pb::HeartbeatResponse> Heartbeat(const pb::HeartbeatRequest& req) override;
  absl::StatusOr<pb::UnmountResponse> Unmount(const pb::UnmountRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Lookup(const pb::LookupRequest& req) override;
  absl::StatusOr<pb::AttrResponse> GetAttr(const pb::GetAttrRequest& req) override;
  absl::StatusOr<pb::AttrResponse> SetAttr(const pb::SetAttrRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Mknod(const pb::MknodRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Mkdir(const pb::MkdirRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Symlink(const pb::SymlinkRequest& req) override;
  absl::StatusOr<pb::EntryResponse> Link(const pb::LinkRequest& req) override;
  absl::StatusOr<pb::UnlinkResponse> Unlink(const pb::UnlinkRequest& req) override;
  absl::StatusOr<pb::RmdirResponse> Rmdir(const pb::RmdirRequest& req) override;
  absl::StatusOr<pb::RenameResponse> Rename(const pb::RenameRequest& req) override;
  absl::StatusOr<pb::ReadDirResponse> ReadDir(const pb::ReadDirRequest& req) override;
  absl::StatusOr<pb::ReadlinkResponse> Readlink(const pb::ReadlinkRequest& req) override;
  absl::StatusOr<pb::GetBlocksResponse> GetBlocks(const pb::GetBlocksRequest& req) override;
  absl::StatusOr<pb::AllocBlockIdsResponse> AllocBlockIds(const pb::AllocBlockIdsRequest& req) override;
  absl::StatusOr<pb::CommitBlocksResponse> CommitBlocks(const pb::CommitBlocksRequest& req) override;
  absl::StatusOr<pb::ReleaseResponse> Release(const pb::ReleaseRequest& req) override;
  absl::StatusOr<pb::SetXattrResponse> SetXattr(const pb::SetXattrRequest& req) override;
  absl::StatusOr<pb::GetXattrResponse> GetXattr(const pb::GetXattrRequest& req) override;
  absl::StatusOr<pb::ListXattrResponse> ListXattr(const pb::ListXattrRequest& req) override;
  absl::StatusOr<pb::RemoveXattrResponse> RemoveXattr(const pb::RemoveXattrRequest& req) override;
  absl::StatusOr<pb::StatFsResponse> StatFs(const pb::StatFsRequest& req) override;
  absl::StatusOr<pb::SyncResponse> Sync(const pb::SyncRequest& req) override;
  absl::StatusOr<pb::CreateTokenResponse> CreateToken(const pb::CreateTokenRequest& req) override;
  absl::StatusOr<pb::ListTokensResponse> ListTokens(const pb::ListTokensRequest& req) override;
  absl::StatusOr<pb::RevokeTokenResponse> RevokeToken(const pb::RevokeTokenRequest& req) override;
  // meta/proxy_ops.cc
  absl::StatusOr<pb::AuthorizeBlockAccessResponse> AuthorizeBlockAccess(
      const pb::AuthorizeBlockAccessRequest& req) override;
  absl::StatusOr<pb::DeadBlocksResponse> DeadBlocks(const pb::DeadBlocksRequest& req) override;
  // meta/proxy_groups.cc
  absl::StatusOr<pb::ProxyGroupResponse> CreateProxyGroup(
      const pb::CreateProxyGroupRequest& req) override;
  absl::StatusOr<pb::ProxyGroupResponse> UpdateProxyGroup(
      const pb::UpdateProxyGroupRequest& req) override;
  absl::StatusOr<pb::ListProxyGroupsResponse> ListProxyGroups(
      const pb::ListProxyGroupsRequest& req) override;
  absl::StatusOr<pb::DeleteProxyGroupResponse> DeleteProxyGroup(
      const pb::DeleteProxyGroupRequest& req) override;
  absl::StatusOr<pb::CreateVolumeProxyGroupResponse> CreateVolumeProxyGroup(
      const pb::CreateVolumeProxyGroupRequest& req) override;
  absl::StatusOr<pb::ListVolumeProxyGroupsResponse> ListVolumeProxyGroups(
      const pb::ListVolumeProxyGroupsRequest& req) override;
  absl::StatusOr<pb::DeleteVolumeProxyGroupResponse> DeleteVolumeProxyGroup(
      const pb::DeleteVolumeProxyGroupRequest& req) override;
  absl::StatusOr<pb::GetVolumeRoutesResponse> GetVolumeRoutes(
      const pb::GetVolumeRoutesRequest& req) override;

  absl::StatusOr<std::optional<TokenGrant>> FindToken(std::string_view secret) override;
  absl::StatusOr<bool> InSubtree(uint64_t volume_id, uint64_t ino, uint64_t root_ino,
                                 uint64_t token_id) override;
  absl::Status CheckSessionKey(uint64_t session_id, std::string_view key,
                               uint64_t token_id) override;
  int64_t NowNs() const override { return Now(); }

  absl::StatusOr<int64_t> RunGcOnce() override;
  absl::StatusOr<int64_t> ExpireSessionsOnce() override;
  absl::StatusOr<int64_t> ExpireRequestRepliesOnce() override;

 private:
  int64_t Now() const { return options_.now_ns(); }

  // Runs `fn` in a write transaction: its writes are kept if it returns OK (or sets
  // tx.commit_on_error), undone otherwise, and returns once what it kept is committed: on disk
  // when `durable` or the server syncs every commit, else within namespace_sync_interval.
  // Writers are serialized; concurrent ones share a commit (meta/group_commit.h), and `fn` may
  // run on another caller's thread, under this caller's principal.
  template <class Fn>
  auto Write(Fn&& fn, bool durable = true) -> std::invoke_result_t<Fn, Tx&> {
    std::optional<std::invoke_result_t<Fn, Tx&>> result;
    absl::Status s = writes_->Run([&](Connection* db) {
      // "now" is taken in the writers' order, so timestamps follow the commit order.
      Tx tx{db, Now()};
      result.emplace(fn(tx));
      const bool keep = result->ok() || tx.commit_on_error;
      if (!keep) {
        for (const auto& [vol, dir] : tx.dirs_noted) dir_writers_.Forget(vol, dir);
      }
      return keep;
    }, durable);
    if (!s.ok()) return s;
    return *std::move(result);
  }

  // Write() for a mutation that may be a retry: runs `fn` at most once per `request_id` (see
  // meta/request_dedup.h). A recorded reply is returned without running `fn`; a successful
  // reply is recorded in fn's transaction. Failures are not recorded: a failed mutation
  // changed nothing (or only what a retry would change again), so a retry runs afresh.
  template <class Fn>
  auto WriteOnce(std::string_view method, const std::string& request_id, Fn&& fn)
      -> std::invoke_result_t<Fn, Tx&> {
    using Result = std::invoke_result_t<Fn, Tx&>;
    using Reply = typename Result::value_type;
    const bool dedup = !request_id.empty() && options_.request_reply_ttl > absl::ZeroDuration();
    Result result = Write([&](Tx& tx) -> Result {
      if (!dedup) return fn(tx);
      ASSIGN_OR_RETURN(std::optional<std::string> recorded,
                       FindRecordedReply(tx.db, request_id, method));
      if (recorded) {
        Reply r;
        if (!r.ParseFromString(*recorded)) {
          return absl::DataLossError(absl::StrCat("recorded ", std::string(method), " reply is corrupt"));
        }
        // Whether a directory changed since was not known when it was recorded (DirWriters).
        if constexpr (requires { r.clear_parent_unchanged(); }) r.clear_parent_unchanged();
        if constexpr (requires { r.clear_new_parent_unchanged(); }) r.clear_new_parent_unchanged();
        return r;
      }
      ASSIGN_OR_RETURN(Reply r, fn(tx));
      RETURN_IF_ERROR(RecordReply(tx.db, request_id, method, r.SerializeAsString(), tx.now));
      return r;
    }, !SyncedLazily(method));
    if (result.ok() && options_.test_after_commit) options_.test_after_commit();
    return result;
  }

  // The mutations a batched server does not sync before replying (namespace_sync_interval):
  // those that carry no file data, allocate no block id and open no session.
  static bool SyncedLazily(std::string_view method) {
    static constexpr std::string_view kLazy[] = {"SetAttr", "Mknod",       "Mkdir",
                                                 "Symlink", "Link",        "Unlink",
                                                 "Rmdir",   "Rename",      "SetXattr",
                                                 "Release", "RemoveXattr"};
    for (std::string_view m : kLazy) {
      if (m == method) return true;
    }
    return false;
  }

  // Runs `fn` in one read transaction (a consistent snapshot) on a reader connection.
  template <class Fn>
  auto Read(Fn&& fn) -> std::invoke_result_t<Fn, Tx&> {
    if (!use_readers_) return Write(std::forward<Fn>(fn), /*durable=*/false);
    std::unique_ptr<Connection> conn;
    {
      absl::MutexLock lock(&pool_mu_);
      pool_mu_.Await(absl::Condition(this, &MetaServiceImpl::ReaderAvailable));
      conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
    auto result = [&]() -> std::invoke_result_t<Fn, Tx&> {
      Tx tx{conn.get(), Now()};
      ASSIGN_OR_RETURN(std::unique_ptr<sql::Transaction> txn, conn->Begin(sql::TxMode::kRead));
      auto r = fn(tx);
      if (!r.ok()) return r;
      RETURN_IF_ERROR(txn->Commit());
      return r;
    }();
    absl::MutexLock lock(&pool_mu_);
    idle_readers_.push_back(std::move(conn));
    return result;
  }

  bool ReaderAvailable() const ABSL_SHARED_LOCKS_REQUIRED(pool_mu_) {
    return !idle_readers_.empty();
  }

  // Who a request acts for: its caller's credentials and the session of the principal (which
  // open grants are bound to). Read on the receiving thread, before any transaction.
  struct Asker {
    Cred cred;
    uint64_t session = 0;
    // The session that changes a directory's names (DirWriters): the one the request names
    // (changer_session_id, else session_id), once the RPC layer has checked its key (an
    // in-process caller is trusted); 0 = none.
    uint64_t changer = 0;
  };
  template <class Req>
  static absl::StatusOr<Asker> AskerOf(const Req& req) {
    ASSIGN_OR_RETURN(Cred c, ResolveCaller(req.has_caller(), req.caller()));
    Asker a{std::move(c), CurrentPrincipal().session_id};
    const bool internal = CurrentPrincipal().kind == Principal::Kind::kInternal;
    if constexpr (requires { req.changer_session_id(); }) {
      a.changer = internal ? req.changer_session_id() : CurrentPrincipal().changer_session_id;
    } else if constexpr (requires { req.session_id(); }) {
      a.changer = internal ? req.session_id() : CurrentPrincipal().session_id;
    }
    return a;
  }
  // Notes that `a.changer` changes the names of directory (vol, dir) in `tx`; returns whether
  // the previous change was its own too (the replies' parent_unchanged).
  bool NoteDirChange(Tx& tx, const Asker& a, uint64_t vol, uint64_t dir) {
    tx.dirs_noted.emplace_back(vol, dir);
    return dir_writers_.Note(vol, dir, a.changer);
  }
  // The largest inline block (Block.inline_data) volume `v` takes: the server's limit, within
  // the volume's block size.
  uint32_t InlineMax(const VolumeRow& v) const {
    return std::min({options_.inline_max_bytes, kMaxInlineBytes, v.block_size});
  }
  // True if `grant` is an open grant of `a`'s session for (vol, ino) covering `need`.
  bool Granted(const Asker& a, std::string_view grant, uint64_t vol, uint64_t ino,
               int need) const {
    return !grant.empty() && GrantCovers(grant_key_, grant, vol, ino, a.session, need);
  }

  // The permission check and the mode, owner and time fields of a SetAttr (not its size or
  // ctime), applied to `n`: shared by SetAttr and CommitBlocksRequest.set_attr.
  static absl::Status ApplyOwnerModeTimes(const Cred& cred, const pb::SetAttrRequest& req,
                                          bool write_granted, int64_t now, Inode* n);

  // Shared by Mknod, Mkdir and Symlink. `open_access` (Mknod of a file being created open)
  // asks for an open grant in the response.
  absl::StatusOr<pb::EntryResponse> CreateNode(std::string_view method,
                                               const std::string& request_id, uint64_t vol,
                                               uint64_t parent,
                                               const std::string& name, uint32_t mode,
                                               uint32_t uid, uint32_t gid, uint64_t rdev,
                                               const std::string* target, const Asker& asker,
                                               int open_access = 0);

  absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> GetStore(const std::string& url);

  // A secret that a retry of the same request must see again without it being recorded in
  // request_replies: derived from the request id under secret_key_ (random when there is no
  // id). `purpose` separates the uses ("token", "session").
  std::string DeriveSecret(std::string_view purpose, const std::string& request_id,
                           size_t bytes) const;
  void BackgroundLoop();

  // Records `address` as a known proxy (meta/proxy_ops.cc), called by `token_id` (0 = admin or
  // in-process); skips the write when this process wrote it for the same token within the last
  // minute.
  absl::Status NoteProxy(const std::string& address, uint64_t token_id);

  const MetaServiceOptions options_;
  const int lock_fd_;
  // Random, made once per database and kept in its meta table (meta/tokens.cc): the key of
  // DeriveSecret. Never leaves the server.
  const std::string secret_key_;
  // The key of the open grants (meta/access.h), derived from secret_key_ so that grants outlive
  // a restart of the server.
  const std::string grant_key_;

  // Batched durability (options_.namespace_sync_interval); null when every commit syncs.
  // Declared before writes_, which uses it.
  std::unique_ptr<WalSync> wal_sync_;
  // Who changed each directory's names last (declared before writes_, whose on_lost uses it).
  DirWriters dir_writers_;
  // The one writer connection, behind its queue.
  std::unique_ptr<GroupCommit> writes_;

  absl::Mutex pool_mu_;
  bool use_readers_ = false;
  std::vector<std::unique_ptr<Connection>> idle_readers_ ABSL_GUARDED_BY(pool_mu_);

  absl::Mutex stores_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<blockstore::BlockStore>> stores_
      ABSL_GUARDED_BY(stores_mu_);

  struct NotedProxy {
    uint64_t token_id;
    int64_t written_ns;
  };
  absl::Mutex proxies_mu_;
  absl::flat_hash_map<std::string, NotedProxy> noted_proxies_ ABSL_GUARDED_BY(proxies_mu_);

  // Only one GC round at a time (the background thread and a test may both call RunGcOnce).
  absl::Mutex gc_mu_;

  absl::Mutex bg_mu_;
  bool stop_ ABSL_GUARDED_BY(bg_mu_) = false;
  std::thread background_;
};

}  // namespace nighfs::meta::internal

#endif  // NIGHFS_META_META_SERVICE_IMPL_H_
