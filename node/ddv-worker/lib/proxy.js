'use strict';
// What a PROXY protocol header (from an L4 load balancer in front of ddv)
// said about a connection, for Node apps. ddv's master reads the header
// itself, drops its bytes from the socket and puts its facts in the
// `newconn` message that carries the socket ({"ddv":{"proxy":{...}}},
// docs/node.md). Node's cluster code ignores that member; this takes it and
// gives it to the socket the server is about to emit: remoteAddress,
// remotePort and remoteFamily become the client's, localAddress and
// localPort the address it connected to, and socket.proxy holds the rest
// (TLVs).

const net = require('net');

// The facts of the newconn message being dispatched, between Node's
// delivery of the message (our 'internalMessage' listener runs first) and
// the server's 'connection' event for its socket, in the same tick.
let pending = null;

function clear() {
  pending = null;
}

// Makes `socket` report the PROXY addresses: Node reads them through
// _peername and _sockname, which it caches; filled in here, they are what
// remoteAddress, remotePort, remoteFamily, localAddress and localPort say.
function apply(socket, proxy) {
  if (proxy.source) socket._peername = { ...proxy.source };
  if (proxy.destination) socket._sockname = { ...proxy.destination };
  socket.proxy = proxy;
}

// Once per process, under ddv only.
function install(proc) {
  const key = Symbol.for('ddv-worker.proxy');
  if (proc[key]) return;
  proc[key] = true;
  proc.prependListener('internalMessage', (message) => {
    if (message === null || typeof message !== 'object' ||
        message.act !== 'newconn') {
      return;
    }
    // Each newconn sets it (or clears it), so one message's facts never
    // reach another's socket.
    pending = message.ddv && message.ddv.proxy ? message.ddv.proxy : null;
    if (pending !== null) process.nextTick(clear);
  });
  const emit = net.Server.prototype.emit;
  net.Server.prototype.emit = function emitWithProxy(name, socket) {
    if (name === 'connection' && pending !== null && socket instanceof net.Socket) {
      const proxy = pending;
      pending = null;
      apply(socket, proxy);
    }
    return emit.apply(this, arguments);
  };
}

module.exports = { install };
