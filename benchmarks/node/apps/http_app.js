// The bare `http` app: a short fixed body. Unmodified for every path: it
// only calls server.listen(PORT, '127.0.0.1'), which is a real listen when
// run alone and goes to the cluster primary (Node's, or ddv's master) when
// run as a cluster worker.
'use strict';
const http = require('http');

const server = http.createServer((req, res) => {
  res.end('hello\n');
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`listening pid=${process.pid} port=${server.address().port}`);
});
