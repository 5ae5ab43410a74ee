// An unmodified Node http app: it only calls server.listen(PORT). Under ddv
// (runtime = "node") Node's own cluster code receives the connections.
'use strict';
const http = require('http');

const options = {};
if (process.env.HEADERS_TIMEOUT_MS) {
  options.headersTimeout = Number(process.env.HEADERS_TIMEOUT_MS);
  options.requestTimeout = Number(process.env.HEADERS_TIMEOUT_MS) * 2;
  options.connectionsCheckingInterval = 100;
}
const server = http.createServer(options, (req, res) => {
  const body = `site=${process.env.DDV_SITE} worker=${process.env.DDV_WORKER_INDEX} ` +
      `pid=${process.pid} host=${req.headers.host || '-'} ` +
      `peer=${req.socket.remoteAddress}:${req.socket.remotePort} ` +
      `tag=${process.env.APP_TAG || '-'}\n`;
  if (req.url.startsWith('/slow/')) {
    // Keeps the response open for the given milliseconds (drain tests).
    setTimeout(() => res.end(body), Number(req.url.slice(6)));
    return;
  }
  res.end(body);
});
if (process.env.MAX_CONNECTIONS) {
  server.maxConnections = Number(process.env.MAX_CONNECTIONS);
}
server.listen(Number(process.env.PORT), () => {
  const address = server.address();
  console.log(`listening port=${address.port} family=${address.family}`);
});
