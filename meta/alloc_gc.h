// Block ids allocated to a session but never committed (internal to meta/). A mount killed
// mid-write leaves objects it uploaded under ids no block map names; nothing else would ever
// delete them. AllocBlockIds records each range with its session; when the session ends
// (Unmount, expiry, volume deletion) the range is stamped, and once gc_grace has passed every id
// of it that no block map references is queued for deletion (gc_blocks) and the range is marked
// reclaimed: a CommitBlocks naming one of its ids must then fail (ESTALE), since its object may
// be gone.
//
// Every function runs inside the caller's write transaction on `db`.
#ifndef NIGHFS_META_ALLOC_GC_H_
#define NIGHFS_META_ALLOC_GC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "meta/sql.h"

namespace nighfs::meta {

// Records ids [first_id, first_id + count) of volume `vol` as allocated to `session_id`
// (0 = no session: untracked, as from clients older than this).
absl::Status RecordAllocation(sql::Connection* db, uint64_t vol, uint64_t first_id,
                              uint64_t count, uint64_t session_id);

// Stamp the ranges of `session_id`, or of every session of volume `vol`, as ended at `now_ns`
// (ranges already stamped keep their stamp).
absl::Status EndSessionAllocations(sql::Connection* db, uint64_t session_id, int64_t now_ns);
absl::Status EndVolumeAllocations(sql::Connection* db, uint64_t vol, int64_t now_ns);

// Whether block id `id` of volume `vol` lies in a reclaimed range.
absl::StatusOr<bool> IsReclaimedId(sql::Connection* db, uint64_t vol, uint64_t id);

// For each range ended at or before `ended_before_ns` and not yet reclaimed: queues for
// deletion (gc_blocks, due at once) every id that no block map references and that is not
// queued already, and marks the range reclaimed. Returns how many ids were queued.
absl::StatusOr<int64_t> ReclaimEndedAllocations(sql::Connection* db, int64_t ended_before_ns);

}  // namespace nighfs::meta

#endif  // NIGHFS_META_ALLOC_GC_H_
