// The metadata server's entry point: MetaService::Open, which locks, creates and migrates the
// database and builds MetaServiceImpl, and the background thread's loop (session expiry,
// forgetting old recorded replies, garbage collection). The calls themselves live in
// volumes.cc, namespace_ops.cc and data_ops.cc; their shared helpers in tx.cc.
#include "meta/meta_service.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>


#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "meta/meta_service_impl.h"
#include "meta/request_dedup.h"
#include "meta/schema.h"
#include "meta/sql.h"

namespace nighfs::meta {
namespace internal {

absl::StatusOr<int64_t> MetaServiceImpl::ExpireRequestRepliesOnce() {
  return Write([&](Tx& tx) -> absl::StatusOr<int64_t> {
    return ExpireRecordedReplies(
        tx.db, tx.now - absl::ToInt64Nanoseconds(options_.request_reply_ttl),
        options_.max_request_replies);
  });
}

void MetaServiceImpl::BackgroundLoop() {
  while (true) {
    {
      absl::MutexLock lock(&bg_mu_);
      bg_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.gc_interval);
      if (stop_) return;
    }
    if (absl::StatusOr<int64_t> n = ExpireSessionsOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "session expiry failed: " << n.status();
    }
    if (absl::StatusOr<int64_t> n = ExpireRequestRepliesOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "expiring recorded replies failed: " << n.status();
    }
    if (absl::StatusOr<int64_t> n = RunGcOnce(); !n.ok()) {
      NIGHFS_LOG(ERROR) << "garbage collection failed: " << n.status();
    }
  }
}

}  // namespace internal

using internal::MetaServiceImpl;
using sql::Connection;

absl::StatusOr<std::unique_ptr<MetaService>> MetaService::Open(const MetaServiceOptions& options) {
  if (options.db_path.empty()) return absl::InvalidArgumentError("no database path");
  MetaServiceOptions opts = options;
  if (!opts.now_ns) opts.now_ns = [] { return absl::GetCurrentTimeNanos(); };
  if (opts.gc_interval <= absl::ZeroDuration()) opts.gc_interval = absl::Seconds(5);
  if (!opts.open_store) {
    absl::StatusOr<blockstore::StoreCredentials> creds =
        blockstore::LoadCredentials(opts.credentials_file);
    if (!creds.ok()) {
      return absl::Status(creds.status().code(),
                          absl::StrCat("credentials: ", creds.status().message()));
    }
    opts.open_store = [creds = *std::move(creds)](const std::string& url) {
      return blockstore::OpenBlockStore(url, creds);
    };
  }

  // SQLite's own locks let two processes share a file, but two servers would each believe
  // they own the sessions and the GC queue.
  const std::string lock_path = opts.db_path + ".lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", lock_path, ": ", std::strerror(errno)));
  }
  (void)::fchmod(lock_fd, 0600);  // also one an older version created with the umask's mode
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", opts.db_path, " is in use by another nighfs-meta"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot lock ", lock_path, ": ", std::strerror(err)));
  }
  auto fail = [lock_fd](absl::Status s) {
    ::close(lock_fd);
    return s;
  };

  // The database holds every file name: private whatever the umask, also when an older version
  // created it with the umask's mode. SQLite gives its WAL and shared-memory files the mode of
  // the database file; ones left by an older version are fixed too.
  {
    int fd = ::open(opts.db_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::fchmod(fd, 0600) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot create ", opts.db_path, " with mode 0600: ", std::strerror(err))));
    }
    ::close(fd);
  }
  const bool batched = opts.namespace_sync_interval > absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<Connection>> writer =
      sql::OpenSqlite(opts.db_path, {.sync_every_commit = !batched});
  if (!writer.ok()) return fail(writer.status());
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string path = opts.db_path + suffix;
    if (::chmod(path.c_str(), 0600) != 0 && errno != ENOENT) {
      return fail(absl::FailedPreconditionError(
          absl::StrCat("cannot make ", path, " private: ", std::strerror(errno))));
    }
  }
  if (absl::Status s = MigrateSchema(writer->get()); !s.ok()) {
    return fail(absl::Status(s.code(), absl::StrCat(opts.db_path, ": ", s.message())));
  }
  absl::StatusOr<std::string> secret_key = internal::LoadOrCreateSecretKey(writer->get());
  if (!secret_key.ok()) return fail(secret_key.status());
  std::vector<std::unique_ptr<Connection>> readers;
  for (int i = 0; i < opts.read_connections; ++i) {
    sql::SqliteOptions ro;
    ro.query_only = true;
    absl::StatusOr<std::unique_ptr<Connection>> r = sql::OpenSqlite(opts.db_path, ro);
    if (!r.ok()) return fail(r.status());
    readers.push_back(*std::move(r));
  }
  std::unique_ptr<internal::WalSync> wal_sync;
  if (batched) {
    absl::StatusOr<std::unique_ptr<internal::WalSync>> w = internal::WalSync::Open(
        opts.db_path + "-wal", opts.namespace_sync_interval, opts.test_on_wal_sync);
    if (!w.ok()) return fail(w.status());
    wal_sync = *std::move(w);
    // The schema migration and key above committed without a sync.
    wal_sync->Committed();
    if (absl::Status s = wal_sync->Sync(); !s.ok()) return fail(s);
  }
  return std::unique_ptr<MetaService>(
      new MetaServiceImpl(std::move(opts), *std::move(writer), std::move(readers), lock_fd,
                          *std::move(secret_key), std::move(wal_sync)));
}

}  // namespace nighfs::meta
