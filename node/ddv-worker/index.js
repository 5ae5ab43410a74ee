'use strict';
// require('ddv-worker'): one worker per process, even when several copies of
// this package are installed (each would otherwise say hello to the master and
// take the ddv messages again).
const { DdvWorker } = require('./lib/worker');

const key = Symbol.for('ddv-worker');
if (!process[key]) process[key] = new DdvWorker(process.env, process);
module.exports = process[key];
