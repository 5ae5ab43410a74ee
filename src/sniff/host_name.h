// HostName: a normalised host (lower case, no port, no trailing dot) held in a
// fixed inline buffer, so sniffing never allocates. The same normal form is
// used for HTTP Host, TLS SNI and the route table's keys.
#ifndef DDV_SRC_SNIFF_HOST_NAME_H_
#define DDV_SRC_SNIFF_HOST_NAME_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace ddv {
namespace sniff {

// RFC 1035 §2.3.4: a name is at most 255 octets on the wire, 253 as text
// without the trailing dot. IPv6 literals with brackets fit well below.
inline constexpr size_t kMaxHostLength = 253;

class HostName {
 public:
  HostName() = default;

  absl::string_view view() const { return absl::string_view(data_, size_); }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  void Clear() { size_ = 0; }

  // For NormalizeHost only: appends one already-validated byte.
  void AppendUnchecked(char c) { data_[size_++] = c; }

 private:
  char data_[kMaxHostLength + 1];
  uint16_t size_ = 0;
};

enum class HostSyntax {
  kHttpHost,  // RFC 9110 §7.2 Host: uri-host [ ":" port ], IP literals allowed
  kTlsSni,    // RFC 6066 §3 HostName: a DNS name, no port
};

// Normalises `raw` into `out`: ASCII lower case; an optional `:port` (digits
// only, Host syntax only) and one trailing dot removed. Accepts DNS names
// (letters, digits, '-', '_', '.'; no empty label), IPv4 dotted quads and
// bracketed IPv6 literals (Host syntax only). Returns nullptr on success or a
// static string saying what is wrong.
const char* NormalizeHost(absl::string_view raw, HostSyntax syntax,
                          HostName* out);

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_HOST_NAME_H_
