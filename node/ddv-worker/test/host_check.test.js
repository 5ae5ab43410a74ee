'use strict';
// lib/host_check.js: the shared case table (tests/route/host_check_test.cc
// runs the same file against the C++ matcher), site view reassembly, and
// how the guard finds a connection's listener by its local address.
const assert = require('assert');
const test = require('node:test');
const cases = require('./host_cases.json');
const {
  HostChecker, HostGuard, SiteViewAssembler, normalizeHost, requestAuthority,
} = require('../lib/host_check');

test('the shared cases', () => {
  assert.ok(cases.cases.length >= 50);
  for (const c of cases.cases) {
    const checker = new HostChecker(cases.views[c.view]);
    assert.strictEqual(checker.checkRequest(c.target, c.host === null ? '' : c.host),
        c.expect, `view ${c.view}, target ${c.target}, host ${c.host}`);
  }
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
