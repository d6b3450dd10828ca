// RETURN_IF_ERROR / ASSIGN_OR_RETURN: Debian 12's abseil (20220623) has no status_macros.h.
#ifndef NIGHFS_COMMON_STATUS_MACROS_H_
#define NIGHFS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NIGHFS_CONCAT_INNER_(a, b) a##b
#define NIGHFS_CONCAT_(a, b) NIGHFS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status nighfs_status_ = (expr);        \
    if (!nighfs_status_.ok()) return nighfs_status_; \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, expr) \
  NIGHFS_ASSIGN_OR_RETURN_IMPL_(NIGHFS_CONCAT_(nighfs_statusor_, __LINE__), lhs, expr)

#define NIGHFS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // NIGHFS_COMMON_STATUS_MACROS_H_
