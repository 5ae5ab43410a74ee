'use strict';
// lib/host_check.js: the shared case table (tests/route/host_check_test.cc
// runs the same file against the C++ matcher), site view reassembly, and
// how the guard finds a connection's listener by its local address, and the
// guard on real servers of this process: WebSocket upgrades, CONNECT, and
// HTTP/2 CONNECT streams are checked like any request.
const assert = require('assert');
const http = require('http');
const http2 = require('http2');
const net = require('net');
const test = require('node:test');
const cases = require('./host_cases.json');
const {
  HostChecker, HostGuard, SiteViewAssembler, installGuard, namesRoutedHost, normalizeHost,
  noteRoutedHost, rememberConnection, requestAuthority,
} = require('../lib/host_check');

test('the shared cases', () => {
  assert.ok(cases.cases.length >= 50);
  for (const c of cases.cases) {
    const checker = new HostChecker(cases.views[c.view]);
    assert.strictEqual(checker.checkRequest(c.target, c.host === null ? '' : c.host),
        c.expect, `view ${c.view}, target ${c.target}, host ${c.host}`);
  }
});

// The first-request rule through the guard's own path: the newconn
// message names the routed host, the socket made of its handle keeps it,
// and the connection's first request is checked with it.
test('the shared first-request cases', () => {
  assert.ok(cases.first_request_cases.length >= 25);
  for (const c of cases.first_request_cases) {
    const guard = new HostGuard();
    guard.apply({ master: 'm', version: 1, strict: true, listeners: [
      { index: 0, address: '127.0.0.1:80', retired: false, ...cases.views[c.view] },
    ] });
    const handle = {};
    noteRoutedHost({ cmd: 'NODE_CLUSTER', act: 'newconn', key: 'k', seq: 1,
      ddv: { host: c.routed } }, handle);
    const socket = { localAddress: '127.0.0.1', localPort: 80, _handle: handle };
    rememberConnection(socket);
    const host = c.host === null ? '' : c.host;
    const what = `view ${c.view}, routed ${c.routed}, target ${c.target}, host ${c.host}`;
    assert.strictEqual(guard.check(socket, c.target, host, true), c.expect, what);
    // The matcher alone, as tests/route/host_check_test.cc runs it.
    const byView = new HostChecker(cases.views[c.view]).checkRequest(c.target, host);
    assert.strictEqual(namesRoutedHost(c.target, host, c.routed) ? 'allowed' : byView,
        c.expect, `namesRoutedHost: ${what}`);
  }
});

test('only the first request of a connection, or an HTTP/2 session\'s first stream, is one', () => {
  const guard = new HostGuard();
  const socket = {};
  const first = {};
  const second = {};
  assert.strictEqual(guard.firstRequest(socket, first), true);
  assert.strictEqual(guard.firstRequest(socket, second), false);
  assert.strictEqual(guard.firstRequest(socket, first), true);  // asked again
  assert.strictEqual(guard.firstRequest(null, first), false);
  // A newconn without a ddv host (Node's own primary, an older master)
  // leaves the socket without one: the rule never applies.
  const handle = {};
  noteRoutedHost({ act: 'newconn', key: 'k', seq: 1 }, handle);
  noteRoutedHost({ act: 'newconn', ddv: { proxy: {} } }, handle);
  noteRoutedHost({ act: 'newconn', ddv: { host: 7 } }, handle);
  const plain = { localAddress: '127.0.0.1', localPort: 80, _handle: handle };
  rememberConnection(plain);
  guard.apply({ master: 'm', version: 1, strict: true, listeners: [
    entry({ address: '127.0.0.1:80' }),
  ] });
  assert.strictEqual(guard.check(plain, '/', 'a.test', true), 'misdirected');
});

test('checkRequest: a socket\'s first request, an HTTP/2 session\'s first stream', () => {
  const guard = new HostGuard();
  guard.apply({ master: 'm', version: 1, strict: true, listeners: [
    entry({ address: '127.0.0.1:80', own: ['b.test'], others: ['a.test'] }),
  ] });
  const connection = (host) => {
    const handle = {};
    noteRoutedHost({ act: 'newconn', key: 'k', seq: 1, ddv: { host } }, handle);
    const raw = { localAddress: '127.0.0.1', localPort: 80, _handle: handle };
    rememberConnection(raw);
    return raw;
  };
  const socket = connection('a.test');
  const http1 = (host) => ({ httpVersionMajor: 1, socket, url: '/', headers: { host } });
  const first = http1('a.test');
  assert.strictEqual(guard.checkRequest(first), 'allowed');
  // Asked again (worker.checkRequest after the guard): the same answer.
  assert.strictEqual(guard.checkRequest(first), 'allowed');
  assert.strictEqual(guard.checkRequest(http1('a.test')), 'misdirected');
  assert.strictEqual(guard.checkRequest(http1('b.test')), 'allowed');
  // HTTP/2 over TLS: the session's first stream; the TLS socket's routed
  // host is its transport's (`_parent`).
  const session = { socket: { _parent: connection('a.test') } };
  const http2 = (authority) => ({ httpVersionMajor: 2, stream: { session }, url: '/',
    headers: { ':authority': authority } });
  assert.strictEqual(guard.checkRequest(http2('A.test')), 'allowed');
  assert.strictEqual(guard.checkRequest(http2('a.test')), 'misdirected');
  assert.strictEqual(guard.misdirected, 2);
});

test('patterns must be in normal form', () => {
  for (const bad of ['A.test', 'a.test.', 'a..test', '*', '*.', 'a.*.b', 'a.test:80', '[::1]', '']) {
    assert.throws(() => new HostChecker({ default: false, own: [bad], others: [] }), TypeError, bad);
    assert.throws(() => new HostChecker({ default: false, own: [], others: [bad] }), TypeError, bad);
  }
});

test('normalizeHost and requestAuthority', () => {
  assert.strictEqual(normalizeHost('A.Example.COM.:8080'), 'a.example.com');
  assert.strictEqual(normalizeHost('[::1]:80'), '[::1]');
  assert.strictEqual(normalizeHost('[::1]:80', false), null);
  assert.strictEqual(normalizeHost('a.test:80', false), null);
  assert.deepStrictEqual(requestAuthority('/x', 'a.test'), { authority: 'a.test', invalid: false });
  assert.deepStrictEqual(requestAuthority('http://b.test:81/x?y', 'a.test'),
      { authority: 'b.test:81', invalid: false });
  assert.deepStrictEqual(requestAuthority('http://u@b.test/', 'a.test'),
      { authority: 'u@b.test', invalid: true });
});

function view(parts) {
  return { master: 'm1', version: 3, part: 0, last: true, strict: true, ...parts };
}

function entry(fields) {
  return { index: 0, address: '127.0.0.1:80', retired: false, default: false,
    own: [], others: [], ...fields };
}

test('site view parts reassemble, a listener continuing across parts', () => {
  const a = new SiteViewAssembler();
  assert.strictEqual(a.add(view({ last: false, listeners: [
    entry({ index: 1, own: ['a.test'] }),
    entry({ index: 2, own: ['x.test'] }),
  ] })), null);
  const whole = a.add(view({ part: 1, listeners: [
    entry({ index: 2, own: ['y.test'], others: ['*.z.test'] }),
    entry({ index: 3, default: true }),
  ] }));
  assert.deepStrictEqual(whole.listeners.map((l) => [l.index, l.own, l.others, l.default]), [
    [1, ['a.test'], [], false],
    [2, ['x.test', 'y.test'], ['*.z.test'], false],
    [3, [], [], true],
  ]);
  assert.strictEqual(whole.master, 'm1');
});

test('site view parts out of order or malformed are refused', () => {
  const a = new SiteViewAssembler();
  assert.throws(() => a.add(view({ part: 1, listeners: [] })), /out of order/);
  a.add(view({ last: false, listeners: [] }));
  assert.throws(() => a.add(view({ part: 1, version: 4, listeners: [] })), /out of order/);
  assert.throws(() => a.add(view({ part: 1, listeners: [] })), /out of order/);  // dropped
  a.add(view({ last: false, listeners: [] }));
  assert.throws(() => a.add(view({ part: 1, master: 'm2', listeners: [] })), /out of order/);
  for (const bad of [
    null, {}, view({ master: '' }), view({ master: 3 }), view({ version: -1 }),
    view({ last: 'yes' }), view({ listeners: {} }),
    view({ listeners: [entry({ index: -1 })] }),
    view({ listeners: [entry({ address: 5 })] }),
    view({ listeners: [entry({ own: 'a.test' })] }),
    view({ listeners: [entry({ own: ['A.test'] })] }),
  ]) {
    assert.throws(() => new SiteViewAssembler().add(bad), TypeError, JSON.stringify(bad));
  }
});

function socketAt(address, port) {
  return { localAddress: address, localPort: port };
}

test('the guard finds the listener by local address: own IP, then wildcard, live before retired', () => {
  const guard = new HostGuard();
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'b.test'), 'allowed');  // no view yet
  guard.apply({ master: 'm', version: 1, strict: true, listeners: [
    entry({ index: 0, address: '0.0.0.0:80', own: ['wild.test'] }),
    entry({ index: 1, address: '127.0.0.1:80', own: ['a.test'] }),
    entry({ index: 2, address: '127.0.0.1:81', retired: true, own: ['old.test'] }),
    entry({ index: 3, address: '127.0.0.1:81', own: ['new.test'] }),
    entry({ index: 4, address: '[::]:82', default: true, others: ['b.test'] }),
  ] });
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'a.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'wild.test'), 'misdirected');
  assert.strictEqual(guard.check(socketAt('10.0.0.1', 80), '/', 'wild.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::ffff:127.0.0.1', 80), '/', 'a.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 81), '/', 'new.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 81), '/', 'old.test'), 'misdirected');
  assert.strictEqual(guard.check(socketAt('::1', 82), '/', 'anything.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::ffff:127.0.0.1', 82), '/', 'b.test'), 'misdirected');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 9999), '/', 'b.test'), 'allowed');  // unknown
  assert.strictEqual(guard.misdirected, 3);
  guard.apply({ master: 'm', version: 2, strict: false, listeners: [] });
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'wild.test'), 'allowed');
});

test('an IPv4 connection is checked against the IPv4 wildcard, not a v6only "[::]" listed first', () => {
  const guard = new HostGuard();
  guard.apply({ master: 'm', version: 1, strict: true, listeners: [
    entry({ index: 0, address: '[::]:80', v6only: true, own: ['six.test'] }),
    entry({ index: 1, address: '0.0.0.0:80', own: ['four.test'] }),
  ] });
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'four.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::ffff:10.0.0.1', 80), '/', 'four.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'six.test'), 'misdirected');
  assert.strictEqual(guard.check(socketAt('::1', 80), '/', 'six.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::1', 80), '/', 'four.test'), 'misdirected');
  // A v6only "[::]" alone takes no IPv4 connection; a dual-stack one does,
  // after an IPv4 wildcard of the same port.
  guard.apply({ master: 'm', version: 2, strict: true, listeners: [
    entry({ index: 0, address: '[::]:80', v6only: true, own: ['six.test'] }),
    entry({ index: 1, address: '[::]:81', v6only: false, own: ['dual.test'] }),
    entry({ index: 2, address: '0.0.0.0:82', own: ['four.test'] }),
    entry({ index: 3, address: '[::]:82', v6only: false, own: ['dual.test'] }),
  ] });
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'other.test'), 'allowed');  // none
  assert.strictEqual(guard.check(socketAt('::ffff:127.0.0.1', 81), '/', 'dual.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::ffff:127.0.0.1', 81), '/', 'six.test'), 'misdirected');
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 82), '/', 'four.test'), 'allowed');
  assert.strictEqual(guard.check(socketAt('::1', 82), '/', 'dual.test'), 'allowed');
  // An older master's view has no v6only: "[::]" is dual stack, but the
  // IPv4 wildcard still wins for IPv4.
  const a = new SiteViewAssembler();
  const old = a.add(view({ listeners: [
    { index: 0, address: '[::]:80', retired: false, default: false, own: ['six.test'], others: [] },
    { index: 1, address: '0.0.0.0:80', retired: false, default: false, own: ['four.test'], others: [] },
  ] }));
  assert.deepStrictEqual(old.listeners.map((l) => l.v6only), [false, false]);
  guard.apply(old);
  assert.strictEqual(guard.check(socketAt('127.0.0.1', 80), '/', 'four.test'), 'allowed');
  assert.throws(() => new SiteViewAssembler().add(view({ listeners: [entry({ v6only: 1 })] })),
      TypeError);
});

// One raw request on a fresh connection; resolves with all the server
// sent until it closed. Bounded: 5 s.
function rawExchange(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); resolve(data); }, 5000);
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    socket.on('close', () => { clearTimeout(timer); resolve(data); });
    socket.on('error', (err) => { clearTimeout(timer); reject(err); });
    socket.write(text);
  });
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function guardView(port, strict = true) {
  return { master: 'm', version: port, strict, listeners: [
    entry({ index: 0, address: `127.0.0.1:${port}`, own: ['a.test'], others: ['b.test'] }),
  ] };
}

test('a WebSocket upgrade or CONNECT for another site\'s host gets 421 before the app\'s listener', async () => {
  const guard = installGuard();
  const seen = [];
  const server = http.createServer((req, res) => res.end('request\n'));
  server.on('upgrade', (req, socket) => {
    seen.push(`upgrade ${req.headers.host}`);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  server.on('connect', (req, socket) => {
    seen.push(`connect ${req.url}`);
    socket.end('HTTP/1.1 200 Connection Established\r\n\r\n');
  });
  const port = await listen(server);
  try {
    guard.apply(guardView(port));
    const upgrade = (host) => rawExchange(port, `GET /chat HTTP/1.1\r\nHost: ${host}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    const connect = (target, host) => rawExchange(port,
        `CONNECT ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    assert.match(await upgrade('a.test'), /^HTTP\/1\.1 101 /);
    const refused = await upgrade('b.test');
    assert.match(refused, /^HTTP\/1\.1 421 Misdirected Request\r\n/);
    assert.match(refused, /\r\nConnection: close\r\n/);
    const length = Number(/\r\nContent-Length: (\d+)\r\n/.exec(refused)[1]);
    assert.strictEqual(Buffer.byteLength(refused.split('\r\n\r\n')[1]), length);
    assert.match(await upgrade('bad host'), /^HTTP\/1\.1 400 /);
    assert.match(await connect('a.test:443', 'a.test:443'), /^HTTP\/1\.1 200 /);
    // The target names the host, whatever Host says.
    assert.match(await connect('b.test:443', 'a.test:443'), /^HTTP\/1\.1 421 /);
    assert.match(await connect('a.test', 'a.test'), /^HTTP\/1\.1 400 /);  // no port
    assert.deepStrictEqual(seen, ['upgrade a.test', 'connect a.test:443']);
    // strict_host = false: nothing is refused.
    guard.apply(guardView(port, false));
    assert.match(await upgrade('b.test'), /^HTTP\/1\.1 101 /);
  } finally {
    server.close();
  }
});

test('HTTP/2 CONNECT streams, extended (RFC 8441) or not, are checked by :authority', async () => {
  const guard = installGuard();
  const seen = [];
  const server = http2.createServer({ settings: { enableConnectProtocol: true } });
  server.on('stream', (stream, headers) => {
    seen.push(`${headers[':method']} ${headers[':authority']}`);
    stream.respond({ ':status': 200 });
    stream.end();
  });
  const port = await listen(server);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    guard.apply(guardView(port));
    await new Promise((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
    });
    const status = (headers) => new Promise((resolve, reject) => {
      const stream = session.request(headers, { endStream: false });
      stream.on('response', (h) => { resolve(h[':status']); stream.close(); });
      stream.on('error', reject);
    });
    const extended = (authority) => status({ ':method': 'CONNECT', ':protocol': 'websocket',
      ':scheme': 'http', ':path': '/chat', ':authority': authority });
    const plain = (authority) => status({ ':method': 'CONNECT', ':authority': authority });
    assert.strictEqual(await extended('a.test'), 200);
    assert.strictEqual(await extended('b.test'), 421);
    assert.strictEqual(await plain('a.test:443'), 200);
    assert.strictEqual(await plain('b.test:443'), 421);
    assert.deepStrictEqual(seen, ['CONNECT a.test', 'CONNECT a.test:443']);
  } finally {
    session.close();
    server.close();
  }
});

test('a connection accepted before strict_host turned on is still found by the address it came on', async () => {
  const guard = installGuard();
  const server = http.createServer((req, res) => res.end('request\n'));
  let connected;
  const accepted = new Promise((resolve) => { connected = resolve; });
  server.on('connection', (socket) => {
    // What lib/proxy.js does for a PROXY header: localAddress becomes the
    // address the client connected to at an L4 tier.
    socket._sockname = { address: '10.9.9.9', port: 1, family: 'IPv4' };
    connected();
  });
  const port = await listen(server);
  const socket = net.connect(port, '127.0.0.1');
  try {
    guard.apply(guardView(port, false));
    await accepted;
    guard.apply(guardView(port, true));  // a reload turns strict_host on
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d) => { data += d; });
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 5000);
      socket.on('close', () => { clearTimeout(timer); resolve(); });
      socket.write('GET / HTTP/1.1\r\nHost: b.test\r\n\r\n');
    });
    assert.match(data, /^HTTP\/1\.1 421 /);
  } finally {
    socket.destroy();
    server.close();
  }
});
