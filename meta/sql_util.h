// Small helpers over meta/sql.h shared by the metadata service's files (internal to meta/):
// bind typed arguments in one call, run a statement, read one integer.
#ifndef NIGHFS_META_SQL_UTIL_H_
#define NIGHFS_META_SQL_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "meta/sql.h"

namespace nighfs::meta {

// Values the service binds. Unsigned 64-bit ids above INT64_MAX become negative and match no
// row, which is the right answer for an id that cannot exist.
struct Blob {
  std::string_view bytes;
};
struct Text {
  std::string_view text;
};

template <class T>
void BindArg(sql::Statement& st, int index, const T& value) {
  if constexpr (std::is_same_v<T, Blob>) {
    st.BindBlob(index, value.bytes);
  } else if constexpr (std::is_same_v<T, Text>) {
    st.BindText(index, value.text);
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    st.BindNull(index);
  } else {
    static_assert(std::is_integral_v<T>, "bind an integer, Blob, Text or nullptr");
    st.BindInt64(index, static_cast<int64_t>(value));
  }
}

template <class... Args>
absl::StatusOr<std::unique_ptr<sql::Statement>> Query(sql::Connection* db, std::string_view sql,
                                                      const Args&... args) {
  ASSIGN_OR_RETURN(std::unique_ptr<sql::Statement> st, db->Prepare(sql));
  int index = 1;
  (BindArg(*st, index++, args), ...);
  return st;
}

template <class... Args>
absl::Status Exec(sql::Connection* db, std::string_view sql, const Args&... args) {
  ASSIGN_OR_RETURN(std::unique_ptr<sql::Statement> st, Query(db, sql, args...));
  return st->Run();
}

// The first column of the first row, or `fallback` when there is no row.
template <class... Args>
absl::StatusOr<int64_t> QueryInt(sql::Connection* db, int64_t fallback, std::string_view sql,
                                 const Args&... args) {
  ASSIGN_OR_RETURN(std::unique_ptr<sql::Statement> st, Query(db, sql, args...));
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row || st->IsNull(0)) return fallback;
  return st->ColumnInt64(0);
}

}  // namespace nighfs::meta

#endif  // NIGHFS_META_SQL_UTIL_H_
