'use strict';
// Standalone (DDV_SITE unset, as when running `node index.js` by hand): the
// server listens on config.listen's ports or PORT, and the error events work
// as the original README describes.
const assert = require('assert');
const childProcess = require('child_process');
const net = require('net');
const path = require('path');
const test = require('node:test');
const { freePort, get } = require('../fixtures/primary');

// Forks fixtures/app.js without any DDV_* variable. The IPC channel is only
// how the test reads what the app reports; without DDV_SITE the package
// treats the process as standalone anyway.
function startStandalone(env) {
  const childEnv = { ...process.env, ...env };
  for (const name of Object.keys(childEnv)) {
    if (name.startsWith('DDV_')) delete childEnv[name];
  }
  const child = childProcess.fork(path.join(__dirname, '../fixtures/app.js'), [],
      { env: childEnv, silent: true });
  const reports = [];
  const waiters = [];
  child.on('message', (m) => {
    if (!m || !m.app) return;
    reports.push(m.app);
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    child,
    async report(match, what) {
      const end = Date.now() + 5000;
      for (;;) {
        const found = reports.find(match);
        if (found) return found;
        if (Date.now() > end) assert.fail(`no ${what}; got ${JSON.stringify(reports)}`);
        await new Promise((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

test('standalone listens on PORT; ids say so; no master to update or send to', async () => {
  const port = await freePort();
  const app = startStandalone({ PORT: String(port) });
  try {
    assert.strictEqual((await app.report((r) => r.listening, 'listening')).listening, port);
    const body = JSON.parse((await get(port, '/')).body);
    assert.deepStrictEqual({ id: body.id, siteId: body.siteId, standalone: body.standalone },
        { id: 0, siteId: null, standalone: true });
    app.child.send({ cmd: 'update', conf: { cpuLen: 2 } });
    const result = await app.report((r) => r.updated, 'update result');
    assert.strictEqual(result.isError, true);
    assert.match(result.error, /not running under ddv/);
    app.child.send({ cmd: 'send', site: 'b', body: 1 });
    assert.deepStrictEqual(await app.report((r) => r.sent !== undefined, 'sent'), { sent: false });
  } finally {
    await app.stop();
  }
});

test("standalone listens on every port of config.listen, not PORT", async () => {
  const [p1, p2, unused] = [await freePort(), await freePort(), await freePort()];
  const config = { listen: [
    { type: 'tcp', host: 'a.example.com', port: p1 },
    { type: 'tcp', host: 'b.example.com', port: p2 },
    { type: 'tcp', host: 'c.example.com', port: p1 },
  ] };
  const app = startStandalone({ PORT: String(unused), CONFIG_JSON: JSON.stringify(config) });
  try {
    await app.report((r) => r.listening, 'listening');
    assert.strictEqual(JSON.parse((await get(p1, '/one')).body).url, '/one');
    assert.strictEqual(JSON.parse((await get(p2, '/two')).body).url, '/two');
    await assert.rejects(get(unused, '/'), { code: 'ECONNREFUSED' });
  } finally {
    await app.stop();
  }
});

test("a server error becomes 'server::error'", async () => {
  const busy = net.createServer().listen(0);
  await new Promise((resolve) => busy.once('listening', resolve));
  const app = startStandalone({ PORT: String(busy.address().port) });
  try {
    assert.deepStrictEqual(await app.report((r) => r.serverError, 'server error'),
        { serverError: 'EADDRINUSE' });
  } finally {
    await app.stop();
    busy.close();
  }
});

test("a client's bad request becomes 'socket::error' and still gets Node's 400", async () => {
  const port = await freePort();
  const app = startStandalone({ PORT: String(port) });
  try {
    await app.report((r) => r.listening, 'listening');
    const answer = await new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('NOT HTTP\r\n\r\n'));
      let data = '';
      socket.on('data', (d) => { data += d; });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
    assert.match((await app.report((r) => r.socketError, 'socket error')).socketError, /^HPE_/);
  } finally {
    await app.stop();
  }
});

test("with no listener at all, a server error is uncaught, as EventEmitter's 'error' is", async () => {
  const busy = net.createServer().listen(0);
  await new Promise((resolve) => busy.once('listening', resolve));
  const script = `const worker = require(${JSON.stringify(path.join(__dirname, '..'))});
      worker.server = require('http').createServer();`;
  const env = { ...process.env, PORT: String(busy.address().port) };
  delete env.DDV_SITE;
  const result = childProcess.spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
  busy.close();
  assert.notStrictEqual(result.status, 0);
  assert.match(result.stderr, /EADDRINUSE/);
});
