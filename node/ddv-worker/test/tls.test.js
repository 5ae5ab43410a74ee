'use strict';
// An https app under ddv: the site's certificates from DDV_TLS_CERT/KEY, and
// ticket keys from DDV_TLS_TICKET_SECRET, so a session one process issued
// resumes on another process of the site (the master spreads a client's
// connections over all of them), and not on a process with another secret.
const assert = require('assert');
const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const test = require('node:test');
const tls = require('tls');
const { startWorker, SECRET } = require('../fixtures/primary');
const tickets = require('../lib/tickets');

// A throwaway self-signed certificate for a.example.com.
function makeCertificate(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  childProcess.execFileSync('openssl', ['req', '-x509', '-newkey', 'ec',
    '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', '/CN=a.example.com', '-addext', 'subjectAltName=DNS:a.example.com',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

// One HTTPS request on a fresh connection; resolves with whether the session
// was resumed and the session to offer next time.
function request(port, { session, maxVersion }) {
  return new Promise((resolve, reject) => {
    let latest = null;
    const socket = tls.connect({
      host: '127.0.0.1', port, servername: 'a.example.com',
      rejectUnauthorized: false, session, maxVersion,
    }, () => {
      socket.write('GET /tls HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n');
    });
    socket.on('session', (s) => { latest = s; });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d) => { data += d; });
    socket.on('end', () => {
      assert.match(data, /^HTTP\/1\.1 200/);
      resolve({ reused: socket.isSessionReused(), session: latest,
        pid: JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)).pid });
    });
    socket.on('error', reject);
  });
}

test('https: a session from one process of the site resumes on another', async (t) => {
  let opensslMissing = false;
  try {
    childProcess.execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch (err) {
    opensslMissing = true;
  }
  if (opensslMissing) return t.skip('no openssl command to make a certificate');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ddv-worker-tls-'));
  const { cert, key } = makeCertificate(dir);
  const env = { APP_KIND: 'https', DDV_TLS_CERT: cert, DDV_TLS_KEY: key };
  const one = await startWorker('app.js', { env: { ...env, DDV_WORKER_INDEX: '0' } });
  const two = await startWorker('app.js', { env: { ...env, DDV_WORKER_INDEX: '1' } });
  const stranger = await startWorker('app.js', {
    env: { ...env, DDV_TLS_TICKET_SECRET: 'b2'.repeat(32) },
  });
  try {
    await Promise.all([one.listening(), two.listening(), stranger.listening()]);

    // Both processes hold the keys the C++ side's derivation gives now.
    const before = tickets.epochAt(Date.now(), tickets.ROTATION_SECONDS);
    const keys = [];
    for (const w of [one, two]) {
      w.worker.send({ cmd: 'ticket-keys' });
      keys.push((await w.app((a) => a.ticketKeys, 'ticket keys')).ticketKeys);
    }
    const after = tickets.epochAt(Date.now(), tickets.ROTATION_SECONDS);
    const secret = tickets.parseSecret(SECRET);
    const expected = [before, after].map((epoch) =>
      tickets.nodeTicketKeys(tickets.deriveKey(secret, epoch)).toString('hex'));
    assert.ok(expected.includes(keys[0]), 'keys of the current epoch');
    assert.strictEqual(keys[1], keys[0]);

    for (const maxVersion of ['TLSv1.3', 'TLSv1.2']) {
      const first = await request(one.port, { maxVersion });
      assert.strictEqual(first.reused, false);
      assert.ok(first.session, `a ${maxVersion} session ticket`);
      const other = await request(two.port, { session: first.session, maxVersion });
      assert.notStrictEqual(other.pid, first.pid);
      assert.strictEqual(other.reused, true, `${maxVersion} resumed on the other process`);
      const refused = await request(stranger.port, { session: first.session, maxVersion });
      assert.strictEqual(refused.reused, false, `${maxVersion} not resumed with another secret`);
    }

    // A client that does not speak TLS: 'tlsClientError' -> 'socket::error'.
    await new Promise((resolve) => {
      const socket = net.connect(one.port, '127.0.0.1', () => socket.end('GET / HTTP/1.1\r\n\r\n'));
      socket.on('close', resolve);
      socket.on('error', () => {});
      socket.resume();
    });
    assert.match((await one.app((a) => a.socketError, 'socket error')).socketError, /ERR_SSL|wrong version/i);
  } finally {
    await Promise.all([one.stop(), two.stop(), stranger.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
