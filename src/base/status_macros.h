// Early-return helpers for absl::Status and absl::StatusOr, the one copy used
// across the tree (Abseil's own are not public).
#ifndef DDV_SRC_BASE_STATUS_MACROS_H_
#define DDV_SRC_BASE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns `expr`'s status from the enclosing function unless it is OK.
#define DDV_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    const absl::Status ddv_status_macro_ = (expr); \
    if (!ddv_status_macro_.ok()) return ddv_status_macro_; \
  } while (false)

#define DDV_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define DDV_STATUS_MACROS_CONCAT_(a, b) DDV_STATUS_MACROS_CONCAT_INNER_(a, b)

// Declares or assigns `lhs` from a StatusOr expression, returning its status
// from the enclosing function on error:
//   DDV_ASSIGN_OR_RETURN(UniqueFd fd, OpenListener(address));
#define DDV_ASSIGN_OR_RETURN(lhs, rexpr)                                   \
  DDV_ASSIGN_OR_RETURN_IMPL_(                                              \
      DDV_STATUS_MACROS_CONCAT_(ddv_statusor_, __LINE__), lhs, rexpr)

#define DDV_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(*statusor)

#endif  // DDV_SRC_BASE_STATUS_MACROS_H_
