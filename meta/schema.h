// The metadata database's schema and its migrations (internal to meta/).
#ifndef NIGHFS_META_SCHEMA_H_
#define NIGHFS_META_SCHEMA_H_

#include "absl/status/status.h"
#include "meta/sql.h"

namespace nighfs::meta {

// The version this build writes. A database at an older version is migrated up on open; a newer
// one is refused.
inline constexpr int kSchemaVersion = 9;

// Creates the schema in an empty database or migrates an older one to kSchemaVersion, in one
// write transaction. FailedPrecondition for a database newer than this build.
absl::Status MigrateSchema(sql::Connection* db);

}  // namespace nighfs::meta

#endif  // NIGHFS_META_SCHEMA_H_
