'use strict';
// worker.server = ... receives the site's connections from the master, for a
// bare http app, an express app and the original README's own example.
const assert = require('assert');
const test = require('node:test');
const { startWorker, get } = require('../fixtures/primary');

test('a bare http app answers through the cluster port', async () => {
  const w = await startWorker('app.js', { env: { DDV_WORKER_INDEX: '3', DDV_SITE: 'shop' } });
  try {
    assert.strictEqual(await w.listening(), w.port);  // the requested port
    const res = await get(w.port, '/x?y=1');
    assert.strictEqual(res.status, 200);
    const body = JSON.parse(res.body);
    assert.deepStrictEqual(
        { id: body.id, siteId: body.siteId, standalone: body.standalone, url: body.url, port: body.port },
        { id: 3, siteId: 'shop', standalone: false, url: '/x?y=1', port: w.port });
  } finally {
    await w.stop();
  }
});

test('an express app answers its routes', async () => {
  const w = await startWorker('app.js', { env: { APP_KIND: 'express' } });
  try {
    await w.listening();
    const res = await get(w.port, '/hello/ddv');
    assert.strictEqual(res.status, 200);
    assert.strictEqual(res.headers['x-powered-by'], 'Express');
    assert.deepStrictEqual(JSON.parse(res.body), { hello: 'ddv', id: 0 });
  } finally {
    await w.stop();
  }
});

test("the original README's example (testworker.js + index.js) runs as is", async () => {
  const rpcs = [];
  const w = await startWorker('readme/index.js', {
    onRpc: (rpc) => { rpcs.push(rpc); return { ok: true, body: {} }; },
  });
  try {
    assert.strictEqual(await w.listening(), w.port);
    const rpc = await w.ddv('rpc');
    assert.deepStrictEqual(rpc, {
      ddv: 'rpc', id: rpc.id, method: 'update_server_conf',
      body: { add_hosts: ['rpc.iceovideo.ping-qu.com'], default: false, processes: 1 },
    });
    const res = await get(w.port, '/');
    assert.strictEqual(res.status, 404);  // an express app without routes
    assert.strictEqual(res.headers['x-powered-by'], 'Express');
    await waitFor(() => w.output().includes('[wid:0]更新服务器监听配置参数成功!'), w.output);
    assert.strictEqual(rpcs.length, 1);
  } finally {
    await w.stop();
  }
});

test("the README's example logs the master's refusal", async () => {
  const w = await startWorker('readme/index.js', {
    onRpc: () => ({ ok: false, error: 'rpc.iceovideo.ping-qu.com belongs to site b' }),
  });
  try {
    await w.listening();
    await waitFor(() => w.output().includes('更新服务器监听配置参数失败!'), w.output);
    assert.strictEqual((await get(w.port, '/')).status, 404);
  } finally {
    await w.stop();
  }
});

async function waitFor(condition, describe, timeoutMs = 5000) {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out; output: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
