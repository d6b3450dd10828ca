// The metadata server's logic: volumes, sessions, the POSIX namespace, block maps and block
// garbage collection, kept in one SQL database (meta/sql.h; SQLite today). nighfs-meta serves it
// over HTTP with RegisterMetaServiceWithAuth (meta/auth.h); tests and tools drive it directly.
//
// Every operation runs in one database transaction, so a crash leaves either all or none of it,
// and a change is on disk before the call returns.
#ifndef NIGHFS_META_META_SERVICE_H_
#define NIGHFS_META_META_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "metadata_client/meta_api.h"

namespace nighfs::meta {

// The largest MetaServiceOptions::inline_max_bytes: a block map row stays a few pages.
inline constexpr uint32_t kMaxInlineBytes = 64u << 10;

struct MetaServiceOptions {
  // The SQLite database file; created with the schema when missing. It, its WAL, shared-memory
  // and lock files are made private (0600) whatever the umask: they hold every file name. Another process cannot
  // open the same file through MetaService while this one has it (a lock file beside it).
  std::string db_path;
  // Secrets for cloud block stores (blockstore::LoadCredentials; "" = environment only). Only
  // read when open_store is not set.
  std::string credentials_file;
  // How long a block that lost its last reference stays in its store before deletion, so open
  // readers on other mounts, holding an older block map, can finish.
  absl::Duration gc_grace = absl::Seconds(30);
  // How long DeadBlocks still names a block after garbage collection deleted it (a tombstone):
  // a proxy that asks later than this about a block it holds may upload it (an orphan object).
  absl::Duration gc_tombstone_retention = absl::Hours(24 * 7);
  // The SHA-256 of the admin token (nighfs-meta sets it): AuthorizeBlockAccess grants the
  // admin token WRITE on every volume. "" = no admin token is recognised there.
  std::string admin_token_sha256;
  // Zero (the default): every commit syncs the metadata log (synchronous=FULL), so every change
  // is on disk before its reply. Positive (nighfs-meta --namespace-sync=batched): namespace
  // changes without file data are synced within this interval, at the next durable commit
  // (data, block ids, sessions, administration) or at a Sync call (meta/wal_sync.h).
  absl::Duration namespace_sync_interval = absl::ZeroDuration();
  // TEST ONLY: runs after each sync of the metadata log in batched mode.
  std::function<void()> test_on_wal_sync;
  // How often the background thread collects garbage and expires sessions.
  absl::Duration gc_interval = absl::Seconds(5);
  // A session without Heartbeat for this long is expired: its files kept open after unlink
  // (UnlinkRequest.sustain) are released.
  absl::Duration session_timeout = absl::Seconds(300);
  // Run the GC and session-expiry thread. Tests turn it off and call RunGcOnce() and
  // ExpireSessionsOnce() themselves.
  bool run_background = true;
  // Reader connections for read-only calls (Lookup, GetAttr, ReadDir...), which then run in
  // parallel with each other and with the one writer.
  int read_connections = 4;
  // Opens the block store a volume's store_url names (volume creation checks it, GC deletes
  // from it). Default: blockstore::OpenBlockStore with the credentials_file's secrets.
  std::function<absl::StatusOr<std::unique_ptr<blockstore::BlockStore>>(const std::string& url)>
      open_store;
  // How long the reply of a mutation stays recorded under its request id, so that a client
  // retrying it (the reply was lost, or the server restarted in between) gets that reply
  // instead of a second execution. Must exceed every client's retry window (the mount's
  // meta op_timeout, 60 s by default). Zero turns deduplication off.
  absl::Duration request_reply_ttl = absl::Minutes(10);
  // At most this many recorded replies are kept; the oldest are forgotten first.
  int64_t max_request_replies = 1'000'000;
  // TEST ONLY: called after a mutation's transaction has committed, before its reply is
  // returned (nighfs-meta's NIGHFS_TEST_CRASH_AFTER_COMMIT exits here to lose a reply).
  std::function<void()> test_after_commit;
  // Accept volumes in mem:// stores, which keep blocks in this process's memory and lose them
  // when it exits: for tests only (nighfs-meta --allow-test-stores).
  bool allow_test_stores = false;
  // Data on the metadata server (issue 14): block 0 of a file may be committed inline
  // (Block.inline_data) up to this many bytes (and never more than the volume's block size),
  // and a CommitBlocks over it is refused. Mounts learn it from MountResponse. 0 = no inline
  // blocks. Each inline byte is a byte of the database and of its WAL: at most
  // kMaxInlineBytes.
  uint32_t inline_max_bytes = 4096;
  // Folders file:// stores must lie in (nighfs-meta --allow-file-root): a store URL outside
  // every one is refused before anything touches the path, with one message whether or not it
  // exists. nullopt = no confinement (in-process tests and tools); nighfs-meta always sets it.
  std::optional<std::vector<std::string>> allowed_file_roots;
  // The clock of every timestamp, session expiry and GC grace, in ns since the Unix epoch.
  // Default: the real time.
  std::function<int64_t()> now_ns;
};

// A volume token as the RPC layer (meta/auth.h) sees it once its secret matched.
struct TokenGrant {
  uint64_t id = 0;
  uint64_t volume_id = 0;
  std::string volume_name;
  bool can_write = false;
  uint64_t root_ino = 1;   // the subtree root (1 = the whole volume)
  int64_t expires_ns = 0;  // 0 = never
  bool revoked = false;
  // A proxy token (ACCESS_PROXY): bound to no volume (volume_id 0, volume_name "").
  bool proxy = false;
  std::string path = "/";  // the subtree's path
};

// Implements every MetaApi call (see proto/meta.proto and the errno list in meta_api.h). All
// methods are thread-safe. The object must outlive any router it is registered with.
class MetaService : public MetaApi {
 public:
  // Opens (or creates) the database and migrates its schema; starts the background thread when
  // options.run_background. FailedPrecondition for a database written by a newer version.
  static absl::StatusOr<std::unique_ptr<MetaService>> Open(const MetaServiceOptions& options);

  // Stops the background thread and closes the database.
  ~MetaService() override = default;

  // Deletes from their stores the blocks freed at least gc_grace ago, and forgets them; first
  // queues the ids that sessions ended at least gc_grace ago allocated and never committed
  // (meta/alloc_gc.h). A
  // failed delete keeps the block queued (logged as a warning) for the next round. Returns how
  // many blocks were deleted.
  virtual absl::StatusOr<int64_t> RunGcOnce() = 0;
  // Deletes the sessions whose last heartbeat is older than session_timeout, releasing what
  // they kept alive. Returns how many sessions expired.
  virtual absl::StatusOr<int64_t> ExpireSessionsOnce() = 0;
  // Forgets the recorded replies older than request_reply_ttl and the oldest beyond
  // max_request_replies. Returns how many were forgotten.
  virtual absl::StatusOr<int64_t> ExpireRequestRepliesOnce() = 0;

  // ---- for the RPC layer's checks (meta/auth.h); not RPCs ----
  // The token whose secret is `secret`, or nullopt (also for a volume since deleted).
  virtual absl::StatusOr<std::optional<TokenGrant>> FindToken(std::string_view secret) = 0;
  // Whether inode `ino` of volume `volume_id` lies in the subtree rooted at directory
  // `root_ino`: the root itself, a directory below it, a non-directory with at least one name
  // below it, or a nameless inode (unlinked while open) kept by a session of token `token_id`.
  // True for an inode that does not exist (the call then answers ENOENT) and always when
  // root_ino is the volume's root.
  virtual absl::StatusOr<bool> InSubtree(uint64_t volume_id, uint64_t ino, uint64_t root_ino,
                                         uint64_t token_id) = 0;
  // OK when session `session_id` exists, `key` is its key and it was opened by token
  // `token_id` (0 = by the admin or in-process); NotFound when the session does not exist
  // (expired or unmounted: the mount registers again); PermissionDenied otherwise.
  virtual absl::Status CheckSessionKey(uint64_t session_id, std::string_view key,
                                       uint64_t token_id) = 0;
  // The service's clock (MetaServiceOptions::now_ns), in ns since the Unix epoch.
  virtual int64_t NowNs() const = 0;
};

// OK when `grant` is neither revoked nor expired at `now_ns`; Unauthenticated otherwise. The
// one check of a looked-up secret (bearer tokens, AuthorizeBlockAccess).
absl::Status CheckTokenLive(const TokenGrant& grant, int64_t now_ns);

// Volume token secrets and session keys (meta/tokens.cc).
inline constexpr std::string_view kVolumeTokenPrefix = "nighfs-token-";
inline constexpr size_t kSessionKeyBytes = 16;

}  // namespace nighfs::meta

#endif  // NIGHFS_META_META_SERVICE_H_
