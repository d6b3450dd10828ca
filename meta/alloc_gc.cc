#include "meta/alloc_gc.h"

#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/status_macros.h"
#include "meta/sql_util.h"

namespace nighfs::meta {

absl::Status RecordAllocation(sql::Connection* db, uint64_t vol, uint64_t first_id,
                              uint64_t count, uint64_t session_id) {
  if (session_id == 0) return absl::OkStatus();
  return Exec(db,
              "INSERT INTO block_id_ranges (volume_id, first_id, count, session_id) "
              "VALUES (?, ?, ?, ?)",
              vol, first_id, count, session_id);
}

absl::Status EndSessionAllocations(sql::Connection* db, uint64_t session_id, int64_t now_ns) {
  return Exec(db,
              "UPDATE block_id_ranges SET ended_ns = ? WHERE session_id = ? AND ended_ns IS NULL",
              now_ns, session_id);
}

absl::Status EndVolumeAllocations(sql::Connection* db, uint64_t vol, int64_t now_ns) {
  return Exec(db,
              "UPDATE block_id_ranges SET ended_ns = ? WHERE volume_id = ? AND ended_ns IS NULL",
              now_ns, vol);
}

absl::StatusOr<bool> IsReclaimedId(sql::Connection* db, uint64_t vol, uint64_t id) {
  ASSIGN_OR_RETURN(auto st, Query(db,
                                  "SELECT first_id, count, reclaimed FROM block_id_ranges "
                                  "WHERE volume_id = ? AND first_id <= ? "
                                  "ORDER BY first_id DESC LIMIT 1",
                                  vol, id));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return false;
  const uint64_t first = static_cast<uint64_t>(st->ColumnInt64(0));
  const uint64_t count = static_cast<uint64_t>(st->ColumnInt64(1));
  return id - first < count && st->ColumnInt64(2) != 0;
}

namespace {

struct Range {
  uint64_t vol;
  uint64_t first;
  uint64_t count;
  int64_t ended_ns;
};

// The ids in [first, first + count) of `vol` that `sql` (volume, low, high bound) returns.
absl::Status CollectIds(sql::Connection* db, const char* sql, const Range& r,
                        absl::flat_hash_set<uint64_t>* out) {
  ASSIGN_OR_RETURN(auto st, Query(db, sql, r.vol, r.first, r.first + r.count));
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return absl::OkStatus();
    out->insert(static_cast<uint64_t>(st->ColumnInt64(0)));
  }
}

}  // namespace

absl::StatusOr<int64_t> ReclaimEndedAllocations(sql::Connection* db, int64_t ended_before_ns) {
  std::vector<Range> ranges;
  {
    ASSIGN_OR_RETURN(auto st, Query(db,
                                    "SELECT volume_id, first_id, count, ended_ns "
                                    "FROM block_id_ranges WHERE reclaimed = 0 "
                                    "AND ended_ns IS NOT NULL AND ended_ns <= ?",
                                    ended_before_ns));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      ranges.push_back({static_cast<uint64_t>(st->ColumnInt64(0)),
                        static_cast<uint64_t>(st->ColumnInt64(1)),
                        static_cast<uint64_t>(st->ColumnInt64(2)), st->ColumnInt64(3)});
    }
  }
  int64_t queued = 0;
  for (const Range& r : ranges) {
    absl::flat_hash_set<uint64_t> keep;
    RETURN_IF_ERROR(CollectIds(db,
                               "SELECT block_id FROM blocks WHERE volume_id = ? "
                               "AND block_id >= ? AND block_id < ?",
                               r, &keep));
    RETURN_IF_ERROR(CollectIds(db,
                               "SELECT block_id FROM gc_blocks WHERE volume_id = ? "
                               "AND block_id >= ? AND block_id < ?",
                               r, &keep));
    for (uint64_t id = r.first; id < r.first + r.count; ++id) {
      if (keep.contains(id)) continue;
      // The object, if it was ever uploaded, has been unreferenced since the session ended.
      RETURN_IF_ERROR(Exec(db,
                           "INSERT INTO gc_blocks (volume_id, block_id, object_size, freed_ns) "
                           "VALUES (?, ?, 0, ?)",
                           r.vol, id, r.ended_ns));
      ++queued;
    }
    RETURN_IF_ERROR(Exec(db,
                         "UPDATE block_id_ranges SET reclaimed = 1 WHERE volume_id = ? AND "
                         "first_id = ?",
                         r.vol, r.first));
  }
  return queued;
}

}  // namespace nighfs::meta
