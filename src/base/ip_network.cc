// IpNetwork: parsing with inet_pton (strict forms only), matching by prefix
// bytes and a last partial byte.
#include "src/base/ip_network.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace ddv {
namespace {

absl::Status NetworkError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("network \"", text, "\": ", what));
}

// ::ffff:0:0/96, RFC 4291 §2.5.5.2.
bool IsV4Mapped(const uint8_t* bytes) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(bytes, kPrefix, sizeof(kPrefix)) == 0;
}

// The first `prefix_length` bits of `a` and `b` are equal.
bool SamePrefix(const uint8_t* a, const uint8_t* b, int prefix_length) {
  const int whole = prefix_length / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const int bits = prefix_length % 8;
  if (bits == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a[whole] & mask) == (b[whole] & mask);
}

// Zeroes every bit past the first `prefix_length` of `bytes` (`size` long).
void ClearHostBits(uint8_t* bytes, size_t size, int prefix_length) {
  for (size_t i = 0; i < size; ++i) {
    const int kept = prefix_length - static_cast<int>(i) * 8;
    if (kept >= 8) continue;
    bytes[i] &= kept <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - kept));
  }
}

}  // namespace

absl::StatusOr<IpNetwork> IpNetwork::Parse(absl::string_view text) {
  const size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  IpNetwork network;
  if (inet_pton(AF_INET, address.c_str(), network.bytes_.data()) == 1) {
    network.family_ = AF_INET;
  } else if (inet_pton(AF_INET6, address.c_str(), network.bytes_.data()) ==
             1) {
    network.family_ = AF_INET6;
  } else {
    return NetworkError(
        text, "not an IPv4 or IPv6 address with an optional /PREFIX, e.g. "
              "\"10.0.0.0/8\" or \"fd00::/8\" (no brackets, no host names)");
  }
  const int max_prefix = network.family_ == AF_INET ? 32 : 128;
  network.prefix_length_ = max_prefix;
  if (slash != absl::string_view::npos) {
    absl::string_view digits = text.substr(slash + 1);
    int prefix = -1;
    if (digits.empty() || digits.size() > 3 ||
        !absl::SimpleAtoi(digits, &prefix) || prefix < 0 ||
        prefix > max_prefix || (digits.size() > 1 && digits[0] == '0') ||
        digits[0] == '+') {
      return NetworkError(text, absl::StrCat("the prefix length must be 0 to ",
                                             max_prefix));
    }
    network.prefix_length_ = prefix;
  }
  const size_t size = network.family_ == AF_INET ? 4 : 16;
  std::array<uint8_t, 16> masked = network.bytes_;
  ClearHostBits(masked.data(), size, network.prefix_length_);
  if (masked != network.bytes_) {
    network.bytes_ = masked;
    return NetworkError(
        text, absl::StrCat("bits are set past the prefix; did you mean \"",
                           network.ToString(), "\"?"));
  }
  if (network.family_ == AF_INET6 && network.prefix_length_ >= 96 &&
      IsV4Mapped(network.bytes_.data())) {
    std::array<uint8_t, 16> v4{};
    std::memcpy(v4.data(), network.bytes_.data() + 12, 4);
    network.bytes_ = v4;
    network.family_ = AF_INET;
    network.prefix_length_ -= 96;
  }
  return network;
}

bool IpNetwork::Contains(const sockaddr_storage& address) const {
  const uint8_t* bytes = nullptr;
  int family = address.ss_family;
  if (family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in&>(address).sin_addr);
  } else if (family == AF_INET6) {
    bytes = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr);
    if (IsV4Mapped(bytes)) {
      bytes += 12;
      family = AF_INET;
    }
  } else {
    return false;
  }
  return family == family_ &&
         SamePrefix(bytes, bytes_.data(), prefix_length_);
}

std::string IpNetwork::ToString() const {
  char text[INET6_ADDRSTRLEN] = "";
  inet_ntop(family_, bytes_.data(), text, sizeof(text));
  return absl::StrCat(text, "/", prefix_length_);
}

bool AnyNetworkContains(absl::Span<const IpNetwork> networks,
                        const sockaddr_storage& address) {
  for (const IpNetwork& network : networks) {
    if (network.Contains(address)) return true;
  }
  return false;
}

}  // namespace ddv
