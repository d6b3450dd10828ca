// The duplicate-request table behind exactly-once mutations (internal to meta/; see the
// "Exactly-once" comment in proto/meta.proto). A mutation's successful reply is recorded under
// its client-chosen request id in the mutation's own transaction, so a retry of a request that
// was applied but whose reply was lost gets the original reply instead of running again (which
// would answer EEXIST for its own create, ENOENT for its own unlink). Records expire after a
// bounded time and the table holds a bounded number of them (NFSv4.1 sessions' reply cache).
//
// Every function runs inside the caller's transaction on `db`.
#ifndef NIGHFS_META_REQUEST_DEDUP_H_
#define NIGHFS_META_REQUEST_DEDUP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "meta/sql.h"

namespace nighfs::meta {

// Request ids longer than this are refused (clients send 16 bytes).
inline constexpr size_t kMaxRequestIdBytes = 64;

// The serialized reply recorded for `request_id`, or nullopt. InvalidArgument when the id was
// recorded for a different method (a client bug: ids are per operation) or is too long.
absl::StatusOr<std::optional<std::string>> FindRecordedReply(sql::Connection* db,
                                                             std::string_view request_id,
                                                             std::string_view method);

// Records `reply` (serialized) as the answer to `request_id`, stamped `now_ns`.
absl::Status RecordReply(sql::Connection* db, std::string_view request_id,
                         std::string_view method, std::string_view reply, int64_t now_ns);

// Forgets the records stamped before `older_than_ns`, then the oldest beyond the newest
// `max_records`. Returns how many were forgotten.
absl::StatusOr<int64_t> ExpireRecordedReplies(sql::Connection* db, int64_t older_than_ns,
                                              int64_t max_records);

}  // namespace nighfs::meta

#endif  // NIGHFS_META_REQUEST_DEDUP_H_
