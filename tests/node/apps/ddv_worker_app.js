// An app written for ddv-worker: worker.server = http.createServer(app),
// updateServerConf and worker-to-worker messages through the master.
'use strict';
const http = require('http');
const url = require('url');
const worker = require(process.env.DDV_WORKER_PACKAGE);

let lastMessage = null;
worker.on('message', (msg, from) => { lastMessage = {msg, from}; });
worker.on('error', (e) => console.error('worker error', e));

worker.server = http.createServer((req, res) => {
  const {pathname, query} = url.parse(req.url, true);
  const reply = (code, obj) => {
    // Not writeHead: with the header sent first Node would chunk the body.
    res.statusCode = code;
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify(obj));
  };
  if (pathname === '/claim') {
    worker.updateServerConf({listen: [{type: 'tcp', host: query.host, port: 80}]},
                            (err) => reply(200, {ok: !err, error: err ? err.message : null}));
  } else if (pathname === '/send') {
    worker.send(query.site, {text: query.text, from: process.env.DDV_SITE});
    reply(200, {sent: true});
  } else if (pathname === '/last-message') {
    reply(200, lastMessage);
  } else {
    reply(200, {site: worker.siteId, id: worker.id, pid: process.pid,
                host: req.headers.host});
  }
});
