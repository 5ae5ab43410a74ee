// ErrnoStatus: errno → absl::Status with the message format used in every log.
#include "src/base/errno_status.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ddv {

absl::Status ErrnoStatus(int error_number, absl::string_view call,
                         absl::string_view doing) {
  return absl::Status(
      absl::ErrnoToStatusCode(error_number),
      absl::StrCat(call, "() failed while ", doing, ": ",
                   std::strerror(error_number), " (errno ", error_number, ")"));
}

}  // namespace ddv
