'use strict';
// preload.js in an app that never heard of ddv: under a real Node cluster
// primary (fixtures/primary.js), the master's site view arrives as a ddv
// message, and a request for a host that is not the site's is answered 421
// + close before the app sees it. The app's own 'message' listeners never
// see the view.
const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const http2 = require('http2');
const net = require('net');
const os = require('os');
const path = require('path');
const test = require('node:test');
const tls = require('tls');
const { startWorker } = require('../fixtures/primary');

const PRELOAD = ['--require', path.resolve(__dirname, '..', 'preload.js')];

function siteView(port, fields = {}) {
  return {
    ddv: 'site_view', master: 'm1', version: 1, part: 0, last: true, strict: true,
    listeners: [{ index: 0, address: `127.0.0.1:${port}`, retired: false, default: false,
      own: ['a.test', '*.w.test'], others: ['x.w.test'] }],
    ...fields,
  };
}

// Sends one request per host, pipelined on one connection, the last with
// Connection: close; resolves with everything the server sent until it
// closed (a refusal closes earlier). Bounded: 10 s.
function pipelined(port, hosts) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve(data); }, 10000);
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    socket.on('end', () => { clearTimeout(timer); resolve(data); });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.write(hosts.map((h, i) => `GET / HTTP/1.1\r\nHost: ${h}\r\n` +
        (i + 1 === hosts.length ? 'Connection: close\r\n' : '') + '\r\n').join(''));
  });
}

// Status codes in order (a body need not end in a newline, so a status
// line need not start one).
function statuses(text) {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

// The view travels on another channel than the connections: wait until
// the app's process has it (b.test refused), bounded.
async function untilGuarded(port) {
  for (let i = 0; i < 100; i++) {
    const text = await pipelined(port, ['x.w.test']);
    if (statuses(text)[0] === 421) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('the site view never took effect');
}

for (const kind of ['http', 'express']) {
  test(`an unmodified ${kind} app answers 421 for another site's host`, async () => {
    const w = await startWorker('stock_app.js', { env: { APP_KIND: kind }, execArgv: PRELOAD });
    try {
      const port = await w.listening();
      w.worker.send(siteView(port));
      await untilGuarded(port);
      const text = await pipelined(port, ['a.test', 'b.test', 'a.test']);
      assert.deepStrictEqual(statuses(text), [200, 421], text);
      assert.match(text, /Connection: close/i);
      assert.match(text, /host=a\.test/);
      assert.deepStrictEqual(statuses(await pipelined(port, ['y.w.test', 'x.w.test'])), [200, 421]);
      assert.deepStrictEqual(statuses(await pipelined(port, ['a.test:99', 'bad host'])), [200, 400]);
      // strict_host = false: nothing is refused.
      w.worker.send(siteView(port, { version: 2, strict: false }));
      for (let i = 0; i < 100 && statuses(await pipelined(port, ['b.test']))[0] !== 200; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepStrictEqual(statuses(await pipelined(port, ['b.test', 'c.test'])), [200, 200]);
      w.worker.send({ cmd: 'seen' });
      const seen = await w.app((m) => m.seen, 'seen');
      assert.ok(!seen.seen.some((m) => m && m.ddv), JSON.stringify(seen.seen));
      assert.ok(!seen.hostsSeen.includes('x.w.test'), JSON.stringify(seen.hostsSeen));
      assert.ok(!seen.hostsSeen.includes('bad host'));
    } finally {
      await w.stop();
    }
  });
}

test('an http2 app: a stream for another site\'s authority gets 421, the session goes on', async () => {
  const w = await startWorker('stock_app.js', { env: { APP_KIND: 'http2' }, execArgv: PRELOAD });
  try {
    const port = await w.listening();
    w.worker.send(siteView(port));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const get = (authority) => new Promise((resolve, reject) => {
      const req = session.request({ ':path': '/', ':authority': authority });
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (headers) => {
        req.on('data', (d) => { body += d; });
        req.on('end', () => resolve({ status: headers[':status'], body }));
      });
      req.on('error', reject);
      req.end();
    });
    try {
      let first;
      for (let i = 0; i < 100; i++) {
        first = await get('b.test');
        if (first.status === 421) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.strictEqual(first.status, 421);
      assert.deepStrictEqual(await get('a.test'), { status: 200, body: 'host=a.test\n' });
      assert.strictEqual((await get('x.w.test')).status, 421);
      assert.strictEqual((await get('y.w.test')).status, 200);
    } finally {
      session.close();
    }
  } finally {
    await w.stop();
  }
});

test('with the ddv-worker package too, the view reaches the one guard', async () => {
  const w = await startWorker('app.js', { execArgv: PRELOAD });
  try {
    const port = await w.listening();
    w.worker.send(siteView(port));
    await untilGuarded(port);
    assert.deepStrictEqual(statuses(await pipelined(port, ['a.test', 'b.test'])), [200, 421]);
    w.worker.send({ cmd: 'seen' });
    const seen = await w.app((m) => m.seen, 'seen');
    assert.ok(!seen.seen.some((m) => m && m.ddv), JSON.stringify(seen.seen));
  } finally {
    await w.stop();
  }
});

test('without the preload the ddv-worker package guards its server itself', async () => {
  const w = await startWorker('app.js');
  try {
    const port = await w.listening();
    w.worker.send(siteView(port));
    await untilGuarded(port);
    assert.deepStrictEqual(statuses(await pipelined(port, ['a.test', 'b.test'])), [200, 421]);
  } finally {
    await w.stop();
  }
});

// The first-request rule (docs/isolation.md). The view says a.test is
// another site's now (a reload moved it), and the worker holds it before
// the connection's first request is read, as when the view came while the
// request waited unread. The primary says each connection was routed by
// a.test, as ddv's master does in its newconn message.
function movedView(port) {
  return siteView(port, { version: 2, listeners: [{ index: 0,
    address: `127.0.0.1:${port}`, retired: false, default: false,
    own: ['*.w.test'], others: ['a.test', 'x.w.test'] }] });
}

// A throwaway self-signed certificate; null without an openssl command.
function makeCertificate() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddv-preload-'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    childProcess.execFileSync('openssl', ['req', '-x509', '-newkey', 'ec',
      '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=a.test', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  } catch (err) {
    return null;
  }
  return { DDV_TLS_CERT: cert, DDV_TLS_KEY: key };
}

// pipelined() over TLS with SNI `servername`.
function tlsPipelined(port, servername, hosts) {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername,
      rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write(hosts.map((h, i) => `GET / HTTP/1.1\r\nHost: ${h}\r\n` +
          (i + 1 === hosts.length ? 'Connection: close\r\n' : '') + '\r\n').join(''));
    });
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve(data); }, 10000);
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    socket.on('end', () => { clearTimeout(timer); resolve(data); });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

// One HTTP/2 session; the statuses of requests for `authorities`, one
// after the other.
async function http2Statuses(url, authorities, options = {}) {
  const session = http2.connect(url, options);
  session.on('error', () => {});
  try {
    const statusesSeen = [];
    for (const authority of authorities) {
      statusesSeen.push(await new Promise((resolve, reject) => {
        const req = session.request({ ':path': '/', ':authority': authority });
        req.on('response', (headers) => { req.resume(); resolve(headers[':status']); });
        req.on('error', reject);
        req.end();
      }));
    }
    return statusesSeen;
  } finally {
    session.close();
  }
}

test('an http app answers a first request naming the routed host after the view moved it', async () => {
  const w = await startWorker('stock_app.js', { env: { APP_KIND: 'http' }, execArgv: PRELOAD });
  try {
    const port = await w.listening();
    w.worker.send(movedView(port));
    await untilGuarded(port);
    w.setRoutedHost('a.test');
    // The first request is answered; the second, checked by the view, is not.
    assert.deepStrictEqual(statuses(await pipelined(port, ['a.test', 'A.test:80'])), [200, 421]);
    // A first request for another name is checked as any.
    assert.deepStrictEqual(statuses(await pipelined(port, ['b.test'])), [421]);
    assert.deepStrictEqual(statuses(await pipelined(port, ['y.w.test', 'a.test'])), [200, 421]);
    // No routed host in the newconn message (an older master): the view.
    w.setRoutedHost(null);
    assert.deepStrictEqual(statuses(await pipelined(port, ['a.test'])), [421]);
  } finally {
    await w.stop();
  }
});

test('an http2 app: the session\'s first stream is its first request', async () => {
  const w = await startWorker('stock_app.js', { env: { APP_KIND: 'http2' }, execArgv: PRELOAD });
  try {
    const port = await w.listening();
    w.worker.send(movedView(port));
    const url = `http://127.0.0.1:${port}`;
    let refused = [];
    for (let i = 0; i < 100 && refused[0] !== 421; i++) {
      refused = await http2Statuses(url, ['x.w.test']);
    }
    assert.deepStrictEqual(refused, [421]);
    w.setRoutedHost('a.test');
    assert.deepStrictEqual(await http2Statuses(url, ['a.test', 'a.test', 'y.w.test']),
        [200, 421, 200]);
    assert.deepStrictEqual(await http2Statuses(url, ['y.w.test', 'a.test']), [200, 421]);
  } finally {
    await w.stop();
  }
});

for (const kind of ['https', 'http2s']) {
  test(`a TLS app (${kind}): the first request naming the SNI the connection was routed by`, async (t) => {
    const certificate = makeCertificate();
    if (certificate === null) return t.skip('no openssl command to make a certificate');
    const w = await startWorker('stock_app.js', { env: { APP_KIND: kind, ...certificate },
      execArgv: PRELOAD });
    try {
      const port = await w.listening();
      w.worker.send(movedView(port));
      const ask = kind === 'https' ?
        async (hosts) => statuses(await tlsPipelined(port, 'a.test', hosts)) :
        (hosts) => http2Statuses(`https://127.0.0.1:${port}`, hosts,
            { servername: 'a.test', rejectUnauthorized: false });
      let refused = [];
      for (let i = 0; i < 100 && refused[0] !== 421; i++) refused = await ask(['x.w.test']);
      assert.deepStrictEqual(refused, [421]);
      w.setRoutedHost('a.test');
      assert.deepStrictEqual(await ask(['a.test', 'a.test']), [200, 421]);
      assert.deepStrictEqual(await ask(['y.w.test', 'a.test']), [200, 421]);
    } finally {
      await w.stop();
    }
  });
}
