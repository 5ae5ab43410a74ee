// A stock http app that loads the ddv-worker package, so connections that
// came through an L4 tier speaking PROXY show the client's address on the
// socket, and the header's TLVs as socket.proxy.
'use strict';
const http = require('http');
require(process.env.DDV_WORKER_PACKAGE);

const server = http.createServer((req, res) => {
  const s = req.socket;
  res.setHeader('Content-Type', 'application/json');
  res.end(JSON.stringify({
    remoteAddress: s.remoteAddress,
    remotePort: s.remotePort,
    remoteFamily: s.remoteFamily,
    localAddress: s.localAddress,
    localPort: s.localPort,
    proxy: s.proxy || null,
    url: req.url,
  }));
});
server.listen(Number(process.env.PORT));
