// An unmodified Node https app with the site's certificate (DDV_TLS_CERT /
// DDV_TLS_KEY, which ddv passes to every worker of a site that has one).
'use strict';
const fs = require('fs');
const https = require('https');

const server = https.createServer({
  cert: fs.readFileSync(process.env.DDV_TLS_CERT.split(':')[0]),
  key: fs.readFileSync(process.env.DDV_TLS_KEY.split(':')[0]),
}, (req, res) => {
  res.end(`site=${process.env.DDV_SITE} pid=${process.pid} ` +
          `host=${req.headers.host} sni=${req.socket.servername} tls=1\n`);
});
server.listen(Number(process.env.PORT));
