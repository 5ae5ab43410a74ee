// Canned refusals, built once. Bodies are one line so a person with curl sees
// why the front door refused.
#include "src/master/error_response.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace ddv {
namespace master {
namespace {

std::string HttpResponse(absl::string_view status, absl::string_view body) {
  return absl::StrCat("HTTP/1.1 ", status,
                      "\r\nContent-Type: text/plain\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

// RFC 8446 §6: an alert record is ContentType alert(21), legacy version 3.3,
// length 2, then level fatal(2) and the description.
constexpr char kAlertUnrecognizedName[] = {0x15, 0x03, 0x03, 0x00,
                                           0x02, 0x02, 112};
constexpr char kAlertInternalError[] = {0x15, 0x03, 0x03, 0x00,
                                        0x02, 0x02, 80};

}  // namespace

absl::string_view HttpRefusal(Refusal refusal) {
  static const std::string* const k421 = new std::string(HttpResponse(
      "421 Misdirected Request", "ddv: no site serves this host name\n"));
  static const std::string* const k503 = new std::string(HttpResponse(
      "503 Service Unavailable", "ddv: the site has no live worker\n"));
  static const std::string* const k408 = new std::string(HttpResponse(
      "408 Request Timeout", "ddv: request head not received in time\n"));
  static const std::string* const k431 = new std::string(
      HttpResponse("431 Request Header Fields Too Large",
                   "ddv: request head is too large\n"));
  static const std::string* const k400 = new std::string(
      HttpResponse("400 Bad Request", "ddv: malformed request head\n"));
  switch (refusal) {
    case Refusal::kNoSite:
      return *k421;
    case Refusal::kUnavailable:
      return *k503;
    case Refusal::kTimeout:
      return *k408;
    case Refusal::kTooLarge:
      return *k431;
    case Refusal::kMalformed:
      return *k400;
  }
  return {};
}

absl::string_view TlsRefusal(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNoSite:
      return absl::string_view(kAlertUnrecognizedName,
                               sizeof(kAlertUnrecognizedName));
    case Refusal::kUnavailable:
      return absl::string_view(kAlertInternalError,
                               sizeof(kAlertInternalError));
    case Refusal::kTimeout:
    case Refusal::kTooLarge:
    case Refusal::kMalformed:
      return {};  // RFC 8446 gives no alert that helps here: just close.
  }
  return {};
}

}  // namespace master
}  // namespace ddv
