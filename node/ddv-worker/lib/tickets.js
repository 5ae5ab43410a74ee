'use strict';
// TLS session-ticket keys shared by every process of a ddv site, derived as
// src/tls/ticket_keys.cc does: HKDF-SHA256 over DDV_TLS_TICKET_SECRET with an
// info string naming the epoch (unix time / rotation). README.md ("TLS session
// tickets") explains how these 80 bytes map onto Node's 48-byte ticket keys.

const crypto = require('crypto');

// Both strings and the rotation must equal the C++ side's (ticket_keys.cc,
// TlsOptions::ticket_rotation): processes that share tickets agree on them.
const SALT = 'ddv tls session ticket keys';
const INFO_PREFIX = 'ddv ticket key v1 epoch ';
const ROTATION_SECONDS = 3600;
// setTimeout's longest delay; a longer wait is taken in several steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

// 64 hex digits -> 32 bytes. The message never echoes the secret.
function parseSecret(hex) {
  if (typeof hex !== 'string' || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error('DDV_TLS_TICKET_SECRET must be 64 hex digits (32 bytes)');
  }
  return Buffer.from(hex, 'hex');
}

// floor(unix seconds / rotation), as TicketKeys::EpochNow.
function epochAt(ms, rotationSeconds) {
  return Math.floor(Math.floor(ms / 1000) / rotationSeconds);
}

// The C++ TicketKey of `epoch`: a 16-byte name, an AES-256 key, an HMAC key.
function deriveKey(secret, epoch) {
  const info = Buffer.alloc(INFO_PREFIX.length + 8);
  info.write(INFO_PREFIX, 0, 'latin1');
  info.writeBigUInt64BE(BigInt.asUintN(64, BigInt(epoch)), INFO_PREFIX.length);
  const out = Buffer.from(crypto.hkdfSync('sha256', secret, SALT, info, 80));
  return {
    epoch,
    name: out.subarray(0, 16),
    aesKey: out.subarray(16, 48),
    hmacKey: out.subarray(48, 80),
  };
}

// Node's layout for server.setTicketKeys(): name (16) | HMAC-SHA256 key (16)
// | AES-128-CBC key (16). Node's keys are half the C++ lengths, so each takes
// the first 16 bytes of the corresponding C++ key.
function nodeTicketKeys(key) {
  return Buffer.concat([
    key.name,
    key.hmacKey.subarray(0, 16),
    key.aesKey.subarray(0, 16),
  ]);
}

// Gives `server` (a tls.Server) the current epoch's keys and replaces them at
// every epoch boundary. The timer is unref'd: it never keeps a process alive.
// Returns a function that stops the rotation.
function installTicketKeys(server, secret, options = {}) {
  const rotationSeconds = options.rotationSeconds || ROTATION_SECONDS;
  const now = options.now || Date.now;
  let epoch = null;
  let timer = null;
  const tick = () => {
    const ms = now();
    const current = epochAt(ms, rotationSeconds);
    if (current !== epoch) {
      epoch = current;
      const keys = nodeTicketKeys(deriveKey(secret, epoch));
      server.setTicketKeys(keys);
      // tls.Server#setSecureContext() rebuilds the context from this field:
      // keep it equal so a certificate reload does not draw random keys.
      server.ticketKeys = keys;
    }
    const nextMs = (epoch + 1) * rotationSeconds * 1000;
    timer = setTimeout(tick, Math.min(Math.max(nextMs - ms, 1), MAX_TIMER_MS));
    timer.unref();
  };
  tick();
  return () => clearTimeout(timer);
}

module.exports = {
  ROTATION_SECONDS,
  parseSecret,
  epochAt,
  deriveKey,
  nodeTicketKeys,
  installTicketKeys,
};
