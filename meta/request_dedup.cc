#include "meta/request_dedup.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "meta/sql_util.h"

namespace nighfs::meta {

absl::StatusOr<std::optional<std::string>> FindRecordedReply(sql::Connection* db,
                                                             std::string_view request_id,
                                                             std::string_view method) {
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("request id of ", request_id.size(),
                                                   " bytes is longer than ",
                                                   kMaxRequestIdBytes));
  }
  ASSIGN_OR_RETURN(auto st, Query(db,
                                  "SELECT method, reply FROM request_replies "
                                  "WHERE request_id = ?",
                                  Blob{request_id}));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<std::string>();
  if (st->ColumnText(0) != method) {
    return absl::InvalidArgumentError(absl::StrCat("request id already used by a ",
                                                   st->ColumnText(0), " request; a ", std::string(method),
                                                   " request needs its own"));
  }
  return std::optional<std::string>(st->ColumnBlob(1));
}

absl::Status RecordReply(sql::Connection* db, std::string_view request_id,
                         std::string_view method, std::string_view reply, int64_t now_ns) {
  return Exec(db,
              "INSERT INTO request_replies (request_id, method, reply, created_ns) "
              "VALUES (?, ?, ?, ?)",
              Blob{request_id}, Text{method}, Blob{reply}, now_ns);
}

absl::StatusOr<int64_t> ExpireRecordedReplies(sql::Connection* db, int64_t older_than_ns,
                                              int64_t max_records) {
  RETURN_IF_ERROR(Exec(db, "DELETE FROM request_replies WHERE created_ns < ?", older_than_ns));
  int64_t forgotten = db->Changes();
  // seq grows with insertion, so the newest max_records are the highest seqs.
  ASSIGN_OR_RETURN(int64_t keep_from, QueryInt(db, -1,
                                               "SELECT seq FROM request_replies "
                                               "ORDER BY seq DESC LIMIT 1 OFFSET ?",
                                               max_records > 0 ? max_records - 1 : 0));
  if (keep_from >= 0) {
    RETURN_IF_ERROR(Exec(db, "DELETE FROM request_replies WHERE seq < ?", keep_from));
    forgotten += db->Changes();
  }
  return forgotten;
}

}  // namespace nighfs::meta
