'use strict';
// Ticket keys derived as src/tls/ticket_keys.cc does, and their rotation.
const assert = require('assert');
const test = require('node:test');
const tickets = require('../lib/tickets');

// HKDF-SHA256(ikm = 32 x 'k', salt = "ddv tls session ticket keys",
// info = "ddv ticket key v1 epoch " || 10 as 8 big-endian bytes), 80 bytes,
// from OpenSSL's own HKDF (the one ticket_keys.cc calls):
//   openssl kdf -keylen 80 -kdfopt digest:SHA256 -kdfopt hexkey:6b6b...6b \
//     -kdfopt "salt:ddv tls session ticket keys" \
//     -kdfopt hexinfo:$(printf 'ddv ticket key v1 epoch ' | xxd -p)000000000000000a HKDF
const SECRET_K = Buffer.alloc(32, 'k');
const EPOCH_10 = '3e2cff8208b763a6c3c7f182456df4b6' +  // name
    '5ea2d691e8dff63b825704e01d7dc7aa7332aafd506d91146c9cd309ea01de16' +  // AES-256 key
    '84374a7cc7b561ea0ed20c0faec3883a2427ee8c65cea228a3956dba6df0c415';  // HMAC key

test('deriveKey gives the C++ side key: name, AES key, HMAC key', () => {
  const key = tickets.deriveKey(SECRET_K, 10);
  assert.strictEqual(key.epoch, 10);
  assert.strictEqual(Buffer.concat([key.name, key.aesKey, key.hmacKey]).toString('hex'), EPOCH_10);
  assert.notDeepStrictEqual(tickets.deriveKey(SECRET_K, 11).name, key.name);
  assert.notDeepStrictEqual(tickets.deriveKey(Buffer.alloc(32, 'z'), 10).name, key.name);
});

test("nodeTicketKeys: the name, then the first 16 bytes of the HMAC and AES keys", () => {
  const hex = tickets.nodeTicketKeys(tickets.deriveKey(SECRET_K, 10)).toString('hex');
  assert.strictEqual(hex, EPOCH_10.slice(0, 32) + EPOCH_10.slice(96, 128) + EPOCH_10.slice(32, 64));
});

test('parseSecret takes 64 hex digits and never echoes the secret', () => {
  assert.deepStrictEqual(tickets.parseSecret('aA'.repeat(32)), Buffer.alloc(32, 0xaa));
  for (const bad of ['a'.repeat(63), 'g'.repeat(64), 'a'.repeat(66), undefined]) {
    assert.throws(() => tickets.parseSecret(bad), (err) => {
      assert.match(err.message, /64 hex digits/);
      assert.ok(!bad || !err.message.includes(bad));
      return true;
    });
  }
});

test('epochs are floor(unix seconds / rotation), like TicketKeys::EpochNow', () => {
  assert.strictEqual(tickets.ROTATION_SECONDS, 3600);
  assert.strictEqual(tickets.epochAt(6000 * 1000, 600), 10);
  assert.strictEqual(tickets.epochAt(6599 * 1000 + 999, 600), 10);
  assert.strictEqual(tickets.epochAt(6600 * 1000, 600), 11);
});

test('installTicketKeys sets the epoch key now and the next one at the boundary', async () => {
  const set = [];
  const server = { setTicketKeys: (keys) => set.push(keys) };
  // 20 ms before epoch 11 begins (rotation 600 s).
  let now = 6600 * 1000 - 20;
  const stop = tickets.installTicketKeys(server, SECRET_K, { rotationSeconds: 600, now: () => now });
  try {
    const expected = (epoch) => tickets.nodeTicketKeys(tickets.deriveKey(SECRET_K, epoch));
    assert.deepStrictEqual(set, [expected(10)]);
    assert.deepStrictEqual(server.ticketKeys, expected(10));  // for setSecureContext()
    now += 20;
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepStrictEqual(set, [expected(10), expected(11)]);
    assert.deepStrictEqual(server.ticketKeys, expected(11));
  } finally {
    stop();
  }
});
