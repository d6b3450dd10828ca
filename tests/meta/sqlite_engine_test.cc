// meta/sql.h on SQLite: statements, transactions, error mapping.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "meta/sql.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta::sql {
namespace {

using ::nighfs::testing::TempDir;

class SqliteEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Connection>> c = OpenSqlite(dir_.path() + "/t.db");
    ASSERT_OK(c);
    db_ = std::move(*c);
    ASSERT_OK(db_->ExecuteScript(
        "CREATE TABLE t (id " + std::string(db_->dialect().auto_id_primary_key) +
        ", k TEXT NOT NULL UNIQUE, v " + std::string(db_->dialect().blob_type) + ");"
        "CREATE TABLE child (id INTEGER NOT NULL REFERENCES t(id));"));
  }

  int64_t Count() {
    auto st = db_->Prepare("SELECT COUNT(*) FROM t");
    EXPECT_OK(st);
    auto row = (*st)->Step();
    EXPECT_OK(row);
    return (*st)->ColumnInt64(0);
  }

  TempDir dir_;
  std::unique_ptr<Connection> db_;
};

TEST_F(SqliteEngineTest, ConfiguredForDurability) {
  auto st = db_->Prepare("PRAGMA journal_mode");
  ASSERT_OK(st);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->ColumnText(0), "wal");
  st = db_->Prepare("PRAGMA synchronous");
  ASSERT_OK(st);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->ColumnInt64(0), 2);  // FULL
  st = db_->Prepare("PRAGMA foreign_keys");
  ASSERT_OK(st);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->ColumnInt64(0), 1);
}

TEST_F(SqliteEngineTest, InsertSelectAndTypes) {
  {
    auto st = db_->Prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    ASSERT_OK(st);
    (*st)->BindText(1, "a").BindBlob(2, std::string("\0\xff", 2));
    ASSERT_OK((*st)->Run());
  }
  EXPECT_EQ(db_->LastInsertId(), 1);
  EXPECT_EQ(db_->Changes(), 1);
  {
    auto st = db_->Prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    ASSERT_OK(st);
    (*st)->BindText(1, "empty").BindBlob(2, "");
    ASSERT_OK((*st)->Run());
    st = db_->Prepare("INSERT INTO t (k, v) VALUES (?, ?)");
    ASSERT_OK(st);
    (*st)->BindText(1, "null").BindNull(2);
    ASSERT_OK((*st)->Run());
  }
  auto st = db_->Prepare("SELECT k, v, v IS NULL FROM t ORDER BY id");
  ASSERT_OK(st);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->ColumnText(0), "a");
  EXPECT_EQ((*st)->ColumnBlob(1), std::string("\0\xff", 2));
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_FALSE((*st)->IsNull(1));  // an empty blob is not NULL
  EXPECT_EQ((*st)->ColumnInt64(2), 0);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_TRUE((*st)->IsNull(1));
  EXPECT_FALSE(*(*st)->Step());
}

TEST_F(SqliteEngineTest, CachedStatementsCanBeUsedNested) {
  for (const char* k : {"a", "b", "c"}) {
    auto st = db_->Prepare("INSERT INTO t (k) VALUES (?)");
    ASSERT_OK(st);
    (*st)->BindText(1, k);
    ASSERT_OK((*st)->Run());
  }
  int pairs = 0;
  auto outer = db_->Prepare("SELECT k FROM t ORDER BY k");
  ASSERT_OK(outer);
  while (*(*outer)->Step()) {
    auto inner = db_->Prepare("SELECT k FROM t ORDER BY k");
    ASSERT_OK(inner);
    while (*(*inner)->Step()) pairs++;
  }
  EXPECT_EQ(pairs, 9);
  // A statement returned to the cache comes back reset, without old bindings.
  auto again = db_->Prepare("SELECT COUNT(*) FROM t WHERE k = ?");
  ASSERT_OK(again);
  (*again)->BindText(1, "a");
  ASSERT_TRUE(*(*again)->Step());
  EXPECT_EQ((*again)->ColumnInt64(0), 1);
  again->reset();
  again = db_->Prepare("SELECT COUNT(*) FROM t WHERE k = ?");
  ASSERT_OK(again);
  ASSERT_TRUE(*(*again)->Step());
  EXPECT_EQ((*again)->ColumnInt64(0), 0);  // NULL matches nothing
}

TEST_F(SqliteEngineTest, ErrorsMapToCodes) {
  EXPECT_THAT(db_->Prepare("SELEKT nonsense"), StatusIs(absl::StatusCode::kInternal));
  auto st = db_->Prepare("INSERT INTO t (k) VALUES (?)");
  ASSERT_OK(st);
  (*st)->BindText(1, "dup");
  ASSERT_OK((*st)->Run());
  st = db_->Prepare("INSERT INTO t (k) VALUES (?)");
  ASSERT_OK(st);
  (*st)->BindText(1, "dup");
  absl::Status s = (*st)->Run();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("UNIQUE"));
  st = db_->Prepare("INSERT INTO child (id) VALUES (?)");
  ASSERT_OK(st);
  (*st)->BindInt64(1, 999);
  s = (*st)->Run();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("FOREIGN KEY"));
  st = db_->Prepare("INSERT INTO t (k) VALUES (?)");
  ASSERT_OK(st);
  (*st)->BindText(5, "out of range");
  EXPECT_THAT((*st)->Step(), StatusIs(absl::StatusCode::kInternal));
}

TEST_F(SqliteEngineTest, TransactionsCommitOrRollBack) {
  {
    auto tx = db_->Begin(TxMode::kWrite);
    ASSERT_OK(tx);
    auto st = db_->Prepare("INSERT INTO t (k) VALUES ('gone')");
    ASSERT_OK(st);
    ASSERT_OK((*st)->Run());
    EXPECT_EQ(Count(), 1);
  }  // no commit
  EXPECT_EQ(Count(), 0);
  {
    auto tx = db_->Begin(TxMode::kWrite);
    ASSERT_OK(tx);
    auto st = db_->Prepare("INSERT INTO t (k) VALUES ('kept')");
    ASSERT_OK(st);
    ASSERT_OK((*st)->Run());
    ASSERT_OK((*tx)->Commit());
  }
  EXPECT_EQ(Count(), 1);
  // Visible to a second connection (another reader).
  absl::StatusOr<std::unique_ptr<Connection>> other =
      OpenSqlite(dir_.path() + "/t.db", SqliteOptions{.query_only = true});
  ASSERT_OK(other);
  auto st = (*other)->Prepare("SELECT k FROM t");
  ASSERT_OK(st);
  ASSERT_TRUE(*(*st)->Step());
  EXPECT_EQ((*st)->ColumnText(0), "kept");
  st->reset();
  // Query-only connections refuse writes.
  st = (*other)->Prepare("DELETE FROM t");
  ASSERT_OK(st);
  EXPECT_FALSE((*st)->Run().ok());
}

TEST(SqliteOpenTest, UnopenablePath) {
  absl::StatusOr<std::unique_ptr<Connection>> c = OpenSqlite("/nonexistent-dir/x/y.db");
  EXPECT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("/nonexistent-dir/x/y.db"));
}

}  // namespace
}  // namespace nighfs::meta::sql
