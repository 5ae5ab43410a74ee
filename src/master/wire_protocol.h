// The protocol byte a handoff entry carries for a listener's protocol: what
// the primary loop and the shards both write, and the primary reads back
// from a dead worker's channel.
#ifndef DDV_SRC_MASTER_WIRE_PROTOCOL_H_
#define DDV_SRC_MASTER_WIRE_PROTOCOL_H_

#include "src/config/config.h"
#include "src/handoff/wire.h"

namespace ddv {
namespace master {

inline handoff::Protocol WireProtocol(config::Protocol protocol) {
  switch (protocol) {
    case config::Protocol::kHttp:
      return handoff::Protocol::kHttp;
    case config::Protocol::kTls:
      return handoff::Protocol::kTls;
    case config::Protocol::kTcp:
      return handoff::Protocol::kTcp;
  }
  return handoff::Protocol::kTcp;
}

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_WIRE_PROTOCOL_H_
