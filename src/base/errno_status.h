// Turns a failed syscall into an absl::Status that names the call and what it
// was doing, in nginx's style: `accept4() failed while accepting on "http"`.
#ifndef DDV_SRC_BASE_ERRNO_STATUS_H_
#define DDV_SRC_BASE_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ddv {

// `call` is the syscall name ("bind"); `doing` says why ("binding listener
// \"http\" to 0.0.0.0:80"). The errno value picks the status code.
absl::Status ErrnoStatus(int error_number, absl::string_view call,
                         absl::string_view doing);

}  // namespace ddv

#endif  // DDV_SRC_BASE_ERRNO_STATUS_H_
