'use strict';
// The `worker` singleton apps get from require('ddv-worker'): the original
// module's API (worker.server = ..., updateServerConf, send, the error
// events) on top of a stock Node cluster worker run by ddv's master.

const cluster = require('cluster');
const EventEmitter = require('events');
const fs = require('fs');
const net = require('net');
const tls = require('tls');
const { Channel } = require('./channel');
const hostCheck = require('./host_check');
const proxy = require('./proxy');
const tickets = require('./tickets');

// A client resetting its connection is routine, not an error worth an event.
function isReset(err) {
  return err != null && err.code === 'ECONNRESET';
}

function validPort(value) {
  const port = Number(value);
  return value !== '' && value != null && Number.isInteger(port) &&
      port >= 0 && port <= 65535 ? port : null;
}

class DdvWorker extends EventEmitter {
  constructor(env, proc) {
    super();
    this._env = env;
    // Under ddv: the master set DDV_SITE and gave us the IPC channel.
    this.siteId = env.DDV_SITE || null;
    this.standalone = !(this.siteId && typeof proc.send === 'function');
    const index = Number(env.DDV_WORKER_INDEX);
    this.id = !this.standalone && Number.isInteger(index) && index >= 0 ?
      index : 0;
    this.config = {};
    // How long updateServerConf waits for the master's answer.
    this.rpcTimeout = 10000;
    // After a drain (the master's cluster 'disconnect') has closed the
    // servers, exit even if timers or other handles would keep us alive.
    this.exitOnDisconnect = true;
    this._server = null;
    this._channel = null;
    this._warnedStandaloneSend = false;
    this._guard = null;
    if (!this.standalone) {
      // Before the channel: the master's site views reach the guard even
      // when the preload was not loaded (installGuard is once per process).
      this._guard = hostCheck.installGuard(proc);
      this._channel = new Channel(proc, (body, from) => {
        this.emit('message', body, from);
      });
      this._channel.attach();
      // Connections behind an L4 tier: the client's address on the socket.
      proxy.install(proc);
      proc.once('disconnect', () => this._onDisconnect());
    }
  }

  get server() {
    return this._server;
  }

  // Adopts the site's server: it gets ddv's connections (or, standalone, the
  // configured ports) without the app calling listen().
  set server(server) {
    let problem = null;
    if (this._server !== null) {
      problem = new Error('worker.server is already set: a worker serves ' +
          'one server; the second one is ignored');
    } else if (!(server instanceof net.Server)) {
      problem = new TypeError('worker.server must be a net.Server ' +
          '(http.createServer(), https.createServer(), net.createServer(), ...)');
    }
    if (problem !== null) {
      // Later in this tick the app may still attach its 'error' listener.
      process.nextTick(() => this.emit('error', problem));
      return;
    }
    this._server = server;
    if (typeof server.setConfig !== 'function') {
      server.setConfig = (config) => {
        this.config = config;
        return server;
      };
    }
    this._forwardErrors(server);
    if (server instanceof tls.Server) this._shareTicketKeys(server);
    // After the main module ran: by then the app has set its config (and
    // its listeners on the server).
    setImmediate(() => this._listen(server));
  }

  // Sends the original module's server configuration to the master:
  // listen[].host -> add_hosts, defaultListen -> default, cpuLen ->
  // processes. `callback(err)` runs once, always asynchronously.
  updateServerConf(conf, callback) {
    const done = typeof callback === 'function' ? callback : (err) => {
      if (err) process.emitWarning(`ddv-worker: updateServerConf: ${err.message}`);
    };
    let body;
    try {
      body = serverConfBody(conf || {});
    } catch (err) {
      process.nextTick(done, err);
      return;
    }
    if (this.standalone) {
      process.nextTick(done, new Error('not running under ddv (DDV_SITE is ' +
          'unset): there is no master to update'));
      return;
    }
    this._channel.call('update_server_conf', body, this.rpcTimeout,
        (err) => done(err || null));
  }

  // Sends `message` (any JSON value) to worker `workerIndex` of site
  // `siteId` (-1 or omitted: whichever the master picks); it arrives there as
  // worker.on('message', (message, from) => ...). Returns false when there is
  // no master to carry it (standalone, or the channel closed).
  send(siteId, message, workerIndex = -1) {
    if (typeof siteId !== 'string' || siteId === '') {
      throw new TypeError('worker.send: siteId must be a non-empty string');
    }
    if (!Number.isInteger(workerIndex) || workerIndex < -1) {
      throw new TypeError('worker.send: workerIndex must be an integer >= -1');
    }
    if (this.standalone) {
      if (!this._warnedStandaloneSend) {
        this._warnedStandaloneSend = true;
        process.emitWarning('ddv-worker: worker.send() needs the ddv master; ' +
            'standalone, messages are dropped');
      }
      return false;
    }
    return this._channel.send(siteId, workerIndex,
        message === undefined ? null : message);
  }

  // Whether `req` (an http/https/http2 request) may be answered by this
  // site: 'allowed', 'misdirected' (answer 421 and close) or 'invalid'
  // (400), as the master's site view says (docs/isolation.md). Servers of
  // the http, https and http2 modules are checked before 'request' already;
  // this is for requests that reach the app some other way. The first
  // request of a connection (an HTTP/2 session's first stream) naming the
  // host the master routed the connection by is allowed whatever the view
  // says. Always 'allowed' standalone, before the master sent a view, and
  // with strict_host = false.
  checkRequest(req) {
    if (this._guard === null || !req) return hostCheck.ALLOWED;
    return this._guard.checkRequest(req);
  }

  // Requests refused with 421 in this process so far.
  get misdirectedRequests() {
    return this._guard === null ? 0 : this._guard.misdirected;
  }

  // The site's certificates as ddv gives them (DDV_TLS_CERT / DDV_TLS_KEY,
  // ':'-joined paths, pairwise): [{cert, key}] of PEM Buffers, [] if none.
  tlsCertificates() {
    const certs = (this._env.DDV_TLS_CERT || '').split(':').filter(Boolean);
    const keys = (this._env.DDV_TLS_KEY || '').split(':').filter(Boolean);
    if (certs.length !== keys.length) {
      throw new Error('DDV_TLS_CERT and DDV_TLS_KEY name different numbers of files');
    }
    return certs.map((cert, i) => ({
      cert: fs.readFileSync(cert),
      key: fs.readFileSync(keys[i]),
    }));
  }

  // Server 'error' -> 'server::error' (or 'error' when nobody listens for
  // that), unless the app handles its server's errors itself; client errors
  // -> 'socket::error', with Node's own handling (400, destroy) kept.
  _forwardErrors(server) {
    server.on('error', (err) => {
      if (isReset(err)) return;
      if (server.listenerCount('error') > 1) return;  // the app's listener has it
      this.emit(this.listenerCount('server::error') > 0 ? 'server::error' : 'error', err);
    });
    const emit = server.emit;
    const worker = this;
    server.emit = function emitAlsoSocketErrors(name, err, socket) {
      if ((name === 'clientError' || name === 'tlsClientError') &&
          !isReset(err) && worker.listenerCount('socket::error') > 0) {
        worker.emit('socket::error', err, socket);
      }
      return emit.apply(this, arguments);
    };
  }

  _shareTicketKeys(server) {
    const hex = this._env.DDV_TLS_TICKET_SECRET;
    if (!hex) return;
    let secret;
    try {
      secret = tickets.parseSecret(hex);
    } catch (err) {
      process.nextTick(() => this.emit('error', err));
      return;
    }
    tickets.installTicketKeys(server, secret);
  }

  _listen(server) {
    if (server.listening) return;
    let ports;
    if (!this.standalone) {
      // ddv accepts any port; PORT is the site's first listener's.
      ports = [validPort(this._env.PORT)];
      if (ports[0] === null) {
        server.emit('error', new Error(`PORT must be a port number, not ${JSON.stringify(this._env.PORT)}`));
        return;
      }
    } else {
      ports = standalonePorts(this.config, this._env.PORT);
    }
    server.listen(ports[0]);
    // Standalone with several listen entries: the other ports hand their
    // connections to the same server.
    const extra = ports.slice(1).map((port) => {
      const forwarder = net.createServer((socket) => server.emit('connection', socket));
      forwarder.on('error', (err) => server.emit('error', err));
      return forwarder.listen(port);
    });
    if (extra.length > 0) {
      server.once('close', () => extra.forEach((forwarder) => forwarder.close()));
    }
  }

  _onDisconnect() {
    // Channel EOF without a drain: Node's cluster code exits by itself.
    if (!(cluster.worker && cluster.worker.exitedAfterDisconnect)) return;
    // A drain: Node closed our servers and waited for their connections.
    this.emit('disconnect');
    if (this.exitOnDisconnect) setImmediate(() => process.exit());
  }
}

// The update_server_conf body for the original module's options.
function serverConfBody(conf) {
  const body = {};
  if (conf.listen !== undefined && conf.listen !== null) {
    if (!Array.isArray(conf.listen)) {
      throw new TypeError('updateServerConf: listen must be an array');
    }
    const hosts = new Set();
    for (const entry of conf.listen) {
      const host = entry && entry.host != null ? String(entry.host).trim().toLowerCase() : '';
      if (host !== '') hosts.add(host);
    }
    if (hosts.size > 0) body.add_hosts = [...hosts];
  }
  if (conf.defaultListen !== undefined && conf.defaultListen !== null) {
    body.default = Boolean(conf.defaultListen);
  }
  if (conf.cpuLen !== undefined && conf.cpuLen !== null) {
    const processes = Number(conf.cpuLen);
    if (!Number.isInteger(processes) || processes < 1) {
      throw new TypeError('updateServerConf: cpuLen must be an integer >= 1');
    }
    body.processes = processes;
  }
  return body;
}

// Standalone: the ports of config.listen, else PORT, else 80 (the original
// module's default).
function standalonePorts(config, envPort) {
  const ports = new Set();
  const listen = config && Array.isArray(config.listen) ? config.listen : [];
  for (const entry of listen) {
    const port = entry ? validPort(entry.port) : null;
    if (port !== null) ports.add(port);
  }
  if (ports.size === 0) ports.add(validPort(envPort) ?? 80);
  return [...ports];
}

module.exports = { DdvWorker };
