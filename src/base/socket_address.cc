// ParseSocketAddress is strict ("IPv4:PORT" / "[IPv6]:PORT" only) and its
// messages say how to write the address instead; FormatSocketAddress is
// its inverse for the families it accepts.
#include "src/base/socket_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace ddv {
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

absl::StatusOr<SocketAddress> ParseSocketAddress(absl::string_view text) {
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

  SocketAddress out;
  std::memset(&out.addr, 0, sizeof(out.addr));
  std::string host_string(host);  // inet_pton wants a NUL-terminated string
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

absl::StatusOr<std::string> FormatSocketAddress(
    const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN];
  if (address.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(address);
    inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text));
    return absl::StrCat(text, ":", ntohs(sin.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(address);
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; print
    // them as the IPv4 clients they are.
    if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
      inet_ntop(AF_INET, &sin6.sin6_addr.s6_addr[12], text, sizeof(text));
      return absl::StrCat(text, ":", ntohs(sin6.sin6_port));
    }
    inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text));
    return absl::StrCat("[", text, "]:", ntohs(sin6.sin6_port));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("not an IP socket address (family ", address.ss_family,
                   ")"));
}

int SocketAddressPort(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return -1;
}

bool SameSocketAddress(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    const auto* y = reinterpret_cast<const sockaddr_in*>(&b);
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(&b);
    return x->sin6_port == y->sin6_port &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

}  // namespace ddv
