// ParseListenAddress: strict "IPv4:PORT" / "[IPv6]:PORT" parsing with
// messages that say how to write the address instead.
#include "src/config/listen_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ddv {
namespace config {
namespace {

absl::Status AddressError(absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("address \"", text, "\": ", what));
}

// Digits only, at most 5 of them, at most 65535.
bool ParsePort(absl::string_view digits, int* port) {
  if (digits.empty() || digits.size() > 5) return false;
  int value = 0;
  for (char c : digits) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  if (value > 65535) return false;
  *port = value;
  return true;
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError(
        "address is empty: write IP:PORT, e.g. \"0.0.0.0:80\" or \"[::]:443\"");
  }
  absl::string_view host;
  absl::string_view port_text;
  bool ipv6 = false;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return AddressError(text, "missing \"]\" after the IPv6 address");
    }
    host = text.substr(1, close - 1);
    absl::string_view rest = text.substr(close + 1);
    if (rest.empty()) {
      return AddressError(
          text, absl::StrCat("missing port: write \"[", host, "]:PORT\""));
    }
    if (rest.front() != ':') {
      return AddressError(text, "expected \":PORT\" after \"]\"");
    }
    port_text = rest.substr(1);
    ipv6 = true;
  } else {
    size_t colon = text.find(':');
    if (colon == absl::string_view::npos) {
      return AddressError(
          text, absl::StrCat("missing port: write \"", text, ":PORT\""));
    }
    if (text.find(':', colon + 1) != absl::string_view::npos) {
      return AddressError(
          text, "IPv6 addresses must be in brackets, e.g. \"[::1]:443\"");
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }

  int port = 0;
  if (!ParsePort(port_text, &port)) {
    return AddressError(text,
                        absl::StrCat("port \"", port_text,
                                     "\" must be a number from 0 to 65535"));
  }
  if (host.empty()) {
    return AddressError(
        text, absl::StrCat("missing IP address: write \"0.0.0.0:", port,
                           "\" or \"[::]:", port, "\""));
  }

  ListenAddress out;
  std::memset(&out.addr, 0, sizeof(out.addr));
  std::string host_string(host);
  if (ipv6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host_string.c_str(), &sin6->sin6_addr) != 1) {
      return AddressError(
          text, absl::StrCat("\"", host, "\" is not an IPv6 address"));
    }
    out.addr_len = sizeof(sockaddr_in6);
    return out;
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(&out.addr);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host_string.c_str(), &sin->sin_addr) != 1) {
    bool looks_like_name = false;
    for (char c : host) {
      if (absl::ascii_isalpha(static_cast<unsigned char>(c))) {
        looks_like_name = true;
      }
    }
    if (looks_like_name) {
      return AddressError(text,
                          absl::StrCat("host names are not accepted, use an IP "
                                       "address, e.g. \"127.0.0.1:",
                                       port, "\""));
    }
    return AddressError(text,
                        absl::StrCat("\"", host, "\" is not an IPv4 address"));
  }
  out.addr_len = sizeof(sockaddr_in);
  return out;
}

bool SameListenAddress(const ListenAddress& a, const ListenAddress& b) {
  if (a.addr.ss_family != b.addr.ss_family) return false;
  if (a.addr.ss_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a.addr);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b.addr);
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.addr.ss_family == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a.addr);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b.addr);
    return x->sin6_port == y->sin6_port &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

int ListenPort(const ListenAddress& address) {
  if (address.addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address.addr)->sin_port);
  }
  if (address.addr.ss_family == AF_INET6) {
    return ntohs(
        reinterpret_cast<const sockaddr_in6*>(&address.addr)->sin6_port);
  }
  return -1;
}

}  // namespace config
}  // namespace ddv
