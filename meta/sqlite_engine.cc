// meta/sql.h on SQLite.
#include <sqlite3.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "meta/sql.h"

namespace nighfs::meta::sql {
namespace {

constexpr Dialect kSqliteDialect = {
    .name = "sqlite",
    // AUTOINCREMENT (unlike a plain rowid) never hands out a value again after its row is
    // deleted: readdir cookies and session ids must not be reused.
    .auto_id_primary_key = "INTEGER PRIMARY KEY AUTOINCREMENT",
    .blob_type = "BLOB",
};

absl::Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  std::string msg = absl::StrCat("sqlite: ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  if (!what.empty()) absl::StrAppend(&msg, " (", std::string(what), ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      // Nothing was done; trying again later can succeed.
      return absl::UnavailableError(msg);
    default:
      // Constraint violations included: callers check what they expect before writing, so one
      // reaching the database is a bug, never the client's EEXIST or ENOENT.
      return absl::InternalError(msg);
  }
}

class SqliteConnection;

class SqliteStatement final : public Statement {
 public:
  SqliteStatement(SqliteConnection* conn, std::string sql, sqlite3_stmt* stmt)
      : conn_(conn), sql_(std::move(sql)), stmt_(stmt) {}
  ~SqliteStatement() override;

  Statement& BindInt64(int index, int64_t value) override {
    Check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& BindText(int index, std::string_view value) override {
    Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
    return *this;
  }
  Statement& BindBlob(int index, std::string_view value) override {
    // A zero-length blob must still be a blob, not NULL: data() of an empty view may be null.
    static const char kEmpty = 0;
    Check(sqlite3_bind_blob64(stmt_, index, value.empty() ? &kEmpty : value.data(),
                              value.size(), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& BindNull(int index) override {
    Check(sqlite3_bind_null(stmt_, index));
    return *this;
  }

  absl::StatusOr<bool> Step() override {
    if (!bind_status_.ok()) return bind_status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    absl::Status s = SqliteStatus(sqlite3_db_handle(stmt_), rc, sql_);
    sqlite3_reset(stmt_);
    return s;
  }

  bool IsNull(int column) const override {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  int64_t ColumnInt64(int column) const override { return sqlite3_column_int64(stmt_, column); }
  std::string ColumnText(int column) const override {
    const unsigned char* p = sqlite3_column_text(stmt_, column);
    int n = sqlite3_column_bytes(stmt_, column);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
  }
  std::string ColumnBlob(int column) const override {
    const void* p = sqlite3_column_blob(stmt_, column);
    int n = sqlite3_column_bytes(stmt_, column);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_status_.ok()) {
      bind_status_ = SqliteStatus(sqlite3_db_handle(stmt_), rc, absl::StrCat("bind: ", sql_));
    }
  }

  SqliteConnection* conn_;
  std::string sql_;
  sqlite3_stmt* stmt_;
  absl::Status bind_status_;
};

// Runs one of a connection's prepared BEGIN/COMMIT statements (prepared once: sqlite3_exec
// parsed them again for every transaction, a few per cent of the server's time per call).
absl::Status StepControl(sqlite3* db, sqlite3_stmt* stmt, const char* what) {
  int rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  if (rc != SQLITE_DONE) return SqliteStatus(db, rc, what);
  return absl::OkStatus();
}

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(sqlite3* db, sqlite3_stmt* commit) : db_(db), commit_(commit) {}
  ~SqliteTransaction() override {
    // A failed COMMIT may leave the transaction open (SQLITE_BUSY); roll back whatever is left.
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  absl::Status Commit() override { return StepControl(db_, commit_, "COMMIT"); }

 private:
  sqlite3* db_;
  sqlite3_stmt* commit_;
};

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [sql, stmts] : free_) {
      for (sqlite3_stmt* s : stmts) sqlite3_finalize(s);
    }
    for (sqlite3_stmt* s : control_) sqlite3_finalize(s);  // finalize(nullptr) is a no-op
    // Statements still borrowed are a contract violation; close_v2 defers the close until they
    // are finalized rather than leaving a dangling handle.
    sqlite3_close_v2(db_);
  }

  absl::StatusOr<std::unique_ptr<Statement>> Prepare(std::string_view sql) override {
    std::string key(sql);
    auto it = free_.find(key);
    sqlite3_stmt* stmt = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      stmt = it->second.back();
      it->second.pop_back();
    } else {
      int rc = sqlite3_prepare_v3(db_, key.data(), static_cast<int>(key.size()),
                                  SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return SqliteStatus(db_, rc, key);
      }
      if (stmt == nullptr) return absl::InvalidArgumentError("empty SQL statement");
    }
    return std::make_unique<SqliteStatement>(this, std::move(key), stmt);
  }

  absl::Status ExecuteScript(std::string_view sql) override {
    std::string s(sql);
    char* err = nullptr;
    int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      absl::Status st = SqliteStatus(nullptr, rc, "");
      return absl::Status(st.code(), absl::StrCat("sqlite: ", msg));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Transaction>> Begin(TxMode mode) override {
    const bool write = mode == TxMode::kWrite;
    const char* sql = write ? "BEGIN IMMEDIATE" : "BEGIN";
    absl::StatusOr<sqlite3_stmt*> begin = Control(write ? kBeginWrite : kBeginRead, sql);
    if (!begin.ok()) return begin.status();
    absl::StatusOr<sqlite3_stmt*> commit = Control(kCommit, "COMMIT");
    if (!commit.ok()) return commit.status();
    if (absl::Status s = StepControl(db_, *begin, sql); !s.ok()) return s;
    return std::make_unique<SqliteTransaction>(db_, *commit);
  }

  bool InTransaction() const override { return sqlite3_get_autocommit(db_) == 0; }
  int64_t LastInsertId() const override { return sqlite3_last_insert_rowid(db_); }
  int64_t Changes() const override { return sqlite3_changes64(db_); }
  const Dialect& dialect() const override { return kSqliteDialect; }

  // The prepared statement `sql` of control_[i], prepared on first use.
  absl::StatusOr<sqlite3_stmt*> Control(int i, const char* sql) {
    if (control_[i] == nullptr) {
      int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &control_[i], nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(control_[i]);
        control_[i] = nullptr;
        return SqliteStatus(db_, rc, sql);
      }
    }
    return control_[i];
  }

  void Return(std::string sql, sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    free_[std::move(sql)].push_back(stmt);
  }

  // Runs a PRAGMA and returns its first result column ("" if no row).
  absl::StatusOr<std::string> Pragma(const std::string& pragma) {
    absl::StatusOr<std::unique_ptr<Statement>> st = Prepare("PRAGMA " + pragma);
    if (!st.ok()) return st.status();
    absl::StatusOr<bool> row = (*st)->Step();
    if (!row.ok()) return row.status();
    std::string value = *row ? (*st)->ColumnText(0) : "";
    while (row.ok() && *row) row = (*st)->Step();
    if (!row.ok()) return row.status();
    return value;
  }

 private:
  sqlite3* db_;
  // Prepared statements not currently borrowed, by SQL text. Several copies of one statement can
  // exist when a caller holds one while preparing the same SQL again (nested loops).
  absl::flat_hash_map<std::string, std::vector<sqlite3_stmt*>> free_;
  // BEGIN, BEGIN IMMEDIATE and COMMIT, prepared once (Control).
  enum { kBeginRead, kBeginWrite, kCommit, kControls };
  sqlite3_stmt* control_[kControls] = {};
};

SqliteStatement::~SqliteStatement() { conn_->Return(std::move(sql_), stmt_); }

}  // namespace

absl::StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& path,
                                                       const SqliteOptions& options) {
  sqlite3* db = nullptr;
  // NOMUTEX: each connection is used by one thread at a time, serialized by its owner.
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return absl::InternalError(absl::StrCat("sqlite: cannot open ", path, ": ", msg));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  auto conn = std::make_unique<SqliteConnection>(db);

  // The first statement reads the file header: a file that is not a database fails here.
  absl::StatusOr<std::string> mode = conn->Pragma("journal_mode=WAL");
  if (!mode.ok()) {
    return absl::Status(mode.status().code(),
                        absl::StrCat("cannot open ", path, ": ", mode.status().message()));
  }
  if (*mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot put ", path, " in WAL mode (journal_mode is '", *mode, "')"));
  }
  // NORMAL in WAL mode may lose the last commits on power loss; FULL syncs the WAL at every
  // commit, so an acknowledged metadata change survives.
  for (const char* pragma :
       {options.sync_every_commit ? "synchronous=FULL" : "synchronous=NORMAL", "foreign_keys=ON"}) {
    absl::StatusOr<std::string> r = conn->Pragma(pragma);
    if (!r.ok()) return r.status();
  }
  if (options.query_only) {
    absl::StatusOr<std::string> r = conn->Pragma("query_only=ON");
    if (!r.ok()) return r.status();
  }
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace nighfs::meta::sql
