#include "meta/schema.h"

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/status_macros.h"

namespace nighfs::meta {
namespace {

// Version 1. {ID} and {BLOB} come from the engine's Dialect. Names, symlink targets and xattrs
// are bytes (a file name need not be UTF-8), so they are BLOBs compared bytewise.
//
// Foreign keys make the database itself refuse a dangling name, block or xattr. Child columns of
// every foreign key are indexed (a primary-key prefix or an explicit index) so deleting an inode
// does not scan.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE volumes (
  id {ID},
  name TEXT NOT NULL UNIQUE,
  block_size INTEGER NOT NULL,
  store_url TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  next_ino INTEGER NOT NULL,
  next_block_id INTEGER NOT NULL
);
-- Volumes deleted while some of their blocks still await garbage collection: GC needs the
-- store. Volume ids are never reused, so gc_blocks.volume_id stays unambiguous.
CREATE TABLE deleted_volumes (
  id INTEGER PRIMARY KEY,
  store_url TEXT NOT NULL
);
CREATE TABLE inodes (
  volume_id INTEGER NOT NULL REFERENCES volumes(id),
  ino INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL,
  nlink INTEGER NOT NULL,
  rdev INTEGER NOT NULL,
  atime_ns INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  target {BLOB},
  PRIMARY KEY (volume_id, ino)
);
-- id is the readdir cookie: increasing and never reused, so a listing continues correctly
-- while entries are added and removed.
CREATE TABLE dentries (
  id {ID},
  volume_id INTEGER NOT NULL,
  parent INTEGER NOT NULL,
  name {BLOB} NOT NULL,
  ino INTEGER NOT NULL,
  UNIQUE (volume_id, parent, name),
  FOREIGN KEY (volume_id, parent) REFERENCES inodes(volume_id, ino),
  FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino)
);
CREATE INDEX dentries_by_parent_id ON dentries(volume_id, parent, id);
CREATE INDEX dentries_by_ino ON dentries(volume_id, ino);
-- A block id is referenced by at most one row: dropping the row frees the object.
CREATE TABLE blocks (
  volume_id INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  block_id INTEGER NOT NULL,
  length INTEGER NOT NULL,
  object_size INTEGER NOT NULL,
  crc32c INTEGER NOT NULL,
  PRIMARY KEY (volume_id, ino, idx),
  UNIQUE (volume_id, block_id),
  FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino)
);
CREATE TABLE xattrs (
  volume_id INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  name {BLOB} NOT NULL,
  value {BLOB} NOT NULL,
  PRIMARY KEY (volume_id, ino, name),
  FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino)
);
CREATE TABLE sessions (
  id {ID},
  volume_id INTEGER NOT NULL REFERENCES volumes(id),
  hostname TEXT NOT NULL,
  mount_point TEXT NOT NULL,
  pid INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  last_heartbeat_ns INTEGER NOT NULL
);
CREATE INDEX sessions_by_volume ON sessions(volume_id);
CREATE INDEX sessions_by_heartbeat ON sessions(last_heartbeat_ns);
-- Inodes without names kept alive for a session's open files.
CREATE TABLE sustained (
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  volume_id INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  PRIMARY KEY (session_id, volume_id, ino),
  FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino)
);
CREATE INDEX sustained_by_inode ON sustained(volume_id, ino);
-- Objects no longer referenced, deleted from their store once freed_ns is gc_grace old.
CREATE TABLE gc_blocks (
  volume_id INTEGER NOT NULL,
  block_id INTEGER NOT NULL,
  object_size INTEGER NOT NULL,
  freed_ns INTEGER NOT NULL,
  PRIMARY KEY (volume_id, block_id)
);
CREATE INDEX gc_blocks_by_time ON gc_blocks(freed_ns);
)sql";

// Version 2: Attr.stored_bytes, the sum of the inode's blocks' valid lengths, kept in the inode
// row so GetAttr does not add up a block map.
constexpr char kV2StoredBytes[] = R"sql(
ALTER TABLE inodes ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE inodes SET stored_bytes = COALESCE((SELECT SUM(b.length) FROM blocks b
    WHERE b.volume_id = inodes.volume_id AND b.ino = inodes.ino), 0);
)sql";

// Version 3: the replies of mutations by request id (meta/request_dedup.h). seq orders them by
// age for the size bound.
constexpr char kV3RequestReplies[] = R"sql(
CREATE TABLE request_replies (
  seq {ID},
  request_id {BLOB} NOT NULL UNIQUE,
  method TEXT NOT NULL,
  reply {BLOB} NOT NULL,
  created_ns INTEGER NOT NULL
);
CREATE INDEX request_replies_by_time ON request_replies(created_ns);
)sql";

// Version 4: block id ranges by allocating session (meta/alloc_gc.h). ended_ns is NULL while the
// session lives; reclaimed ranges stay, so a late commit of one of their ids is refused.
constexpr char kV4BlockIdRanges[] = R"sql(
CREATE TABLE block_id_ranges (
  volume_id INTEGER NOT NULL,
  first_id INTEGER NOT NULL,
  count INTEGER NOT NULL,
  session_id INTEGER NOT NULL,
  ended_ns INTEGER,
  reclaimed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (volume_id, first_id)
);
CREATE INDEX block_id_ranges_by_session ON block_id_ranges(session_id);
CREATE INDEX block_id_ranges_by_end ON block_id_ranges(reclaimed, ended_ns);
)sql";

// Version 5: volume tokens (meta/tokens.cc) and sessions bound to the token that opened them.
// Only the SHA-256 of a token's secret and of a session's key is kept. A name is unique among
// the live tokens of a volume. token_id 0 = a session opened by the admin or in-process.
constexpr char kV5Tokens[] = R"sql(
CREATE TABLE tokens (
  id {ID},
  volume_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  secret_hash {BLOB} NOT NULL UNIQUE,
  access INTEGER NOT NULL,
  root_path TEXT NOT NULL,
  root_ino INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  expires_ns INTEGER NOT NULL,
  revoked_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tokens_by_volume ON tokens(volume_id);
CREATE UNIQUE INDEX tokens_by_live_name ON tokens(volume_id, name)
    WHERE name <> '' AND revoked_ns = 0;
ALTER TABLE sessions ADD COLUMN token_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN key_hash {BLOB};
)sql";

// Version 6: nighfs-proxy (meta/proxy_ops.cc). known_proxies: the addresses proxies advertised
// through AuthorizeBlockAccess (with the proxy token that called; 0 = the admin or in-process);
// a block's holder is the id of one (NULL = put to the store itself), so a block map row grows
// by at most a small integer (known_proxies rows are never deleted). gc_tombstones: blocks garbage collection deleted, kept for
// --gc-tombstone-retention so DeadBlocks still names them (a proxy must never upload them).
// Proxy tokens are rows of tokens with volume_id 0 (no volume has id 0).
constexpr char kV6Proxies[] = R"sql(
CREATE TABLE known_proxies (
  id {ID},
  address TEXT NOT NULL UNIQUE,
  token_id INTEGER NOT NULL,
  last_seen_ns INTEGER NOT NULL
);
ALTER TABLE blocks ADD COLUMN holder_id INTEGER;
CREATE TABLE gc_tombstones (
  volume_id INTEGER NOT NULL,
  block_id INTEGER NOT NULL,
  deleted_ns INTEGER NOT NULL,
  PRIMARY KEY (volume_id, block_id)
);
CREATE INDEX gc_tombstones_by_time ON gc_tombstones(deleted_ns);
)sql";

// Version 7: proxy groups (meta/proxy_groups.cc, issue 13). A group's members keep their
// configured order (position). routes_version is per volume: what a mount routes over changes
// only with its own volume's associations, so a mount never re-fetches for another volume's
// change; the Heartbeat reads it with one primary-key lookup.
constexpr char kV7ProxyGroups[] = R"sql(
CREATE TABLE proxy_groups (
  id {ID},
  provider_code TEXT NOT NULL,
  region_code TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL
);
CREATE TABLE proxy_group_members (
  group_id INTEGER NOT NULL,
  address TEXT NOT NULL,
  position INTEGER NOT NULL,
  PRIMARY KEY (group_id, address)
);
CREATE TABLE volume_proxy_groups (
  volume_id INTEGER NOT NULL,
  group_id INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  PRIMARY KEY (volume_id, group_id)
);
CREATE INDEX volume_proxy_groups_by_group ON volume_proxy_groups(group_id);
ALTER TABLE volumes ADD COLUMN routes_version INTEGER NOT NULL DEFAULT 1;
)sql";

// Version 8: per-range checksums of a block (Block.range_crc32c, range_size; issue 14), so a
// mount can fetch and verify part of a block. NULL for blocks written before: those are still
// read and verified whole.
constexpr char kV8RangeChecksums[] = R"sql(
ALTER TABLE blocks ADD COLUMN range_size INTEGER;
ALTER TABLE blocks ADD COLUMN range_crc32c {BLOB};
)sql";

// Version 9: small files' data in the block map (Block.inline_data, issue 14: "data on MDT").
// An inline row has inline_data and no block_id (NULL), so it names no object: every query that
// hands block ids to garbage collection, DeadBlocks or the id reclaimer passes it over, and
// UNIQUE (volume_id, block_id) holds for any number of inline rows (NULLs are distinct).
// block_id was NOT NULL, which SQLite cannot drop in place: the table is rebuilt (nothing
// refers to it; its only indexes are its keys). The column CHECK (which may name other
// columns) keeps exactly one of the two.
constexpr char kV9InlineData[] = R"sql(
CREATE TABLE blocks_v9 (
  volume_id INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  block_id INTEGER,
  length INTEGER NOT NULL,
  object_size INTEGER NOT NULL,
  crc32c INTEGER NOT NULL,
  holder_id INTEGER,
  range_size INTEGER,
  range_crc32c {BLOB},
  inline_data {BLOB} CHECK ((inline_data IS NULL) <> (block_id IS NULL)),
  PRIMARY KEY (volume_id, ino, idx),
  UNIQUE (volume_id, block_id),
  FOREIGN KEY (volume_id, ino) REFERENCES inodes(volume_id, ino)
);
INSERT INTO blocks_v9 (volume_id, ino, idx, block_id, length, object_size, crc32c, holder_id,
                       range_size, range_crc32c)
    SELECT volume_id, ino, idx, block_id, length, object_size, crc32c, holder_id, range_size,
           range_crc32c FROM blocks;
DROP TABLE blocks;
ALTER TABLE blocks_v9 RENAME TO blocks;
)sql";

// migrations[i] takes a database from version i to i + 1.
std::vector<std::string> Migrations(const sql::Dialect& d) {
  auto expand = [&d](const char* script) {
    return absl::StrReplaceAll(script, {{"{ID}", std::string(d.auto_id_primary_key)},
                                        {"{BLOB}", std::string(d.blob_type)}});
  };
  return {expand(kSchemaV1), kV2StoredBytes, expand(kV3RequestReplies),
          kV4BlockIdRanges, expand(kV5Tokens), expand(kV6Proxies),
          expand(kV7ProxyGroups), expand(kV8RangeChecksums), expand(kV9InlineData)};
}

}  // namespace

absl::Status MigrateSchema(sql::Connection* db) {
  ASSIGN_OR_RETURN(auto txn, db->Begin(sql::TxMode::kWrite));
  RETURN_IF_ERROR(db->ExecuteScript(
      "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"));
  int version = 0;
  {
    ASSIGN_OR_RETURN(auto st, db->Prepare("SELECT value FROM meta WHERE key = 'schema_version'"));
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row && !absl::SimpleAtoi(st->ColumnText(0), &version)) {
      return absl::DataLossError(
          absl::StrCat("meta.schema_version is not a number: '", st->ColumnText(0), "'"));
    }
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database has schema version ", version, ", newer than this nighfs-meta supports (",
        kSchemaVersion, "); run a newer nighfs-meta"));
  }
  if (version == kSchemaVersion) return absl::OkStatus();  // read-only: the rollback is harmless

  std::vector<std::string> migrations = Migrations(db->dialect());
  for (int v = version; v < kSchemaVersion; ++v) {
    absl::Status s = db->ExecuteScript(migrations[v]);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("schema migration ", v, " -> ", v + 1, ": ",
                                                 s.message()));
    }
  }
  {
    ASSIGN_OR_RETURN(auto st, db->Prepare(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
    st->BindText(1, std::to_string(kSchemaVersion));
    RETURN_IF_ERROR(st->Run());
  }
  return txn->Commit();
}

}  // namespace nighfs::meta
