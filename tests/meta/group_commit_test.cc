// meta/group_commit.h on a real SQLite database: concurrent writers share commits, each keeps or
// undoes only its own work, and runs under its own caller's principal.
#include "meta/group_commit.h"

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "meta/principal.h"
#include "meta/sql.h"
#include "tests/testing/process.h"
#include "tests/testing/test_status.h"

namespace nighfs::meta::internal {
namespace {

using ::nighfs::testing::TempDir;

class GroupCommitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<sql::Connection>> c = sql::OpenSqlite(Path());
    ASSERT_OK(c);
    ASSERT_OK((*c)->ExecuteScript("CREATE TABLE t (k INTEGER PRIMARY KEY);"));
    commit_ = std::make_unique<GroupCommit>(*std::move(c));
  }

  std::string Path() const { return dir_.path() + "/t.db"; }

  static bool Insert(sql::Connection* db, int64_t k) {
    absl::StatusOr<std::unique_ptr<sql::Statement>> st =
        db->Prepare("INSERT INTO t (k) VALUES (?)");
    if (!st.ok()) return false;
    (*st)->BindInt64(1, k);
    return (*st)->Run().ok();
  }

  // The keys committed, read through a connection of its own.
  std::set<int64_t> Committed() {
    std::set<int64_t> keys;
    absl::StatusOr<std::unique_ptr<sql::Connection>> c = sql::OpenSqlite(Path());
    EXPECT_OK(c);
    if (!c.ok()) return keys;
    absl::StatusOr<std::unique_ptr<sql::Statement>> st = (*c)->Prepare("SELECT k FROM t");
    EXPECT_OK(st);
    while (st.ok()) {
      absl::StatusOr<bool> row = (*st)->Step();
      EXPECT_OK(row);
      if (!row.ok() || !*row) break;
      keys.insert((*st)->ColumnInt64(0));
    }
    return keys;
  }

  // Starts writer 0, which holds its batch open inside its operation until `waiting` more
  // writers have queued behind it; then `more(i)` for i in 1..waiting, each on its own thread
  // under a principal with token_id i. Returns once all are done, with their statuses.
  std::vector<absl::Status> RunQueuedBehindOne(int waiting,
                                               std::function<bool(sql::Connection*, int)> op) {
    std::vector<absl::Status> statuses(waiting + 1);
    absl::Notification leading;
    std::vector<std::thread> threads;
    threads.emplace_back([&] {
      statuses[0] = commit_->Run([&](sql::Connection* db) {
        leading.Notify();
        // Wait, by the queue's own count, until every other writer is queued (no timing).
        while (commit_->queued() < static_cast<size_t>(waiting) + 1) {
          absl::SleepFor(absl::Milliseconds(1));
        }
        return op(db, 0);
      });
    });
    leading.WaitForNotification();
    for (int i = 1; i <= waiting; ++i) {
      threads.emplace_back([&, i] {
        Principal p;
        p.token_id = static_cast<uint64_t>(i);
        ScopedPrincipal as(p);
        statuses[i] = commit_->Run([&, i](sql::Connection* db) { return op(db, i); });
      });
    }
    for (std::thread& t : threads) t.join();
    return statuses;
  }

  TempDir dir_;
  std::unique_ptr<GroupCommit> commit_;
};

TEST_F(GroupCommitTest, ConcurrentWritersShareOneCommit) {
  constexpr int kWaiting = 7;
  std::vector<absl::Status> statuses = RunQueuedBehindOne(kWaiting, [](sql::Connection* db, int i) {
    // Each runs under the principal of the caller that queued it, whichever thread runs it.
    return CurrentPrincipal().token_id == static_cast<uint64_t>(i) && Insert(db, i);
  });
  for (const absl::Status& s : statuses) EXPECT_OK(s);
  // Eight transactions: the first alone, the seven that queued meanwhile in one more commit
  // (one WAL sync each).
  EXPECT_EQ(commit_->commits(), 2u);
  std::set<int64_t> want;
  for (int i = 0; i <= kWaiting; ++i) want.insert(i);
  EXPECT_EQ(Committed(), want);
}

TEST_F(GroupCommitTest, AFailedWriteUndoesOnlyItsOwnWorkInABatch) {
  // Writers 2 and 5 write, then fail: their rows must vanish, their batch mates' stay.
  std::vector<absl::Status> statuses = RunQueuedBehindOne(6, [](sql::Connection* db, int i) {
    const bool inserted = Insert(db, i);
    return inserted && i != 2 && i != 5;
  });
  for (const absl::Status& s : statuses) EXPECT_OK(s);  // a write's own failure is its own
  EXPECT_EQ(commit_->commits(), 2u);
  EXPECT_EQ(Committed(), (std::set<int64_t>{0, 1, 3, 4, 6}));
}

TEST_F(GroupCommitTest, AWriteThatKeepsNothingCommitsNothing) {
  EXPECT_OK(commit_->Run([](sql::Connection* db) {
    Insert(db, 1);
    return false;
  }));
  EXPECT_EQ(commit_->commits(), 0u);
  EXPECT_TRUE(Committed().empty());
  EXPECT_OK(commit_->Run([](sql::Connection* db) { return Insert(db, 2); }));
  EXPECT_EQ(commit_->commits(), 1u);
  EXPECT_EQ(Committed(), (std::set<int64_t>{2}));
}

TEST_F(GroupCommitTest, ACommitFailureReachesEveryWriterThatKeptWork) {
  // A deferred foreign key violation fails the COMMIT itself, not a statement.
  ASSERT_OK(commit_->Run([](sql::Connection* db) {
    return db->ExecuteScript("CREATE TABLE c (p INTEGER REFERENCES t(k) "
                             "DEFERRABLE INITIALLY DEFERRED);").ok();
  }));
  const uint64_t before = commit_->commits();
  std::vector<absl::Status> statuses = RunQueuedBehindOne(3, [](sql::Connection* db, int i) {
    if (i == 0) return Insert(db, 100);
    if (i == 3) {
      // Kept, but its orphan row makes the batch's COMMIT fail.
      return db->ExecuteScript("INSERT INTO c (p) VALUES (12345);").ok();
    }
    return Insert(db, i);
  });
  EXPECT_OK(statuses[0]);  // committed alone, before the others queued
  for (int i = 1; i <= 3; ++i) EXPECT_FALSE(statuses[i].ok()) << i;
  EXPECT_EQ(commit_->commits(), before + 2);
  EXPECT_EQ(Committed(), (std::set<int64_t>{100}));
}

}  // namespace
}  // namespace nighfs::meta::internal
