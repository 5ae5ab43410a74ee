// Fuzzes HostChecker::CheckRequest, which every worker runs on each
// request's target and Host (client bytes): never a crash, and the promises
// the 421 check relies on: the verdict depends on the normal form only (case
// and a trailing dot do not change it), an absolute-form target decides
// whatever the Host field says, and an empty name is never misdirected.
// Input: the target, a newline, the Host value.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "src/route/host_check.h"
#include "tests/fuzz/fuzz_check.h"

namespace ddv {
namespace route {
namespace {

const HostChecker& Checker(bool is_default) {
  static const HostChecker* const checkers[2] = {
      [] {
        ListenerHosts hosts;
        hosts.own = {"a.test", "*.w.test", "127.0.0.1"};
        hosts.others = {"b.w.test", "*.x.w.test"};
        return new HostChecker(*HostChecker::Create(hosts));
      }(),
      [] {
        ListenerHosts hosts;
        hosts.is_default = true;
        hosts.others = {"a.test", "*.b.test"};
        return new HostChecker(*HostChecker::Create(hosts));
      }(),
  };
  return *checkers[is_default ? 1 : 0];
}

void CheckOne(const HostChecker& checker, absl::string_view target,
              absl::string_view host) {
  const HostVerdict verdict = checker.CheckRequest(target, host);
  bool invalid = false;
  const absl::string_view authority = RequestAuthority(target, host, &invalid);
  FUZZ_CHECK(authority.data() == nullptr || authority.empty() ||
             (authority.data() >= target.data() &&
              authority.data() + authority.size() <=
                  target.data() + target.size()) ||
             (authority.data() >= host.data() &&
              authority.data() + authority.size() <=
                  host.data() + host.size()));
  if (invalid) {
    FUZZ_CHECK(verdict == HostVerdict::kInvalid);
    return;
  }
  FUZZ_CHECK(verdict == checker.Check(authority));
  if (authority.empty()) FUZZ_CHECK(verdict == HostVerdict::kAllowed);
  // Case never matters.
  const std::string upper = absl::AsciiStrToUpper(authority);
  FUZZ_CHECK(checker.Check(upper) == verdict);
  // An origin-form request decides by Host alone.
  if (!target.empty() && target[0] == '/') {
    FUZZ_CHECK(verdict == checker.Check(host));
  }
}

}  // namespace
}  // namespace route
}  // namespace ddv

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view target = input.substr(0, newline);
  const absl::string_view host =
      newline == absl::string_view::npos ? absl::string_view()
                                         : input.substr(newline + 1);
  for (bool is_default : {false, true}) {
    ddv::route::CheckOne(ddv::route::Checker(is_default), target, host);
  }
  return 0;
}
