// The answer every sniffer gives about a byte prefix. "Need more" is not an
// error, so this is an enum rather than an absl::Status: callers switch on it.
#ifndef DDV_SRC_SNIFF_SNIFF_STATUS_H_
#define DDV_SRC_SNIFF_SNIFF_STATUS_H_

namespace ddv {
namespace sniff {

enum class SniffStatus {
  kNeedMore,         // a prefix of something valid; peek again with more bytes
  kFound,            // parsed far enough to route (the name may be absent)
  kNotThisProtocol,  // the first bytes rule this protocol out
  kMalformed,        // claims to be this protocol but breaks its grammar
  kTooLarge,         // no decision within the byte cap
};

inline const char* SniffStatusName(SniffStatus status) {
  switch (status) {
    case SniffStatus::kNeedMore:
      return "need_more";
    case SniffStatus::kFound:
      return "found";
    case SniffStatus::kNotThisProtocol:
      return "not_this_protocol";
    case SniffStatus::kMalformed:
      return "malformed";
    case SniffStatus::kTooLarge:
      return "too_large";
  }
  return "unknown";
}

}  // namespace sniff
}  // namespace ddv

#endif  // DDV_SRC_SNIFF_SNIFF_STATUS_H_
