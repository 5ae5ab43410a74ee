'use strict';
// The 421 check for Node workers (docs/isolation.md): the JS port of
// src/route/host_check.h, held to the same cases (test/host_cases.json), and
// the guard that applies it to every HTTP server of the process. The master
// sends each worker its site view ({"ddv":"site_view"} parts, the JSON of
// src/handoff/site_view.h): per listener, the names routed to the site, the
// other sites' names that would win over them, and whether the site is the
// listener's default. A request whose Host (or absolute-form target, or
// HTTP/2 :authority) the master would route elsewhere gets 421 Misdirected
// Request before the app sees it, unless it is its connection's first
// request and names the host the master routed the connection by (each
// newconn message says which).

const http = require('http');
const https = require('https');

const MAX_HOST_LENGTH = 253;  // RFC 1035 text form
const MAX_LABEL_LENGTH = 63;

const ALLOWED = 'allowed';
const MISDIRECTED = 'misdirected';
const INVALID = 'invalid';

function isDigit(c) {
  return c >= '0' && c <= '9';
}

function isNameChar(c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || isDigit(c) ||
      c === '-' || c === '_';
}

// sniff::NormalizeHost: lower case, one trailing dot dropped; with
// `hostSyntax` (an HTTP Host value) an optional :port is dropped and
// bracketed IPv6 literals are allowed. null when it is not a host.
function normalizeHost(raw, hostSyntax = true) {
  let host = raw;
  if (hostSyntax) {
    const colon = host.lastIndexOf(':');
    const close = host.indexOf(']');
    // Inside an IPv6 literal without a port the last ':' precedes ']'.
    const inLiteral = host.startsWith('[') && (close === -1 || close > colon);
    if (colon !== -1 && !inLiteral) {
      const port = host.slice(colon + 1);
      if (port.length > 5) return null;
      for (const c of port) if (!isDigit(c)) return null;
      host = host.slice(0, colon);
    }
    if (host.startsWith('[')) {
      if (host.length > MAX_HOST_LENGTH) return null;
      if (host.length < 4 || !host.endsWith(']')) return null;
      if (!/^[0-9a-fA-F:.]*$/.test(host.slice(1, -1))) return null;
      return host.toLowerCase();
    }
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host === '' || host.length > MAX_HOST_LENGTH) return null;
  let label = 0;
  for (const c of host) {
    if (c === '.') {
      if (label === 0) return null;
      label = 0;
    } else if (isNameChar(c)) {
      if (++label > MAX_LABEL_LENGTH) return null;
    } else {
      return null;
    }
  }
  if (label === 0) return null;
  return host.toLowerCase();
}

// The authority a request names, as ddv's master reads it: an absolute-form
// target's (RFC 9112 §3.2.2: it wins over Host), http or https only, or a
// CONNECT authority-form target's (host:port); origin-form ("/x") and
// asterisk-form ("*") leave `host` (the Host value, '' when absent) in
// charge. Returns {authority, invalid}; invalid is what the master answers
// 400 to.
function requestAuthority(target, host) {
  if (typeof target !== 'string' || target === '' || target[0] === '/' ||
      target === '*') {
    return { authority: host || '', invalid: false };
  }
  const separator = target.indexOf('://');
  if (separator !== -1 && /^[A-Za-z][A-Za-z0-9+.-]*$/.test(target.slice(0, separator))) {
    const scheme = target.slice(0, separator).toLowerCase();
    let authority = target.slice(separator + 3);
    const end = authority.search(/[/?#]/);
    if (end !== -1) authority = authority.slice(0, end);
    return { authority, invalid: (scheme !== 'http' && scheme !== 'https') ||
        authority === '' || authority.includes('@') };
  }
  const colon = target.lastIndexOf(':');
  const bracket = target.lastIndexOf(']');
  return { authority: target, invalid: colon === -1 || colon + 1 === target.length ||
      (bracket !== -1 && colon < bracket) || target.includes('@') };
}

// Whether the request (`target` and `host` as requestAuthority takes them)
// names `routed`: the host, in normal form, that ddv's master routed its
// connection by (src/route/host_check.h NamesRoutedHost). A connection's
// first request naming it is its site's whatever the view says by the time
// it is read: a reload that moved the name away may have sent its view
// while the request was unread (docs/isolation.md). '' names nothing.
function namesRoutedHost(target, host, routed) {
  if (typeof routed !== 'string' || routed === '') return false;
  const { authority, invalid } = requestAuthority(target, host || '');
  if (invalid || authority === '') return false;
  return normalizeHost(authority, true) === routed;
}

// One site's view of one listener, compiled: exact names, and wildcards
// by their suffix ("*.test" is "test").
class HostChecker {
  constructor(hosts) {
    this.isDefault = hosts.default === true;
    this.ownExact = new Set();
    this.ownWildcard = new Set();
    this.otherExact = new Set();
    this.otherWildcard = new Set();
    addPatterns(hosts.own, this.ownExact, this.ownWildcard);
    addPatterns(hosts.others, this.otherExact, this.otherWildcard);
  }

  // The route table's order: exact name, longest wildcard suffix, default.
  check(authority) {
    if (!authority) return ALLOWED;
    const name = normalizeHost(authority, true);
    if (name === null) return INVALID;
    if (this.ownExact.has(name)) return ALLOWED;
    if (this.otherExact.has(name)) return MISDIRECTED;
    for (let dot = name.indexOf('.'); dot !== -1; dot = name.indexOf('.', dot + 1)) {
      const suffix = name.slice(dot + 1);
      if (this.ownWildcard.has(suffix)) return ALLOWED;
      if (this.otherWildcard.has(suffix)) return MISDIRECTED;
    }
    return this.isDefault ? ALLOWED : MISDIRECTED;
  }

  checkRequest(target, host) {
    const { authority, invalid } = requestAuthority(target, host);
    return invalid ? INVALID : this.check(authority);
  }
}

function addPatterns(patterns, exact, wildcard) {
  if (!Array.isArray(patterns)) throw new TypeError('host patterns must be an array');
  for (const pattern of patterns) {
    if (typeof pattern !== 'string') throw new TypeError('a host pattern must be a string');
    const isWildcard = pattern.startsWith('*.');
    const name = isWildcard ? pattern.slice(2) : pattern;
    if (normalizeHost(name, false) !== name) {
      throw new TypeError(`host pattern ${JSON.stringify(pattern)} is not in normal form`);
    }
    (isWildcard ? wildcard : exact).add(name);
  }
}

// Reassembles {"ddv":"site_view"} parts as src/handoff/site_view.cc does:
// part 0 starts a view, the rest follow in order with the same master and
// version. add() returns the whole view after its last part, else null;
// throws on a malformed or out-of-order part (which drops the assembly).
class SiteViewAssembler {
  constructor() {
    this._view = null;
    this._next = 0;
  }

  add(part) {
    try {
      return this._add(part);
    } catch (err) {
      this._view = null;
      throw err;
    }
  }

  _add(part) {
    if (part === null || typeof part !== 'object' ||
        !Number.isInteger(part.part) || part.part < 0) {
      throw new TypeError('site view part: no "part" number');
    }
    if (typeof part.master !== 'string' || part.master === '' ||
        !Number.isInteger(part.version) || part.version < 0 ||
        typeof part.last !== 'boolean' || typeof part.strict !== 'boolean' ||
        !Array.isArray(part.listeners)) {
      throw new TypeError(`site view part ${part.part}: needs master, version, ` +
          'last, strict and a listeners array');
    }
    if (part.part === 0) {
      this._view = { master: part.master, version: part.version,
        strict: part.strict, listeners: [] };
      this._next = 0;
    }
    const view = this._view;
    if (view === null || part.part !== this._next || part.master !== view.master ||
        part.version !== view.version || part.strict !== view.strict) {
      throw new TypeError(`site view part ${part.part}: out of order`);
    }
    part.listeners.forEach((entry, i) => {
      if (entry === null || typeof entry !== 'object' ||
          !Number.isInteger(entry.index) || entry.index < 0 ||
          typeof entry.address !== 'string' || typeof entry.retired !== 'boolean' ||
          typeof entry.default !== 'boolean' || !Array.isArray(entry.own) ||
          !Array.isArray(entry.others) ||
          (entry.v6only !== undefined && typeof entry.v6only !== 'boolean')) {
        throw new TypeError(`site view part ${part.part}: a listener needs index, ` +
            'address, retired, default, own and others');
      }
      new HostChecker(entry);  // throws on a pattern not in normal form
      const last = view.listeners[view.listeners.length - 1];
      if (i === 0 && part.part > 0 && last && last.index === entry.index) {
        last.own.push(...entry.own);
        last.others.push(...entry.others);
        return;
      }
      // v6only is absent from an older master's views: "[::]" is then
      // taken as dual stack, as it was.
      view.listeners.push({ index: entry.index, address: entry.address,
        retired: entry.retired, default: entry.default, v6only: entry.v6only === true,
        own: [...entry.own], others: [...entry.others] });
    });
    this._next++;
    if (!part.last) return null;
    this._view = null;
    return view;
  }
}

// "127.0.0.1:80" / "[::1]:443" -> {ip, port}; null if neither.
function parseAddress(address) {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d+)$/.exec(address);
  if (!m) return null;
  return { ip: (m[1] || m[2]).toLowerCase(), port: Number(m[3]) };
}

// An IPv4-mapped IPv6 address ("::ffff:127.0.0.1", a dual-stack socket's
// IPv4 peer) as the IPv4 address it is.
function plainIp(ip) {
  if (typeof ip !== 'string') return '';
  const lower = ip.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

function isIpv4(ip) {
  return ip.includes('.') && !ip.includes(':');
}

// Whether a listener bound to `listenerIp` accepts a connection to local
// address `ip` (both plain): its own address; "0.0.0.0" any IPv4 one; "::"
// any IPv6 one, and IPv4 ones only when dual stack (not v6only).
function listenerAccepts(listenerIp, v6only, ip) {
  if (listenerIp === ip) return true;
  if (listenerIp === '0.0.0.0') return isIpv4(ip);
  if (listenerIp === '::') return !isIpv4(ip) || !v6only;
  return false;
}
const SOCKET_LISTENER = Symbol('ddv-worker.listener');
const SOCKET_LOCAL = Symbol('ddv-worker.local-address');
// The host ddv's master routed a connection by: on the handle its newconn
// message brought, then on the socket Node made of that handle.
const HANDLE_ROUTED = Symbol('ddv-worker.handle-routed-host');
const SOCKET_ROUTED = Symbol('ddv-worker.routed-host');
// On a socket (HTTP/1) or an HTTP/2 session: a request was seen on it; on
// that request (or stream): it was the first.
const FIRST_SEEN = Symbol('ddv-worker.first-request-seen');
const IS_FIRST = Symbol('ddv-worker.first-request');

// The host the master routed `socket`'s connection by ('' when unknown: no
// name, or a master older than the first-request rule); a TLS socket's is
// its transport's.
function routedHostOf(socket) {
  if (!socket) return '';
  return socket[SOCKET_ROUTED] || (socket._parent && socket._parent[SOCKET_ROUTED]) || '';
}

// The process's view and the check every HTTP server applies. Node hands a
// worker no listener index, so a connection's listener is found by the
// address it was accepted on (its local address and port).
class HostGuard {
  constructor() {
    this.view = null;
    this.generation = 0;
    this.misdirected = 0;
    this._assembler = new SiteViewAssembler();
    this._listeners = [];
  }

  // One {"ddv":"site_view"} message.
  receive(message) {
    let view;
    try {
      view = this._assembler.add(message);
    } catch (err) {
      process.emitWarning(`ddv-worker: site view refused: ${err.message}`);
      return;
    }
    if (view !== null) this.apply(view);
  }

  apply(view) {
    const listeners = [];
    for (const entry of view.listeners) {
      const address = parseAddress(entry.address);
      if (address === null) continue;
      listeners.push({ ...address, retired: entry.retired, v6only: entry.v6only === true,
        checker: new HostChecker(entry) });
    }
    this.view = view;
    this._listeners = listeners;
    this.generation++;
  }

  // The listener a socket was accepted on: a live one before a retired one
  // (a reload that replaced it kept its address), its own IP before a
  // wildcard one, a wildcard of the connection's family ("0.0.0.0" for
  // IPv4) before a dual-stack "::"; null when none matches.
  _listenerOf(socket) {
    const cached = socket[SOCKET_LISTENER];
    if (cached && cached.generation === this.generation) return cached.listener;
    // Kept at 'connection' (a TLS socket's is its transport's), else asked.
    const local = socket[SOCKET_LOCAL] || (socket._parent && socket._parent[SOCKET_LOCAL]) ||
        { address: socket.localAddress, port: socket.localPort };
    const ip = plainIp(local.address);
    const port = local.port;
    let best = null;
    let bestRank = -1;
    for (const listener of this._listeners) {
      if (listener.port !== port) continue;
      const listenerIp = plainIp(listener.ip);
      if (!listenerAccepts(listenerIp, listener.v6only, ip)) continue;
      const exact = listenerIp === ip;
      const sameFamily = isIpv4(listenerIp) === isIpv4(ip);
      const rank = (listener.retired ? 0 : 4) + (exact ? 2 : 0) + (sameFamily ? 1 : 0);
      if (rank > bestRank) {
        best = listener;
        bestRank = rank;
      }
    }
    socket[SOCKET_LISTENER] = { generation: this.generation, listener: best };
    return best;
  }

  // Whether requests are checked at all: a strict view has come.
  active() {
    return this.view !== null && this.view.strict;
  }

  // Whether `request` is the first one `holder` carried: the socket of an
  // HTTP/1 request (or upgrade, or CONNECT), the session of an HTTP/2
  // stream. The first one asked about is; asking again about it gives the
  // same answer (the guard asks first, worker.checkRequest may ask again).
  firstRequest(holder, request) {
    if (!holder || typeof holder !== 'object' || !request || typeof request !== 'object') {
      return false;
    }
    if (request[IS_FIRST] === true) return true;
    if (holder[FIRST_SEEN] === true) return false;
    holder[FIRST_SEEN] = true;
    request[IS_FIRST] = true;
    return true;
  }

  // 'allowed', 'misdirected' or 'invalid' for a request on `socket`;
  // `first`: it is the first request of its connection (firstRequest), and
  // naming the host the master routed the connection by it is allowed
  // whatever the view says by now. Later ones are checked against the view.
  check(socket, target, host, first = false) {
    if (!this.active() || !socket) return ALLOWED;
    if (first && namesRoutedHost(target, host, routedHostOf(socket))) return ALLOWED;
    const listener = this._listenerOf(socket);
    if (listener === null) return ALLOWED;
    const verdict = listener.checker.checkRequest(target, host || '');
    if (verdict === MISDIRECTED) this.misdirected++;
    return verdict;
  }

  // check() for a request object of http, https or http2 (its
  // compatibility API), on its connection and in its place there.
  checkRequest(req) {
    if (req.httpVersionMajor === 2 && req.stream) {
      const session = req.stream.session;
      return this.check(session ? session.socket : req.socket, req.url,
          req.headers[':authority'] || req.headers.host,
          this.firstRequest(session, req.stream));
    }
    return this.check(req.socket, req.url, req.headers.host,
        this.firstRequest(req.socket, req));
  }
}

const GUARD = Symbol.for('ddv-worker.host-guard');

// HTTP/1: refused before the app's 'request' (or 'checkContinue') listeners
// run, and the connection closes after the answer: what the client sent
// after it was meant for the same wrong site.
function refusalBody(verdict) {
  return verdict === MISDIRECTED ?
    'misdirected request: this connection\'s site does not serve that host\n' :
    'bad request: invalid host\n';
}

function refuseHttp1(res, verdict) {
  const body = refusalBody(verdict);
  res.writeHead(verdict === MISDIRECTED ? 421 : 400, {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'Connection': 'close',
  });
  res.end(body);
}

// An 'upgrade' (WebSocket) or 'connect' request: Node's server has let go
// of the socket (no ServerResponse), so the answer is written raw and the
// socket closed.
function refuseRaw(socket, verdict) {
  const body = refusalBody(verdict);
  const status = verdict === MISDIRECTED ? '421 Misdirected Request' : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  () => socket.destroy());
}

// `proto.emit` as it was before us: its own one if it had one, else
// whatever its parent prototype's is at the time of the call, so wrappers
// installed on net.Server.prototype later (lib/proxy.js) still run.
function previousEmit(proto) {
  const own = Object.prototype.hasOwnProperty.call(proto, 'emit') ? proto.emit : null;
  const parent = Object.getPrototypeOf(proto);
  return own !== null ? () => own : () => parent.emit;
}

// What the guard needs of a connection, kept at the server's 'connection'
// event: its own local address, before anything (lib/proxy.js, for a
// PROXY header) makes localAddress say the one the client connected to at
// an L4 tier, since the listener is found by the address ddv accepted it
// on; and the host the master routed it by, from its handle. Kept whether
// or not a strict view is in force: a reload can turn strict_host on while
// the connection lives.
function rememberConnection(socket) {
  if (socket === null || typeof socket !== 'object') return;
  socket[SOCKET_LOCAL] = { address: socket.localAddress, port: socket.localPort };
  const handle = socket._handle;
  if (handle && typeof handle[HANDLE_ROUTED] === 'string') {
    socket[SOCKET_ROUTED] = handle[HANDLE_ROUTED];
  }
}

// Node's cluster code emits a newconn message as process 'internalMessage'
// with the connection's handle, then makes it the socket its server emits
// at 'connection', in the same tick. ddv's master adds {"ddv":{"host":H}}
// to the message (docs/node.md): H goes on the handle until then.
function noteRoutedHost(message, handle) {
  if (message === null || typeof message !== 'object' || message.act !== 'newconn' ||
      handle === null || typeof handle !== 'object') {
    return;
  }
  const ddv = message.ddv;
  if (ddv !== null && typeof ddv === 'object' && typeof ddv.host === 'string' &&
      ddv.host !== '') {
    handle[HANDLE_ROUTED] = ddv.host;
  }
}

function guardHttp1(proto, guard) {
  const previous = previousEmit(proto);
  proto.emit = function emitCheckingHost(name, req, res) {
    if (name === 'connection') {
      rememberConnection(req);
    } else if ((name === 'request' || name === 'checkContinue') && req &&
        req.httpVersionMajor === 1) {
      const verdict = guard.checkRequest(req);
      if (verdict !== ALLOWED) {
        refuseHttp1(res, verdict);
        return true;
      }
    } else if ((name === 'upgrade' || name === 'connect') && req && res) {
      // (req, socket, head): a WebSocket upgrade, or CONNECT's
      // authority-form target ("b.test:443").
      const verdict = guard.check(res, req.url, req.headers.host,
          guard.firstRequest(res, req));
      if (verdict !== ALLOWED) {
        refuseRaw(res, verdict);
        return true;
      }
    }
    return previous().apply(this, arguments);
  };
}

// HTTP/2 (where coalescing happens): the stream gets 421 and the session
// stays open for the names that are this site's (RFC 9113 §9.1.2). A
// CONNECT stream is checked by its :authority too: plain CONNECT has no
// :path (the authority is its target), extended CONNECT (RFC 8441,
// WebSockets over HTTP/2) names its origin there. The session's first
// stream is its first request (docs/isolation.md says why).
function guardHttp2(proto, guard) {
  const previous = previousEmit(proto);
  proto.emit = function emitCheckingAuthority(name, stream, headers) {
    if (name === 'stream' && stream && headers) {
      const session = stream.session;
      const verdict = guard.check(session && session.socket, headers[':path'],
          headers[':authority'] || headers.host, guard.firstRequest(session, stream));
      if (verdict !== ALLOWED) {
        stream.respond({ ':status': verdict === MISDIRECTED ? 421 : 400,
          'content-type': 'text/plain' });
        stream.end(verdict === MISDIRECTED ? 'misdirected request\n' : 'bad request\n');
        return true;
      }
    }
    return previous().apply(this, arguments);
  };
}

// The process's guard, installed once whoever asks first (the preload, the
// ddv-worker package, or two copies of it): ddv's site_view messages are
// taken out of process 'message' events, and every http, https and http2
// server checks its requests' hosts.
function installGuard(proc = process) {
  if (proc[GUARD]) return proc[GUARD];
  const guard = new HostGuard();
  proc[GUARD] = guard;
  const emit = proc.emit;
  proc.emit = function emitWithoutSiteViews(name, message, handle) {
    if (name === 'message' && message !== null && typeof message === 'object' &&
        message.ddv === 'site_view') {
      guard.receive(message);
      return true;
    }
    if (name === 'internalMessage') noteRoutedHost(message, handle);
    return emit.apply(this, arguments);
  };
  guardHttp1(http.Server.prototype, guard);
  guardHttp1(https.Server.prototype, guard);
  const http2 = require('http2');
  for (const server of [http2.createServer(), http2.createSecureServer()]) {
    const proto = Object.getPrototypeOf(server);
    guardHttp2(proto, guard);
    // HTTP/1 requests on an allowHTTP1 server come as 'request' too.
    guardHttp1(proto, guard);
  }
  return guard;
}

function currentGuard(proc = process) {
  return proc[GUARD] || null;
}

module.exports = {
  ALLOWED,
  MISDIRECTED,
  INVALID,
  normalizeHost,
  requestAuthority,
  namesRoutedHost,
  HostChecker,
  SiteViewAssembler,
  HostGuard,
  installGuard,
  currentGuard,
  // What the guard does at a newconn message and at 'connection', for tests.
  noteRoutedHost,
  rememberConnection,
};
