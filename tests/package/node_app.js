'use strict';
// A Node.js site run from the installed package: the installed master runs
// it as a cluster worker, and require('ddv-worker') resolves to
// /usr/lib/ddv/node/ddv-worker through the site's NODE_PATH.
const http = require('http');
const worker = require('ddv-worker');

worker.server = http.createServer((req, res) => {
  res.end(`node_app site=${worker.siteId} host=${req.headers.host}\n`);
});
