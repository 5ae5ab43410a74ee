// An unmodified Node app: it only calls server.listen(PORT). Run under a
// cluster primary (NODE_UNIQUE_ID set), Node's own cluster code asks the
// primary for the server and receives connections over the IPC channel.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  const body = `pid=${process.pid} host=${req.headers.host} ` +
      `peer=${req.socket.remoteAddress}:${req.socket.remotePort}\n`;
  res.end(body);
});
if (process.env.MAX_CONNECTIONS) {
  server.maxConnections = Number(process.env.MAX_CONNECTIONS);
}
server.listen(Number(process.env.PORT || 8123), () => {
  process.stderr.write(`listening ${JSON.stringify(server.address())}\n`);
});
