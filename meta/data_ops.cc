// MetaServiceImpl's block-map calls (GetBlocks, AllocBlockIds, CommitBlocks, Release) and
// block garbage collection (RunGcOnce), which deletes freed blocks from their stores.
#include "meta/meta_service_impl.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "blockstore/block_store.h"
#include "common/crc32c.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "meta/alloc_gc.h"

namespace nighfs::meta::internal {

namespace {

// Block.range_crc32c holds one CRC per range_size bytes of the object, or nothing at all
// (range_size 0). Ranges of at least 512 bytes keep a block map row within 4 * block size / 512
// bytes of checksums.
absl::Status CheckRangeChecksums(const pb::Block& b, uint64_t block_size) {
  if (b.range_size() == 0) {
    if (b.range_crc32c().empty()) return absl::OkStatus();
    return FsError(EINVAL, absl::StrCat("block ", b.id(), ": range checksums without a range size"));
  }
  if (b.range_size() < 512 || b.range_size() > block_size) {
    return FsError(EINVAL, absl::StrCat("block ", b.id(), ": range size ", b.range_size(),
                                        " is not in 512..", block_size));
  }
  const uint64_t ranges = (uint64_t{b.object_size()} + b.range_size() - 1) / b.range_size();
  if (b.range_crc32c().size() != 4 * ranges) {
    return FsError(EINVAL, absl::StrCat("block ", b.id(), ": ", b.range_crc32c().size(),
                                        " bytes of range checksums, want 4 x ", ranges));
  }
  return absl::OkStatus();
}

// A block committed inline (id 0, Block.inline_data): block 0 of its file, within the server's
// limit `max` (0 = none taken), whole (length == object_size == its bytes), checked against
// its CRC32C before it is stored, and naming no holder or ranges (there is no object).
absl::Status CheckInline(const pb::Block& b, uint32_t max) {
  if (max == 0) {
    return FsError(EINVAL, "block id 0 was never allocated (and this server keeps no inline "
                           "blocks: --inline-max-bytes is 0)");
  }
  const uint64_t n = b.inline_data().size();
  if (b.index() != 0) {
    return FsError(EINVAL, absl::StrCat("an inline block must be block 0, not ", b.index()));
  }
  if (n > max) {
    return FsError(EINVAL, absl::StrCat("inline block of ", n, " bytes is over this server's "
                                        "limit of ", max, " (--inline-max-bytes)"));
  }
  if (b.length() != n || b.object_size() != n) {
    return FsError(EINVAL, absl::StrCat("inline block of ", n, " bytes with length ",
                                        b.length(), " and object size ", b.object_size()));
  }
  if (!b.holder().empty() || b.range_size() != 0 || !b.range_crc32c().empty()) {
    return FsError(EINVAL, "an inline block has no object: no holder, no range checksums");
  }
  if (Crc32c(b.inline_data()) != b.crc32c()) {
    return FsError(EINVAL, absl::StrCat("inline block: crc32c ", Crc32c(b.inline_data()),
                                        " of its bytes, not ", b.crc32c(), " as sent"));
  }
  return absl::OkStatus();
}

// A block id belongs to one map entry for life: EINVAL when `b.id()` is another entry's than
// (ino, b.index()), or has been freed (queued for garbage collection, or deleted by it and
// still tombstoned: DeadBlocks has called it dead for good).
absl::Status CheckIdFree(Tx& tx, uint64_t vol, uint64_t ino, const pb::Block& b) {
  ASSIGN_OR_RETURN(auto owner, Query(tx.db,
                                     "SELECT ino, idx FROM blocks WHERE volume_id = ? AND "
                                     "block_id = ?",
                                     vol, b.id()));
  ASSIGN_OR_RETURN(bool owned, owner->Step());
  if (owned && (static_cast<uint64_t>(owner->ColumnInt64(0)) != ino ||
                static_cast<uint64_t>(owner->ColumnInt64(1)) != b.index())) {
    return FsError(EINVAL, absl::StrCat("block id ", b.id(), " is already in use by inode ",
                                        owner->ColumnInt64(0), " index ",
                                        owner->ColumnInt64(1)));
  }
  owner.reset();
  ASSIGN_OR_RETURN(int64_t freed, QueryInt(tx.db, 0,
                                           "SELECT 1 FROM gc_blocks WHERE volume_id = ? AND "
                                           "block_id = ? UNION ALL SELECT 1 FROM "
                                           "gc_tombstones WHERE volume_id = ? AND "
                                           "block_id = ?",
                                           vol, b.id(), vol, b.id()));
  if (freed != 0) return FsError(EINVAL, absl::StrCat("block id ", b.id(), " has been freed"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<pb::GetBlocksResponse> MetaServiceImpl::GetBlocks(const pb::GetBlocksRequest& req) {
  const uint64_t first = std::min(req.first_index(), kMaxFileSize);
  const uint64_t end = (req.count() == 0 || req.count() > kMaxFileSize - first)
                           ? kMaxFileSize
                           : first + req.count();
  const int open_access = static_cast<int>(req.open_access()) & (kMayRead | kMayWrite);
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  return Read([&](Tx& tx) -> absl::StatusOr<pb::GetBlocksResponse> {
    ASSIGN_OR_RETURN(Inode n, tx.GetInode(req.volume_id(), req.ino()));
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
    pb::GetBlocksResponse r;
    if (open_access != 0) {
      // An open: checked now, and only now, for this descriptor (see open grants in access.h).
      RETURN_IF_ERROR(CheckPermission(asker.cred, n.node(), open_access));
      r.set_grant(MakeGrant(grant_key_, req.volume_id(), n.ino, asker.session, open_access));
    } else if (!Granted(asker, req.grant(), req.volume_id(), n.ino, kMayRead) &&
               !Granted(asker, req.grant(), req.volume_id(), n.ino, kMayWrite)) {
      // A writer needs the map too (to merge partial blocks): any grant of the file will do.
      RETURN_IF_ERROR(CheckPermission(asker.cred, n.node(), kMayRead));
    }
    *r.mutable_attr() = n.Proto();
    ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                    "SELECT b.idx, b.block_id, b.length, b.object_size, "
                                    "b.crc32c, p.address, b.range_size, b.range_crc32c, "
                                    "b.inline_data "
                                    "FROM blocks b "
                                    "LEFT JOIN known_proxies p ON p.id = b.holder_id "
                                    "WHERE b.volume_id = ? AND b.ino = ? AND b.idx >= ? "
                                    "AND b.idx < ? ORDER BY b.idx",
                                    req.volume_id(), n.ino, first, end));
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      pb::Block* b = r.add_blocks();
      b->set_index(static_cast<uint64_t>(st->ColumnInt64(0)));
      b->set_id(static_cast<uint64_t>(st->ColumnInt64(1)));  // NULL (inline): 0
      b->set_length(static_cast<uint32_t>(st->ColumnInt64(2)));
      b->set_object_size(static_cast<uint32_t>(st->ColumnInt64(3)));
      b->set_crc32c(static_cast<uint32_t>(st->ColumnInt64(4)));
      if (!st->IsNull(5)) b->set_holder(st->ColumnText(5));
      if (!st->IsNull(6) && !st->IsNull(7)) {
        b->set_range_size(static_cast<uint32_t>(st->ColumnInt64(6)));
        b->set_range_crc32c(st->ColumnBlob(7));
      }
      if (!st->IsNull(8)) b->set_inline_data(st->ColumnBlob(8));
    }
    return r;
  });
}

absl::StatusOr<pb::AllocBlockIdsResponse> MetaServiceImpl::AllocBlockIds(
    const pb::AllocBlockIdsRequest& req) {
  if (req.count() < 1 || req.count() > kMaxAllocBlockIds) {
    return FsError(EINVAL, absl::StrCat("block id count ", req.count(), " is not in 1..",
                                        kMaxAllocBlockIds));
  }
  return WriteOnce("AllocBlockIds", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::AllocBlockIdsResponse> {
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(req.volume_id()));
    RETURN_IF_ERROR(Exec(tx.db, "UPDATE volumes SET next_block_id = next_block_id + ? WHERE id = ?",
                         req.count(), v.id));
    RETURN_IF_ERROR(RecordAllocation(tx.db, v.id, v.next_block_id, req.count(), req.session_id()));
    pb::AllocBlockIdsResponse r;
    r.set_first_id(v.next_block_id);
    return r;
  });
}

absl::StatusOr<pb::CommitBlocksResponse> MetaServiceImpl::CommitBlocks(
    const pb::CommitBlocksRequest& req) {
  if (req.min_size() > kMaxFileSize) {
    return FsError(EFBIG, absl::StrCat("size ", req.min_size(), " is too large"));
  }
  ASSIGN_OR_RETURN(Asker asker, AskerOf(req));
  const pb::SetAttrRequest& deferred = req.set_attr();
  if (deferred.valid() & (pb::SETATTR_SIZE | pb::SETATTR_CTIME)) {
    return FsError(EINVAL, "a commit's set_attr may not change the size or ctime");
  }
  std::optional<Asker> deferred_asker;
  if (deferred.valid() != 0) {
    ASSIGN_OR_RETURN(deferred_asker, AskerOf(deferred));
  }
  return WriteOnce("CommitBlocks", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::CommitBlocksResponse> {
    const uint64_t vol = req.volume_id();
    ASSIGN_OR_RETURN(VolumeRow v, tx.GetVolume(vol));
    const uint64_t bs = v.block_size;
    // Block.holder -> known_proxies.id (0 = none). Readers follow a holder with their own
    // token, so it must name a proxy that authenticated to this server, never a host a writer
    // chose.
    absl::flat_hash_map<std::string, int64_t> holder_ids;
    for (const pb::Block& b : req.blocks()) {
      if (b.holder().empty() || holder_ids.contains(b.holder())) continue;
      ASSIGN_OR_RETURN(int64_t hid, QueryInt(tx.db, 0,
                                             "SELECT id FROM known_proxies WHERE address = ?",
                                             Text{b.holder()}));
      if (hid == 0) {
        return FsError(EINVAL, absl::StrCat("block ", b.id(), ": holder ",
                                            Quote(b.holder().substr(0, 300)),
                                            " is not a known proxy"));
      }
      holder_ids.emplace(b.holder(), hid);
    }
    for (const pb::Block& b : req.blocks()) {
      if (b.length() > b.object_size() || b.object_size() > bs) {
        return FsError(EINVAL, absl::StrCat("block ", b.id(), " at index ", b.index(),
                                            ": need length (", b.length(), ") <= object size (",
                                            b.object_size(), ") <= block size (", bs, ")"));
      }
      RETURN_IF_ERROR(CheckRangeChecksums(b, bs));
      if (b.index() > (kMaxFileSize - b.length()) / bs) {
        return FsError(EFBIG, absl::StrCat("block index ", b.index(), " is too large"));
      }
      if (b.id() == 0) {
        RETURN_IF_ERROR(CheckInline(b, InlineMax(v)));
        continue;
      }
      if (!b.inline_data().empty()) {
        return FsError(EINVAL, absl::StrCat("block id ", b.id(), " carries inline data"));
      }
      if (b.id() >= v.next_block_id) {
        return FsError(EINVAL, absl::StrCat("block id ", b.id(), " was never allocated"));
      }
      ASSIGN_OR_RETURN(bool reclaimed, IsReclaimedId(tx.db, vol, b.id()));
      if (reclaimed) {
        return FsError(ESTALE, absl::StrCat("block id ", b.id(), " belonged to a session that "
                                            "ended without committing it; its object may be "
                                            "gone: upload the data again under a new id"));
      }
    }
    ASSIGN_OR_RETURN(std::optional<Inode> found, tx.FindInode(vol, req.ino()));
    if (!found) {
      // The file went away while it was being written. The uploaded objects will never be
      // referenced: hand them to garbage collection rather than leave them in the store.
      for (const pb::Block& b : req.blocks()) {
        if (b.id() == 0) continue;  // inline: no object
        ASSIGN_OR_RETURN(int64_t used, QueryInt(tx.db, 0,
                                                "SELECT 1 FROM blocks WHERE volume_id = ? AND "
                                                "block_id = ?",
                                                vol, b.id()));
        if (used == 0) RETURN_IF_ERROR(tx.QueueBlock(vol, b.id(), b.object_size()));
      }
      tx.commit_on_error = true;
      return FsError(ENOENT, absl::StrCat("no inode ", req.ino(), " in volume ", vol));
    }
    Inode n = *found;
    if (n.IsDir()) return FsError(EISDIR, absl::StrCat("inode ", n.ino, " is a directory"));
    if (!n.IsReg()) return FsError(EINVAL, absl::StrCat("inode ", n.ino, " is not a regular file"));
    if (!Granted(asker, req.grant(), vol, n.ino, kMayWrite)) {
      RETURN_IF_ERROR(CheckPermission(asker.cred, n.node(), kMayWrite));
    }

    // Punched holes: the entries go, their objects become garbage, the size stays.
    for (uint64_t idx : req.drop_indexes()) {
      ASSIGN_OR_RETURN(auto old, Query(tx.db,
                                       "SELECT block_id, object_size, length FROM blocks WHERE "
                                       "volume_id = ? AND ino = ? AND idx = ?",
                                       vol, n.ino, idx));
      ASSIGN_OR_RETURN(bool has_old, old->Step());
      if (!has_old) continue;
      const uint64_t old_id = static_cast<uint64_t>(old->ColumnInt64(0));
      const uint64_t old_size = static_cast<uint64_t>(old->ColumnInt64(1));
      const uint64_t old_length = static_cast<uint64_t>(old->ColumnInt64(2));
      const bool old_inline = old->IsNull(0);
      old.reset();
      if (!old_inline) RETURN_IF_ERROR(tx.QueueBlock(vol, old_id, old_size));
      RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM blocks WHERE volume_id = ? AND ino = ? AND idx = ?",
                           vol, n.ino, idx));
      n.stored_bytes -= std::min(n.stored_bytes, old_length);
    }

    for (const pb::Block& b : req.blocks()) {
      // A block id belongs to one map entry for life; one already freed must not come back,
      // since garbage collection may be deleting its object right now. (Inline blocks name
      // no object.)
      if (b.id() != 0) RETURN_IF_ERROR(CheckIdFree(tx, vol, n.ino, b));
      ASSIGN_OR_RETURN(auto old, Query(tx.db,
                                       "SELECT block_id, object_size, length FROM blocks WHERE "
                                       "volume_id = ? AND ino = ? AND idx = ?",
                                       vol, n.ino, b.index()));
      ASSIGN_OR_RETURN(bool has_old, old->Step());
      if (has_old) {
        n.stored_bytes -= std::min<uint64_t>(n.stored_bytes, old->ColumnInt64(2));
      }
      n.stored_bytes += b.length();
      // The object the entry named goes to garbage collection unless the entry names it
      // still; an inline entry had none.
      if (has_old && !old->IsNull(0) && static_cast<uint64_t>(old->ColumnInt64(0)) != b.id()) {
        const uint64_t old_id = static_cast<uint64_t>(old->ColumnInt64(0));
        const uint64_t old_size = static_cast<uint64_t>(old->ColumnInt64(1));
        old.reset();
        RETURN_IF_ERROR(tx.QueueBlock(vol, old_id, old_size));
      }
      old.reset();
      // An inline block: no block_id (NULL), its bytes in inline_data.
      RETURN_IF_ERROR(Exec(tx.db,
                           "INSERT INTO blocks (volume_id, ino, idx, block_id, length, "
                           "object_size, crc32c, holder_id, range_size, range_crc32c, "
                           "inline_data) "
                           "VALUES (?, ?, ?, NULLIF(?, 0), ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), "
                           "CASE WHEN ? = 0 THEN NULL ELSE ? END, "
                           "CASE WHEN ? = 0 THEN ? END) "
                           "ON CONFLICT (volume_id, ino, idx) DO UPDATE SET "
                           "block_id = excluded.block_id, length = excluded.length, "
                           "object_size = excluded.object_size, crc32c = excluded.crc32c, "
                           "holder_id = excluded.holder_id, range_size = excluded.range_size, "
                           "range_crc32c = excluded.range_crc32c, "
                           "inline_data = excluded.inline_data",
                           vol, n.ino, b.index(), b.id(), b.length(), b.object_size(),
                           b.crc32c(), b.holder().empty() ? 0 : holder_ids.at(b.holder()),
                           b.range_size(), b.range_crc32c().size(), Blob{b.range_crc32c()},
                           b.id(), Blob{b.inline_data()}));
    }
    n.size = std::max<uint64_t>(n.size, req.min_size());
    n.mtime_ns = req.mtime_ns() != 0 ? req.mtime_ns() : tx.now;
    n.ctime_ns = tx.now;
    if (req.clear_suid()) {
      n.mode &= ~static_cast<uint32_t>(S_ISUID);
      if (n.mode & S_IXGRP) n.mode &= ~static_cast<uint32_t>(S_ISGID);
    }
    if (deferred_asker) {
      RETURN_IF_ERROR(ApplyOwnerModeTimes(
          deferred_asker->cred, deferred,
          Granted(*deferred_asker, req.grant(), vol, n.ino, kMayWrite), tx.now, &n));
    }
    RETURN_IF_ERROR(tx.UpdateInode(vol, n));
    pb::CommitBlocksResponse r;
    *r.mutable_attr() = n.Proto();
    return r;
  });
}

absl::StatusOr<pb::ReleaseResponse> MetaServiceImpl::Release(const pb::ReleaseRequest& req) {
  return WriteOnce("Release", req.request_id(), [&](Tx& tx) -> absl::StatusOr<pb::ReleaseResponse> {
    RETURN_IF_ERROR(Exec(tx.db,
                         "DELETE FROM sustained WHERE session_id = ? AND volume_id = ? AND ino = ?",
                         req.session_id(), req.volume_id(), req.ino()));
    RETURN_IF_ERROR(tx.FreeIfOrphan(req.volume_id(), req.ino()));
    return pb::ReleaseResponse();
  });
}

// ---- background work ----

absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> MetaServiceImpl::GetStore(
    const std::string& url) {
  absl::MutexLock lock(&stores_mu_);
  auto it = stores_.find(url);
  if (it != stores_.end()) return it->second;
  ASSIGN_OR_RETURN(std::unique_ptr<blockstore::BlockStore> store, options_.open_store(url));
  std::shared_ptr<blockstore::BlockStore> shared(std::move(store));
  stores_.emplace(url, shared);
  return shared;
}

absl::StatusOr<int64_t> MetaServiceImpl::RunGcOnce() {
  absl::MutexLock gc_lock(&gc_mu_);
  const int64_t cutoff = Now() - absl::ToInt64Nanoseconds(options_.gc_grace);
  struct Garbage {
    uint64_t volume_id;
    uint64_t block_id;
    std::string store_url;  // "" when the volume is unknown
  };
  int64_t deleted = 0;
  uint64_t after_vol = 0;
  uint64_t after_block = 0;
  absl::flat_hash_map<std::string, absl::Status> broken_stores;  // warned once per round
  // Ids of ended sessions never committed join the queue, due at once.
  ASSIGN_OR_RETURN(int64_t reclaimed, Write([&](Tx& tx) -> absl::StatusOr<int64_t> {
    return ReclaimEndedAllocations(tx.db, cutoff);
  }));
  if (reclaimed > 0) {
    NIGHFS_LOG(INFO) << "gc: " << reclaimed << " block id(s) allocated to ended sessions and "
                     << "never committed queued for deletion";
  }
  // A block is deleted only once the change that freed it is on disk: in batched mode
  // (meta/wal_sync.h) a crash could otherwise bring back a file whose blocks are gone.
  if (wal_sync_ != nullptr) RETURN_IF_ERROR(wal_sync_->Sync());
  while (true) {
    // Pages in key order so blocks whose deletion failed are passed over, not fetched again.
    ASSIGN_OR_RETURN(std::vector<Garbage> page, Read([&](Tx& tx) -> absl::StatusOr<std::vector<Garbage>> {
      ASSIGN_OR_RETURN(auto st, Query(tx.db,
                                      "SELECT g.volume_id, g.block_id, "
                                      "COALESCE(v.store_url, d.store_url, '') FROM gc_blocks g "
                                      "LEFT JOIN volumes v ON v.id = g.volume_id "
                                      "LEFT JOIN deleted_volumes d ON d.id = g.volume_id "
                                      "WHERE g.freed_ns <= ? AND (g.volume_id > ? OR "
                                      "(g.volume_id = ? AND g.block_id > ?)) "
                                      "ORDER BY g.volume_id, g.block_id LIMIT ?",
                                      cutoff, after_vol, after_vol, after_block, kGcPageSize));
      std::vector<Garbage> out;
      while (true) {
        ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        out.push_back({static_cast<uint64_t>(st->ColumnInt64(0)),
                       static_cast<uint64_t>(st->ColumnInt64(1)), st->ColumnText(2)});
      }
      return out;
    }));
    if (page.empty()) break;
    after_vol = page.back().volume_id;
    after_block = page.back().block_id;

    std::vector<std::pair<uint64_t, uint64_t>> done;
    for (const Garbage& g : page) {
      if (g.store_url.empty()) {
        // No volume row and no tombstone: nothing says where the object lives, and nothing can
        // ever delete it. Drop the entry rather than retry forever.
        NIGHFS_LOG(ERROR) << "gc: block " << g.block_id << " of unknown volume " << g.volume_id
                          << " dropped from the queue";
        done.emplace_back(g.volume_id, g.block_id);
        continue;
      }
      if (broken_stores.contains(g.store_url)) continue;
      absl::StatusOr<std::shared_ptr<blockstore::BlockStore>> store = GetStore(g.store_url);
      if (!store.ok()) {
        NIGHFS_LOG(WARNING) << "gc: cannot open the block store of volume " << g.volume_id
                            << ": " << store.status().message() << " (retrying next round)";
        broken_stores.emplace(g.store_url, store.status());
        continue;
      }
      absl::Status s = (*store)->Delete(blockstore::BlockKey(g.block_id));
      if (!s.ok()) {
        NIGHFS_LOG(WARNING) << "gc: deleting block " << g.block_id << " from "
                            << (*store)->Describe() << " failed: " << s.message()
                            << " (retrying next round)";
        continue;
      }
      done.emplace_back(g.volume_id, g.block_id);
    }
    if (!done.empty()) {
      RETURN_IF_ERROR(Write([&](Tx& tx) -> absl::Status {
        for (const auto& [vol, block] : done) {
          // The tombstone keeps the block dead for DeadBlocks (a proxy must not upload it).
          RETURN_IF_ERROR(Exec(tx.db,
                               "INSERT INTO gc_tombstones (volume_id, block_id, deleted_ns) "
                               "VALUES (?, ?, ?) ON CONFLICT (volume_id, block_id) DO UPDATE "
                               "SET deleted_ns = excluded.deleted_ns",
                               vol, block, tx.now));
          RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM gc_blocks WHERE volume_id = ? AND block_id = ?",
                               vol, block));
        }
        return absl::OkStatus();
      }));
      deleted += static_cast<int64_t>(done.size());
    }
    if (page.size() < static_cast<size_t>(kGcPageSize)) break;
  }
  // Tombstones of deleted volumes whose blocks are all gone, and of blocks deleted longer
  // than the retention ago.
  RETURN_IF_ERROR(Write([&](Tx& tx) -> absl::Status {
    RETURN_IF_ERROR(Exec(tx.db, "DELETE FROM gc_tombstones WHERE deleted_ns < ?",
                         tx.now - absl::ToInt64Nanoseconds(options_.gc_tombstone_retention)));
    return Exec(tx.db,
                "DELETE FROM deleted_volumes WHERE NOT EXISTS "
                "(SELECT 1 FROM gc_blocks WHERE gc_blocks.volume_id = deleted_volumes.id) "
                "AND NOT EXISTS (SELECT 1 FROM block_id_ranges r WHERE "
                "r.volume_id = deleted_volumes.id AND r.reclaimed = 0)");
  }));
  if (deleted > 0) NIGHFS_LOG(DEBUG) << "gc: deleted " << deleted << " block(s)";
  return deleted;
}

}  // namespace nighfs::meta::internal
