// What the primary loop and the shards both write into a handoff entry (and
// the primary reads back from a dead worker's channel): the protocol byte
// for a listener's protocol, and the entry for a connection.
#ifndef DDV_SRC_MASTER_WIRE_PROTOCOL_H_
#define DDV_SRC_MASTER_WIRE_PROTOCOL_H_

#include <cstdint>
#include <string>

#include "src/config/config.h"
#include "src/handoff/wire.h"
#include "src/master/connection.h"

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

// The entry for connection `c`, accepted on a `protocol` listener;
// `connection_id` names it in acknowledgements.
inline void FillHandoffEntry(const Connection& c, uint64_t connection_id,
                             config::Protocol protocol,
                             handoff::HandoffEntry* e) {
  e->connection_id = connection_id;
  e->listener_index = c.listener;
  e->site_index = c.site;
  e->protocol = WireProtocol(protocol);
  e->accept_time_ns = c.accept_ns;
  e->host = std::string(c.host.view());
  e->alpn = std::string(handoff::TruncateAlpnList(c.alpn));
  e->proxy = c.proxy;
  e->skip_bytes = c.skip_bytes;
  e->master_fd = c.fd.get();
}

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_WIRE_PROTOCOL_H_
