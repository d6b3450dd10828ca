// The one interface between the metadata server's logic and its SQL database. SQLite implements
// it today (sqlite_engine.cc); a PostgreSQL engine can implement it later without touching the
// service. The service writes portable SQL: `?` placeholders (an engine whose driver wants $1..$n
// rewrites them), ON CONFLICT for upserts, COALESCE, LIMIT; the few types that differ between
// databases come from Dialect.
#ifndef NIGHFS_META_SQL_H_
#define NIGHFS_META_SQL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace nighfs::meta::sql {

// Column types and key syntax that cannot be written portably.
struct Dialect {
  std::string_view name;                 // "sqlite"
  std::string_view auto_id_primary_key;  // an integer primary key that never reuses values
  std::string_view blob_type;            // arbitrary bytes
};

// A prepared statement borrowed from its Connection. Parameters are `?` placeholders numbered
// from 1; result columns are numbered from 0. Destroying the statement returns it to the
// connection's cache, reset. Not thread-safe; must not outlive its Connection.
class Statement {
 public:
  virtual ~Statement() = default;

  // A bind failure (an index out of range, a value too big) is remembered and returned by the
  // next Step(), so call sites can bind without checking each call.
  virtual Statement& BindInt64(int index, int64_t value) = 0;
  virtual Statement& BindText(int index, std::string_view value) = 0;
  virtual Statement& BindBlob(int index, std::string_view value) = 0;
  virtual Statement& BindNull(int index) = 0;

  // Advances to the next result row: true if there is one, false when the statement is done.
  // A busy database (another process holds the lock past the busy timeout) comes back as
  // Unavailable; anything else, constraint violations included, as Internal with the engine's
  // message.
  virtual absl::StatusOr<bool> Step() = 0;

  // Runs the statement to completion, ignoring any rows.
  absl::Status Run() {
    while (true) {
      absl::StatusOr<bool> row = Step();
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
    }
  }

  // Column getters; valid while the last Step() returned true. A NULL reads as 0 / "".
  virtual bool IsNull(int column) const = 0;
  virtual int64_t ColumnInt64(int column) const = 0;
  virtual std::string ColumnText(int column) const = 0;
  virtual std::string ColumnBlob(int column) const = 0;
};

// Transactions are not nested. Destroying a transaction that was not committed rolls it back.
// Must not outlive its Connection.
class Transaction {
 public:
  virtual ~Transaction() = default;
  virtual absl::Status Commit() = 0;
};

enum class TxMode {
  kRead,   // a consistent snapshot for reads
  kWrite,  // takes the database's write lock up front (no lock upgrade, no deadlock)
};

// One database connection. Not thread-safe: one thread at a time (the caller serializes).
class Connection {
 public:
  virtual ~Connection() = default;

  // A statement for `sql` (one statement, `?` placeholders), from the cache when possible.
  virtual absl::StatusOr<std::unique_ptr<Statement>> Prepare(std::string_view sql) = 0;
  // Runs one or more ';'-separated statements without parameters (DDL).
  virtual absl::Status ExecuteScript(std::string_view sql) = 0;
  virtual absl::StatusOr<std::unique_ptr<Transaction>> Begin(TxMode mode) = 0;
  // True between Begin() and the end of its transaction. False inside one means the engine
  // has rolled it back by itself (SQLite does on some I/O errors and a full disk).
  virtual bool InTransaction() const = 0;

  // The key of the last row inserted with an auto_id_primary_key, and the number of rows the
  // last INSERT/UPDATE/DELETE changed, on this connection.
  virtual int64_t LastInsertId() const = 0;
  virtual int64_t Changes() const = 0;

  virtual const Dialect& dialect() const = 0;
};

struct SqliteOptions {
  // How long a statement waits for another process's lock before failing with Unavailable.
  int busy_timeout_ms = 5000;
  // Refuse writes on this connection (the service's reader connections).
  bool query_only = false;
  // synchronous=FULL: every commit syncs the WAL before it returns. False: NORMAL, where the
  // caller makes commits durable itself (meta/wal_sync.h); a crash of the machine may lose the
  // last commits but never corrupts the database.
  bool sync_every_commit = true;
};

// Opens (creating if missing) the SQLite database at `path` in WAL mode with synchronous=FULL
// (a commit is on disk before it is acknowledged; see sync_every_commit) and foreign keys
// enforced.
absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path,
                                                       const SqliteOptions& options = {});

}  // namespace nighfs::meta::sql

#endif  // NIGHFS_META_SQL_H_
