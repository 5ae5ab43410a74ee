// Path `cluster`: Node's own cluster primary forking WORKERS (default 1)
// workers of the app given as argv[2]. Scheduling is Node's default (round
// robin on Linux: the primary accepts and hands each connection to a
// worker); the policy in use is printed so the driver can check it.
'use strict';
const cluster = require('cluster');
const path = require('path');

const app = path.resolve(process.argv[2]);
const n = Number(process.env.WORKERS || 1);
cluster.setupPrimary({exec: app});

let listening = 0;
cluster.on('listening', (worker, address) => {
  if (++listening === n) {
    const policy = cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none';
    console.log(`ready workers=${n} policy=${policy} port=${address.port}`);
  }
});
cluster.on('exit', (worker, code, signal) => {
  console.log(`worker pid=${worker.process.pid} exited code=${code} signal=${signal}`);
});
process.on('SIGTERM', () => {
  for (const worker of Object.values(cluster.workers)) worker.process.kill();
  process.exit(0);
});
for (let i = 0; i < n; i++) cluster.fork();
