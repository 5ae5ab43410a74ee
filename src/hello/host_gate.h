// HostGate: how ddv_hello's HTTP side asks whether a request's host is one
// the master routes to this site (docs/isolation.md). MasterLink answers
// with the worker library's site view; standalone there is no gate and
// nothing is checked. An interface, so the HTTP code needs no worker library.
#ifndef DDV_SRC_HELLO_HOST_GATE_H_
#define DDV_SRC_HELLO_HOST_GATE_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "src/route/host_check.h"

namespace ddv {
namespace hello {

class HostGate {
 public:
  virtual ~HostGate() = default;
  // Changes whenever the answers may change (a new site view): a verdict
  // cached before is stale once this moved.
  virtual uint64_t generation() const = 0;
  // `listener_key` is ConnectionInfo::listener_key; `target` the request
  // target, `host` the Host field value ("" when absent).
  virtual route::HostVerdict Check(uint32_t listener_key,
                                   absl::string_view target,
                                   absl::string_view host) = 0;
};

}  // namespace hello
}  // namespace ddv

#endif  // DDV_SRC_HELLO_HOST_GATE_H_
