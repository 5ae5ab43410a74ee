'use strict';
// ddv's messages on the cluster channel: hello, ping/pong, the
// update_server_conf RPC, messages between workers, and none of them ever
// reaching the app's own 'message' listeners.
const assert = require('assert');
const test = require('node:test');
const { startWorker } = require('../fixtures/primary');

test('hello first, then every ping answered with its seq', async () => {
  const w = await startWorker('app.js');
  try {
    assert.deepStrictEqual(await w.ddv('hello'), { ddv: 'hello', version: 1 });
    const firstDdv = w.inbox.all.find((m) => m && m.ddv);
    assert.strictEqual(firstDdv.ddv, 'hello');
    w.worker.send({ ddv: 'ping', seq: 7 });
    w.worker.send({ ddv: 'ping', seq: 8 });
    assert.deepStrictEqual(await w.inbox.next((m) => m && m.ddv === 'pong' && m.seq === 8, 'pong 8'),
        { ddv: 'pong', seq: 8 });
    assert.deepStrictEqual(w.inbox.all.filter((m) => m && m.ddv === 'pong').map((m) => m.seq), [7, 8]);
  } finally {
    await w.stop();
  }
});

test('updateServerConf maps the original options onto update_server_conf', async () => {
  const w = await startWorker('app.js');
  try {
    w.worker.send({ cmd: 'update', conf: {
      defaultListen: 1,
      listen: [
        { type: 'tcp', host: 'A.example.com', port: 80 },
        { type: 'ssl', host: 'b.example.com', port: 443 },
        { type: 'tcp', host: 'a.example.com', port: 8080 },
        { type: 'tcp', port: 81 },  // no host: nothing to claim
      ],
      cpuLen: 2,
    } });
    const rpc = await w.ddv('rpc');
    assert.deepStrictEqual(rpc, {
      ddv: 'rpc', id: rpc.id, method: 'update_server_conf',
      body: { add_hosts: ['a.example.com', 'b.example.com'], default: true, processes: 2 },
    });
    assert.ok(Number.isInteger(rpc.id));
    assert.deepStrictEqual(await w.app((a) => a.updated, 'update result'),
        { updated: true, error: null, isError: false });

    // Each key is optional: absent options send nothing.
    w.worker.send({ cmd: 'update', conf: { cpuLen: 1 } });
    const second = await w.inbox.next((m) => m && m.ddv === 'rpc' && m.id !== rpc.id, 'second rpc');
    assert.deepStrictEqual(second.body, { processes: 1 });
  } finally {
    await w.stop();
  }
});

test("a refusal calls back with an Error carrying the master's reason", async () => {
  const reason = 'a.example.com is claimed by site b';
  const w = await startWorker('app.js', { onRpc: () => ({ ok: false, error: reason }) });
  try {
    w.worker.send({ cmd: 'update', conf: { listen: [{ host: 'a.example.com' }] } });
    assert.deepStrictEqual(await w.app((a) => a.updated, 'update result'),
        { updated: true, error: reason, isError: true });
  } finally {
    await w.stop();
  }
});

test('no answer calls back with a timeout Error; a late reply is ignored', async () => {
  const w = await startWorker('app.js', { env: { RPC_TIMEOUT_MS: '300' }, onRpc: () => null });
  try {
    const started = Date.now();
    w.worker.send({ cmd: 'update', conf: { defaultListen: false } });
    const rpc = await w.ddv('rpc');
    const result = await w.app((a) => a.updated, 'update result');
    assert.ok(Date.now() - started >= 250);
    assert.strictEqual(result.isError, true);
    assert.match(result.error, /did not answer update_server_conf within 300 ms/);
    w.worker.send({ ddv: 'reply', id: rpc.id, ok: true, body: {} });
    w.worker.send({ ddv: 'ping', seq: 1 });
    await w.ddv('pong');  // still alive, and no second callback:
    assert.strictEqual(w.inbox.all.filter((m) => m && m.app && m.app.updated).length, 1);
  } finally {
    await w.stop();
  }
});

test('invalid options call back with an Error without asking the master', async () => {
  const w = await startWorker('app.js');
  try {
    w.worker.send({ cmd: 'update', conf: { cpuLen: 0 } });
    const result = await w.app((a) => a.updated, 'update result');
    assert.match(result.error, /cpuLen must be an integer >= 1/);
    assert.strictEqual(w.inbox.all.filter((m) => m && m.ddv === 'rpc').length, 0);
  } finally {
    await w.stop();
  }
});

test('worker.send goes out as {"ddv":"send"}; an incoming message is a worker "message"', async () => {
  const w = await startWorker('app.js');
  try {
    w.worker.send({ cmd: 'send', site: 'b', body: { hi: [1, 2] }, worker: 2 });
    w.worker.send({ cmd: 'send', site: 'c', body: 'any' });
    assert.deepStrictEqual(await w.inbox.next((m) => m && m.ddv === 'send' && m.site === 'b', 'send b'),
        { ddv: 'send', site: 'b', worker: 2, body: { hi: [1, 2] } });
    assert.deepStrictEqual(await w.inbox.next((m) => m && m.ddv === 'send' && m.site === 'c', 'send c'),
        { ddv: 'send', site: 'c', worker: -1, body: 'any' });
    assert.deepStrictEqual(await w.app((a) => a.sent !== undefined, 'sent'), { sent: true });

    w.worker.send({ ddv: 'message', from: { site: 'b', worker: 1 }, body: { answer: 42 } });
    assert.deepStrictEqual(await w.app((a) => a.message !== undefined, 'message'),
        { message: { answer: 42 }, from: { site: 'b', worker: 1 } });
  } finally {
    await w.stop();
  }
});

test("ddv's messages never reach the app's own 'message' listeners", async () => {
  const w = await startWorker('app.js', { onRpc: () => ({ ok: true, body: {} }) });
  try {
    await w.ddv('hello');
    w.worker.send({ ddv: 'ping', seq: 1 });
    w.worker.send({ ddv: 'message', from: { site: 'b', worker: 0 }, body: 1 });
    w.worker.send({ ddv: 'reply', id: 999, ok: true, body: {} });  // nobody asked
    w.worker.send({ ddv: 'from-a-newer-master', x: 1 });
    w.worker.send({ cmd: 'update', conf: { defaultListen: true } });
    await w.app((a) => a.updated, 'update result');
    w.worker.send({ cmd: 'seen' });
    const { seen, seenByCluster } = await w.app((a) => a.seen, 'seen');
    const expected = [{ cmd: 'update', conf: { defaultListen: true } }, { cmd: 'seen' }];
    assert.deepStrictEqual(seen, expected);
    assert.deepStrictEqual(seenByCluster, expected);
  } finally {
    await w.stop();
  }
});

test('a second worker.server is an error event; the first keeps serving', async () => {
  const { get } = require('../fixtures/primary');
  const w = await startWorker('app.js');
  try {
    await w.listening();
    w.worker.send({ cmd: 'second-server' });
    assert.match((await w.app((a) => a.error, 'error')).error, /already set/);
    assert.strictEqual((await get(w.port)).status, 200);
  } finally {
    await w.stop();
  }
});

test("drain: the master's disconnect closes the server and the worker exits 0", async () => {
  // KEEP_TIMER: an interval that alone would keep a stock worker alive.
  const w = await startWorker('app.js', { env: { KEEP_TIMER: '1' } });
  await w.listening();
  w.worker.disconnect();
  const exit = await exitWithin(w, 5000);
  assert.deepStrictEqual(exit, { code: 0, signal: null });
});

test('channel EOF: the worker exits at once', async () => {
  const w = await startWorker('app.js');
  await w.listening();
  w.worker.process.disconnect();  // close the channel without a drain
  const exit = await exitWithin(w, 5000);
  assert.deepStrictEqual(exit, { code: 0, signal: null });
});

// The worker's exit, or a kill and 'still running' after `ms`.
async function exitWithin(w, ms) {
  let timer;
  const late = new Promise((resolve) => { timer = setTimeout(resolve, ms, 'still running'); });
  const exit = await Promise.race([w.exited, late]);
  clearTimeout(timer);
  if (exit === 'still running') await w.stop();
  return exit;
}
