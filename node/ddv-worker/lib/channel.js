'use strict';
// ddv's own messages on the Node cluster IPC channel: JSON objects with a
// "ddv" field, sent with process.send() and received as process 'message'
// events. They are taken out before any other 'message' listener sees them
// (the app's, or cluster's own Worker re-emitting them), so an app only ever
// sees its own messages. Protocol: README.md ("Protocol").

const { currentGuard } = require('./host_check');

const PROTOCOL_VERSION = 1;
// The master reads the channel as lines and refuses one longer than this
// (src/handoff/node_cluster.h kMaxLineBytes).
const MAX_LINE_BYTES = 64 * 1024;

function isDdvMessage(message) {
  return message !== null && typeof message === 'object' &&
      typeof message.ddv === 'string';
}

class Channel {
  // `proc` is `process` (a cluster worker's, with send()); `onMessage(body,
  // from)` receives what other workers sent through the master.
  constructor(proc, onMessage) {
    this._proc = proc;
    this._onMessage = onMessage;
    this._nextId = 1;
    this._pending = new Map();  // rpc id -> {callback, timer}
  }

  // Starts taking ddv messages out of process 'message' events and says
  // hello: from then on the master expects pongs.
  attach() {
    const proc = this._proc;
    const emit = proc.emit;
    const channel = this;
    proc.emit = function emitWithoutDdvMessages(name, message) {
      if (name === 'message' && isDdvMessage(message)) {
        channel._receive(message);
        return true;
      }
      return emit.apply(this, arguments);
    };
    proc.once('disconnect', () => {
      const error = new Error('the channel to the ddv master closed');
      for (const id of [...this._pending.keys()]) this._settle(id, error);
    });
    this._post({ ddv: 'hello', version: PROTOCOL_VERSION });
  }

  // Calls `method` on the master; `callback(err, body)` runs exactly once:
  // on the reply, on a send failure, or after `timeoutMs`.
  call(method, body, timeoutMs, callback) {
    const id = this._nextId++;
    const timer = setTimeout(() => {
      this._settle(id, new Error(
          `the ddv master did not answer ${method} within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    this._pending.set(id, { callback, timer });
    this._post({ ddv: 'rpc', id, method, body }, (err) => {
      if (err) this._settle(id, err);
    });
  }

  // Hands `body` to worker `worker` (-1: any) of site `site`, through the
  // master. Throws a RangeError when the message is over the master's limit.
  send(site, worker, body) {
    const message = { ddv: 'send', site, worker, body };
    const bytes = Buffer.byteLength(JSON.stringify(message)) + 1;
    if (bytes > MAX_LINE_BYTES) {
      throw new RangeError(`a message to another worker is ${bytes} bytes ` +
          `as JSON; the ddv master takes at most ${MAX_LINE_BYTES}`);
    }
    return this._post(message);
  }

  _receive(message) {
    switch (message.ddv) {
      case 'ping':
        this._post({ ddv: 'pong', seq: message.seq });
        break;
      case 'reply':
        if (message.ok === true) {
          this._settle(message.id, null, message.body);
        } else {
          this._settle(message.id, new Error(
              typeof message.error === 'string' && message.error !== '' ?
                message.error : 'the ddv master refused the call'));
        }
        break;
      case 'message':
        this._onMessage(message.body, message.from);
        break;
      case 'site_view': {
        // Wrapped after the preload's guard, this listener sees the view
        // first: it goes to the process's guard (lib/host_check.js).
        const guard = currentGuard(this._proc);
        if (guard !== null) guard.receive(message);
        break;
      }
      default:
        // A newer master's message this version does not know: ignored.
        break;
    }
  }

  _settle(id, err, body) {
    const pending = this._pending.get(id);
    if (pending === undefined) return;  // late reply after a timeout
    this._pending.delete(id);
    clearTimeout(pending.timer);
    pending.callback(err, body);
  }

  // process.send() with a callback reports a closed channel to it instead of
  // as a process 'error' event. Returns false once the channel is gone.
  _post(message, callback = () => {}) {
    if (!this._proc.connected) {
      process.nextTick(callback, new Error('the channel to the ddv master is closed'));
      return false;
    }
    this._proc.send(message, callback);
    return true;
  }
}

module.exports = { Channel, isDdvMessage, MAX_LINE_BYTES, PROTOCOL_VERSION };
