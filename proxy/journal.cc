#include "proxy/journal.h"

#include <sqlite3.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "proxy/av.h"

namespace nighfs::proxy {

namespace {

absl::Status SqliteError(sqlite3* db, std::string_view what) {
  return absl::InternalError(absl::StrCat("proxy journal: ", AV(what), ": ", sqlite3_errmsg(db)));
}

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool ok() const { return stmt_ != nullptr; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  // Runs a statement that returns no rows.
  absl::Status Run(std::string_view what) {
    if (stmt_ == nullptr) return SqliteError(db_, what);
    int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return SqliteError(db_, what);
    return absl::OkStatus();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path, bool sync) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the proxy journal ", path, ": ", message));
  }
  std::unique_ptr<Journal> journal(new Journal(db));
  absl::MutexLock lock(&journal->mu_);
  sqlite3_busy_timeout(db, 5000);
  for (const std::string& sql : {
           std::string("PRAGMA journal_mode=WAL"),
           absl::StrCat("PRAGMA synchronous=", sync ? "FULL" : "NORMAL"),
           std::string("CREATE TABLE IF NOT EXISTS blocks ("
                       " volume_id INTEGER NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL,"
                       " crc32c INTEGER NOT NULL, dirty INTEGER NOT NULL,"
                       " acked_ns INTEGER NOT NULL, last_access_ns INTEGER NOT NULL,"
                       " PRIMARY KEY (volume_id, key))"),
           std::string("CREATE TABLE IF NOT EXISTS volumes ("
                       " id INTEGER PRIMARY KEY, name TEXT NOT NULL, store_url TEXT NOT NULL)"),
       }) {
    if (absl::Status s = journal->Exec(sql); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot use the proxy journal ", path, ": ", s.message()));
    }
  }
  return journal;
}

Journal::~Journal() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

absl::Status Journal::Exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = absl::InternalError(
        absl::StrCat("proxy journal: ", sql, ": ", error != nullptr ? error : "?"));
    sqlite3_free(error);
    return s;
  }
  return absl::OkStatus();
}

absl::Status Journal::Insert(const JournalRow& row) {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_,
            "INSERT OR REPLACE INTO blocks (volume_id, key, size, crc32c, dirty, acked_ns,"
            " last_access_ns) VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!stmt.ok()) return SqliteError(db_, "insert");
  stmt.Bind(1, static_cast<int64_t>(row.volume_id));
  stmt.Bind(2, row.key);
  stmt.Bind(3, static_cast<int64_t>(row.size));
  stmt.Bind(4, static_cast<int64_t>(row.crc32c));
  stmt.Bind(5, row.dirty ? 1 : 0);
  stmt.Bind(6, row.acked_ns);
  stmt.Bind(7, row.last_access_ns);
  return stmt.Run("insert");
}

absl::Status Journal::SetClean(uint64_t volume_id, const std::string& key) {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_, "UPDATE blocks SET dirty = 0 WHERE volume_id = ? AND key = ?");
  if (!stmt.ok()) return SqliteError(db_, "set clean");
  stmt.Bind(1, static_cast<int64_t>(volume_id));
  stmt.Bind(2, key);
  return stmt.Run("set clean");
}

absl::Status Journal::Remove(uint64_t volume_id, const std::string& key) {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_, "DELETE FROM blocks WHERE volume_id = ? AND key = ?");
  if (!stmt.ok()) return SqliteError(db_, "remove");
  stmt.Bind(1, static_cast<int64_t>(volume_id));
  stmt.Bind(2, key);
  return stmt.Run("remove");
}

absl::Status Journal::Touch(uint64_t volume_id, const std::string& key, int64_t last_access_ns) {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_, "UPDATE blocks SET last_access_ns = ? WHERE volume_id = ? AND key = ?");
  if (!stmt.ok()) return SqliteError(db_, "touch");
  stmt.Bind(1, last_access_ns);
  stmt.Bind(2, static_cast<int64_t>(volume_id));
  stmt.Bind(3, key);
  return stmt.Run("touch");
}

absl::StatusOr<std::vector<JournalRow>> Journal::LoadBlocks() {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_,
            "SELECT volume_id, key, size, crc32c, dirty, acked_ns, last_access_ns FROM blocks");
  if (!stmt.ok()) return SqliteError(db_, "load");
  std::vector<JournalRow> rows;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    JournalRow row;
    row.volume_id = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 0));
    const unsigned char* key = sqlite3_column_text(stmt.get(), 1);
    row.key = key != nullptr ? reinterpret_cast<const char*>(key) : "";
    row.size = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 2));
    row.crc32c = static_cast<uint32_t>(sqlite3_column_int64(stmt.get(), 3));
    row.dirty = sqlite3_column_int64(stmt.get(), 4) != 0;
    row.acked_ns = sqlite3_column_int64(stmt.get(), 5);
    row.last_access_ns = sqlite3_column_int64(stmt.get(), 6);
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "load");
  return rows;
}

absl::Status Journal::PutVolume(const VolumeRow& volume) {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_, "INSERT OR REPLACE INTO volumes (id, name, store_url) VALUES (?, ?, ?)");
  if (!stmt.ok()) return SqliteError(db_, "put volume");
  stmt.Bind(1, static_cast<int64_t>(volume.id));
  stmt.Bind(2, volume.name);
  stmt.Bind(3, volume.store_url);
  return stmt.Run("put volume");
}

absl::StatusOr<std::vector<VolumeRow>> Journal::LoadVolumes() {
  absl::MutexLock lock(&mu_);
  Stmt stmt(db_, "SELECT id, name, store_url FROM volumes");
  if (!stmt.ok()) return SqliteError(db_, "load volumes");
  std::vector<VolumeRow> rows;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    VolumeRow row;
    row.id = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 0));
    const unsigned char* name = sqlite3_column_text(stmt.get(), 1);
    const unsigned char* url = sqlite3_column_text(stmt.get(), 2);
    row.name = name != nullptr ? reinterpret_cast<const char*>(name) : "";
    row.store_url = url != nullptr ? reinterpret_cast<const char*>(url) : "";
    rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return SqliteError(db_, "load volumes");
  return rows;
}

absl::Status Journal::Check() {
  absl::MutexLock lock(&mu_);
  // A write, so a read-only or full database shows up (an empty transaction touches nothing).
  return Exec("BEGIN IMMEDIATE; ROLLBACK");
}

}  // namespace nighfs::proxy
