// The express app: one route returning a short text. express comes from
// NODE_PATH (node/ddv-worker/node_modules, installed by `npm ci` there).
'use strict';
const express = require('express');

const app = express();
app.get('/', (req, res) => {
  res.type('text/plain').send('hello\n');
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.log(`listening pid=${process.pid} port=${server.address().port}`);
});
