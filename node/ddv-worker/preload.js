'use strict';
// Loaded into every Node worker of a ddv site before the app (the master
// puts `--require <this file>` in NODE_OPTIONS; docs/node.md), so an
// unmodified app refuses a request whose Host another site serves with 421
// Misdirected Request before its own handlers see it (docs/isolation.md).
// It takes the master's {"ddv":"site_view"} messages out of process
// 'message' events, notes the host each newconn message says its
// connection was routed by, and guards every http, https and http2 server;
// nothing else. Outside ddv (no IPC channel, no DDV_SITE) it does nothing.
if (typeof process.send === 'function' && process.env.DDV_SITE) {
  require('./lib/host_check').installGuard(process);
}
