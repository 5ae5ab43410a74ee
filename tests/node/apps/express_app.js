// An unmodified express app (express resolved through NODE_PATH).
'use strict';
const express = require('express');

const app = express();
app.get('/hello/:name', (req, res) => {
  res.json({hello: req.params.name, site: process.env.DDV_SITE,
            pid: process.pid, host: req.get('host')});
});
app.listen(Number(process.env.PORT));
