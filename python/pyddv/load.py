"""Bounded HTTP load for the chaos tests: real traffic on loopback while a
scenario acts, every outcome counted.

`start_load` drives one of two shapes, each in a forked child process (its
own CPU, no GIL shared with the scenario) on one epoll loop:
- "keepalive": `connections` connections, each sending its next request as
  soon as the previous answer is whole, `requests_per_connection` per
  connection, then a new connection;
- "new_connection": `connections` requests in flight, each on a new
  connection with `Connection: close`.
A load stops at `duration` seconds or `max_requests` requests, whichever
comes first, or when asked (`Load.stop()`); `rate` caps the requests
started per second. `Load.result()` waits (bounded) and returns a
`LoadResult`.

Every request ends in exactly one outcome:
- ok: a whole 2xx answer;
- "status": a whole answer that is not 2xx (by code in `statuses`);
- "connect": the connection could not be made (detail: the errno name);
- "reset": ECONNRESET or EPIPE on a send or receive;
- "closed": the server closed before the answer was whole (detail says
  whether any byte of it had come);
- "timeout": no whole answer within `timeout` s of the request's start
  (its connect included);
- "bad_response": bytes that are not an HTTP/1.x answer.
Failures are also listed one by one (`LoadResult.events`, first
`MAX_EVENTS`), with the connection's local port, the requests it had
completed and the pid of the worker that last answered on it, so a test can
tell whose connections failed. Each 2xx answer from ddv_hello names its
`site`, `worker` and `pid` (docs/hello.md): `LoadResult.pids` counts them,
with the monotonic times of each pid's first and last answer (CLOCK_MONOTONIC
is one clock for every process, so they compare with the scenario's
`time.monotonic()`), and `LoadResult.hosts` counts answers per Host and site.
Also: `requests`, `ok`, `connections` opened, `latency_max` (s) and when
(`latency_max_at`), `latency` (s: `p50`, `p90`, `p99`, `p999` of the 2xx
answers, from request start to the whole answer), `started` and `ended`.

A keep-alive connection is replaced by a new one after an answer that says
`Connection: close` (counted in `told_to_close`), and when the server
closes it while it waits for its rate token (`idle_closed`): no request
was on it, so none fails. Nothing is retried: a request that was sent and
not answered is a failure.

`start_download` reads one large `GET /bytes/N` from ddv_hello at a bounded
rate and checks it byte for byte against the pattern ddv_hello sends
(`hello_bytes`).
"""
import errno
import json
import os
import select
import signal
import socket
import time

MAX_EVENTS = 2000
FAILURE_KINDS = ("status", "connect", "reset", "closed", "timeout",
                 "bad_response")


# ---------------------------------------------------------------------------
# The pattern of ddv_hello's GET /bytes/N (src/hello/http_responder.cc).

HELLO_PERIOD = 64


def hello_bytes(offset, n):
    """Bytes [offset, offset + n) of any /bytes/N body: 64-byte lines of
    'a'..'z' cycling, the 64th byte of each line a newline."""
    line = bytes(ord("a") + i % 26 for i in range(HELLO_PERIOD - 1)) + b"\n"
    start = offset % HELLO_PERIOD
    reps = (start + n) // HELLO_PERIOD + 1
    return (line * reps)[start:start + n]


# ---------------------------------------------------------------------------
# Running a function in a forked child, its JSON result read back by pid.

class _Child:
    """A forked child that runs fn(stop_fd) and sends back its JSON result.

    The child is its own process group leader, so stop() can end it and
    anything it started by pid and group, never by name."""

    def __init__(self, fn, bound):
        stop_r, stop_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                os.setpgid(0, 0)
                os.close(stop_w)
                os.close(out_r)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                data = json.dumps(fn(stop_r)).encode()
            except BaseException as e:  # reported to the parent
                data = json.dumps({"error": f"{type(e).__name__}: {e}"}).encode()
                code = 1
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out_w, view):]
            finally:
                os._exit(code)
        os.close(stop_r)
        os.close(out_w)
        self.pid = pid
        self._stop_w = stop_w
        self._out_r = out_r
        self._bound = bound
        self._result = None

    def ask_stop(self):
        """Asks the child to finish now (it still reports)."""
        if self._stop_w is not None:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass

    def result(self, timeout=None):
        """The child's result (a dict); waits at most `timeout` s (default:
        the bound given at start, measured from now), then kills it."""
        if self._result is not None:
            return self._result
        deadline = time.monotonic() + (self._bound if timeout is None
                                       else timeout)
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise TimeoutError(f"load child {self.pid} did not finish")
            ready, _, _ = select.select([self._out_r], [], [], left)
            if not ready:
                continue
            data = os.read(self._out_r, 1 << 20)
            if not data:
                break
            chunks.append(data)
        os.close(self._out_r)
        self._out_r = None
        os.close(self._stop_w)
        self._stop_w = None
        os.waitpid(self.pid, 0)
        self.pid = None
        self._result = json.loads(b"".join(chunks) or b"{}")
        if "error" in self._result and len(self._result) == 1:
            raise RuntimeError(f"load child failed: {self._result['error']}")
        return self._result

    def kill(self):
        """SIGKILL to the child's process group (its pid), then reaps it."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None
        for fd in (self._out_r, self._stop_w):
            if fd is not None:
                os.close(fd)
        self._out_r = self._stop_w = None


# ---------------------------------------------------------------------------
# The load loop.

class _Conn:
    __slots__ = ("sock", "fd", "id", "host", "port", "state", "buf", "out",
                 "reqs", "pid", "t_req", "got_bytes")

    CONNECTING, SENDING, READING, WAITING = range(4)


def _errno_name(e):
    return errno.errorcode.get(e, str(e))


def _parse_head(buf, end):
    """(status, content_length, closes) of the head buf[:end], or None.
    `closes`: the answer says `Connection: close`."""
    lines = bytes(buf[:end]).split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        return None
    try:
        status = int(parts[1])
    except ValueError:
        return None
    length = None
    closes = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return None
        elif name == b"connection":
            tokens = [t.strip() for t in value.lower().split(b",")]
            closes = b"close" in tokens or (
                closes and b"keep-alive" not in tokens)
    if length is None:
        return None
    return status, length, closes


def _hello_fields(body):
    """site, worker, pid of a ddv_hello answer (None when it is not one)."""
    f = {}
    for item in body[:200].split(b" ", 3)[:3]:
        k, _, v = item.partition(b"=")
        f[k] = v
    if b"pid" not in f:
        return None
    try:
        return (f[b"site"].decode(), int(f[b"worker"]), int(f[b"pid"]))
    except (KeyError, ValueError):
        return None


def _family(address):
    """AF_INET6 for an IPv6 literal ("::1"), else AF_INET."""
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def _run_load(stop_fd, port, hosts, mode, connections, duration,
              max_requests, rate, timeout, path, requests_per_connection,
              address):
    keepalive = mode == "keepalive"
    if mode not in ("keepalive", "new_connection"):
        raise ValueError(f"mode {mode!r}")
    ep = select.epoll()
    ep.register(stop_fd, select.EPOLLIN)
    conns = {}          # fd -> _Conn
    waiting = []        # _Conn (or slots, None) waiting for a rate token
    out = {
        "mode": mode, "ok": 0, "requests": 0, "connections": 0,
        "failures": {k: 0 for k in FAILURE_KINDS}, "statuses": {},
        "events": [], "pids": {}, "hosts": {},
        "latency_max": 0.0, "latency_max_at": None, "idle_closed": 0,
        "told_to_close": 0,
    }
    pids = out["pids"]
    latencies = []      # of the 2xx answers, for the percentiles
    host_counts = {h: {"ok": 0, "failed": 0, "sites": {}} for h in hosts}
    out["hosts"] = host_counts
    requests = {h: (f"GET {path} HTTP/1.1\r\nHost: {h}\r\n"
                    + ("" if keepalive else "Connection: close\r\n")
                    + "\r\n").encode() for h in hosts}
    t0 = time.monotonic()
    out["started"] = t0
    end = t0 + duration
    started = 0         # requests started
    next_host = 0
    next_id = 0
    stopping = False

    def take_token(now):
        nonlocal started
        if started >= max_requests or now >= end or stopping:
            return None
        if rate and now < t0 + started / rate:
            return False
        started += 1
        return True

    def record_failure(c, kind, detail, now):
        out["failures"][kind] += 1
        host_counts[c.host]["failed"] += 1
        if len(out["events"]) < MAX_EVENTS:
            out["events"].append({
                "t": now, "kind": kind, "detail": detail, "host": c.host,
                "conn": c.id, "port": c.port, "reqs": c.reqs, "pid": c.pid})

    def open_conn(host, now):
        nonlocal next_id
        c = _Conn()
        next_id += 1
        c.id, c.host, c.port, c.reqs, c.pid = next_id, host, None, 0, None
        c.buf, c.got_bytes = bytearray(), 0
        c.t_req = now
        c.out = requests[host]
        s = socket.socket(_family(address), socket.SOCK_STREAM)
        s.setblocking(False)
        c.sock, c.fd = s, s.fileno()
        out["connections"] += 1
        rc = s.connect_ex((address, port))
        if rc not in (0, errno.EINPROGRESS):
            record_failure(c, "connect", _errno_name(rc), now)
            out["requests"] += 1
            s.close()
            # Its replacement starts from the loop, not from here: no
            # recursion, and no spin while connects keep failing at once.
            waiting.append(None)
            return
        c.port = s.getsockname()[1]
        conns[c.fd] = c
        # Connected or not yet, the request goes out when it is writable.
        c.state = _Conn.CONNECTING
        ep.register(c.fd, select.EPOLLOUT)

    def close_conn(c):
        if c.fd in conns:
            del conns[c.fd]
            try:
                ep.unregister(c.fd)
            except OSError:
                pass
        c.sock.close()

    def send(c, now):
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            n = 0
        except OSError as e:
            fail(c, "reset", _errno_name(e.errno), now)
            return
        c.out = c.out[n:]
        if c.out:
            if c.state != _Conn.SENDING:
                c.state = _Conn.SENDING
                ep.modify(c.fd, select.EPOLLOUT)
        else:
            if c.state != _Conn.READING:
                c.state = _Conn.READING
                ep.modify(c.fd, select.EPOLLIN)

    def fail(c, kind, detail, now):
        """Ends c's request with a failure and replaces c."""
        close_conn(c)
        out["requests"] += 1
        record_failure(c, kind, detail, now)
        next_request(None, now)

    def complete(c, status, body, closes, now):
        out["requests"] += 1
        latency = now - c.t_req
        if latency > out["latency_max"]:
            out["latency_max"] = latency
            out["latency_max_at"] = now
        c.reqs += 1
        if 200 <= status < 300:
            out["ok"] += 1
            if len(latencies) < 10**6:
                latencies.append(latency)
            hc = host_counts[c.host]
            hc["ok"] += 1
            who = _hello_fields(body)
            if who is not None:
                site, worker, pid = who
                c.pid = pid
                hc["sites"][site] = hc["sites"].get(site, 0) + 1
                p = pids.get(pid)
                if p is None:
                    pids[pid] = {"site": site, "worker": worker, "count": 1,
                                 "first": now, "last": now}
                else:
                    p["count"] += 1
                    p["last"] = now
        else:
            key = str(status)
            out["statuses"][key] = out["statuses"].get(key, 0) + 1
            record_failure(c, "status", key, now)
        if keepalive and closes:
            out["told_to_close"] += 1
        keep = (keepalive and 200 <= status < 300 and not closes
                and c.reqs < requests_per_connection)
        if keep:
            c.buf = bytearray()
            c.got_bytes = 0
            next_request(c, now)
        else:
            if not keepalive:
                # The server closes after a Connection: close answer; taking
                # its FIN first leaves the TIME_WAIT on its side.
                try:
                    c.sock.recv(1)
                except OSError:
                    pass
            close_conn(c)
            next_request(None, now)

    def next_request(c, now):
        """Starts the next request on c (None: on a new connection)."""
        token = take_token(now)
        if token is None:
            if c is not None:
                close_conn(c)
            return
        if token is False:
            if c is not None:
                c.state = _Conn.WAITING
            waiting.append(c)
            return
        start_on(c, now)

    def start_on(c, now):
        nonlocal next_host
        if c is None:
            host = hosts[next_host % len(hosts)]
            next_host += 1
            open_conn(host, now)
        else:
            c.t_req = now
            c.out = requests[c.host]
            c.state = _Conn.READING  # send() moves it to SENDING if needed
            send(c, now)

    def on_readable(c, now):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as e:
            fail(c, "reset", _errno_name(e.errno), now)
            return
        if not data:
            fail(c, "closed", "before any answer byte" if not c.got_bytes
                 else f"after {c.got_bytes} answer bytes", now)
            return
        c.got_bytes += len(data)
        c.buf += data
        buf = c.buf
        end_head = buf.find(b"\r\n\r\n")
        if end_head < 0:
            if len(buf) > 65536:
                fail(c, "bad_response", "head over 64 KiB", now)
            return
        head = _parse_head(buf, end_head)
        if head is None:
            fail(c, "bad_response", bytes(buf[:80]).decode("latin-1"), now)
            return
        status, length, closes = head
        body_start = end_head + 4
        if len(buf) < body_start + length:
            return
        if len(buf) > body_start + length:
            fail(c, "bad_response", "bytes after the answer", now)
            return
        complete(c, status, bytes(buf[body_start:]), closes, now)

    # Start: `connections` requests (each one connection).
    now = time.monotonic()
    for _ in range(connections):
        next_request(None, now)

    last_scan = now
    while True:
        now = time.monotonic()
        if now >= end:
            stopping = True
        if stopping or started >= max_requests:
            # Nothing new starts: what waits for a token is done.
            for c in waiting:
                if c is not None:
                    close_conn(c)
            waiting.clear()
            if not conns:
                break
        # Rate tokens for the waiting (each once per pass: a connect that
        # fails at once waits for the next pass).
        for _ in range(len(waiting)):
            if not take_token(now):
                break
            start_on(waiting.pop(0), now)
        wait = 0.05
        if waiting and rate:
            wait = max(0.0, min(wait, t0 + started / rate - now))
        for fd, ev in ep.poll(wait):
            now = time.monotonic()
            if fd == stop_fd:
                ep.unregister(stop_fd)
                stopping = True
                end = now
                continue
            c = conns.get(fd)
            if c is None:
                continue
            if c.state == _Conn.CONNECTING:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    close_conn(c)
                    out["requests"] += 1
                    record_failure(c, "connect", _errno_name(err), now)
                    next_request(None, now)
                    continue
                c.state = _Conn.SENDING
                send(c, now)
            elif c.state == _Conn.SENDING:
                if ev & (select.EPOLLERR | select.EPOLLHUP) and not (
                        ev & select.EPOLLOUT):
                    fail(c, "reset", "EPOLLERR", now)
                else:
                    send(c, now)
            elif c.state == _Conn.READING:
                on_readable(c, now)
            elif c.state == _Conn.WAITING:
                # Closed by the server while idle, between two requests: no
                # request is lost; the next one goes on a new connection.
                close_conn(c)
                waiting[waiting.index(c)] = None
                out["idle_closed"] += 1
        now = time.monotonic()
        if now - last_scan >= 0.05:
            last_scan = now
            for c in list(conns.values()):
                if c.state != _Conn.WAITING and now - c.t_req > timeout:
                    fail(c, "timeout", f"{timeout} s", now)
    ep.close()
    out["ended"] = time.monotonic()
    latencies.sort()
    out["latency"] = {
        name: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        if latencies else None
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99),
                        ("p999", 0.999))}
    return out


class LoadResult(dict):
    """What a load saw (the child's JSON, see the module docstring), with
    helpers for assertions."""

    def failed(self):
        """Requests that failed, of every kind (non-2xx included)."""
        return sum(self["failures"].values())

    def rate(self):
        took = self["ended"] - self["started"]
        return self["requests"] / took if took > 0 else 0.0

    def pids_of(self, site=None):
        """{pid: info} of the workers (of `site`) that answered."""
        return {int(p): v for p, v in self["pids"].items()
                if site is None or v["site"] == site}

    def summary(self):
        """One line for assertion messages and logs."""
        f = {k: v for k, v in self["failures"].items() if v}
        return (f"{self['mode']}: {self['requests']} requests "
                f"({self.rate():.0f}/s), {self['ok']} ok, failures {f}, "
                f"statuses {self['statuses']}, "
                f"{self['connections']} connections, "
                f"max latency {self['latency_max'] * 1000:.0f} ms, "
                f"pids {sorted(self['pids'])}, first events "
                f"{self['events'][:5]}")


class Load:
    """A running load; see start_load."""

    def __init__(self, child, duration):
        self._child = child
        self.duration = duration

    @property
    def pid(self):
        return self._child.pid

    def stop(self):
        """Asks the load to end now; in-flight requests still finish."""
        self._child.ask_stop()

    def result(self, timeout=None):
        return LoadResult(self._child.result(timeout))

    def kill(self):
        """Ends the load's process at once (cleanup); no result."""
        self._child.kill()


def start_load(port, hosts, mode="keepalive", connections=16, duration=10.0,
               max_requests=10**9, rate=None, timeout=5.0, path="/",
               requests_per_connection=10**9, address="127.0.0.1"):
    """Starts a load in a forked child; returns a `Load`. `hosts`: the Host
    headers, taken in turn by each new connection; `address`: an IPv4 or
    IPv6 literal to connect to. See the module docstring for the rest."""
    if isinstance(hosts, str):
        hosts = [hosts]
    hosts = list(hosts)

    def run(stop_fd):
        return _run_load(stop_fd, port, hosts, mode, connections, duration,
                         max_requests, rate, timeout, path,
                         requests_per_connection, address)

    return Load(_Child(run, bound=duration + timeout + 10), duration)


# ---------------------------------------------------------------------------
# The large, slow, checked download.

def _run_download(stop_fd, port, host, size, rate, timeout, rcvbuf, address):
    out = {"status": None, "length": None, "received": 0, "mismatch": None,
           "error": None, "complete": False}
    s = socket.socket(_family(address), socket.SOCK_STREAM)
    # A small receive buffer, so the server is still sending (flow
    # controlled), not done and waiting in kernel buffers.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    t0 = time.monotonic()
    out["started"] = t0
    pattern = hello_bytes(0, HELLO_PERIOD + 2 * 65536)
    try:
        s.connect((address, port))
        s.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        buf = bytearray()
        body_at = None
        got = 0  # body bytes
        while True:
            if select.select([stop_fd], [], [], 0)[0]:
                out["error"] = "stopped"
                break
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                out["error"] = f"no byte for {timeout} s"
                break
            except OSError as e:
                out["error"] = _errno_name(e.errno)
                break
            if not chunk:
                break
            if body_at is None:
                buf += chunk
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head = _parse_head(buf, end)
                if head is None:
                    out["error"] = "bad answer head"
                    break
                out["status"], out["length"], _ = head
                body_at = end + 4
                chunk = bytes(buf[body_at:])
            # Check the chunk against the pattern at its offset.
            if out["mismatch"] is None:
                start = got % HELLO_PERIOD
                expected = pattern[start:start + len(chunk)]
                if chunk != expected:
                    out["mismatch"] = got + next(
                        i for i in range(len(chunk))
                        if i >= len(expected) or chunk[i] != expected[i])
            got += len(chunk)
            # Pace: never ahead of `rate`.
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        out["received"] = got
        out["complete"] = (out["status"] == 200 and got == out["length"]
                           == size and out["mismatch"] is None
                           and out["error"] is None)
    finally:
        s.close()
        out["ended"] = time.monotonic()
    return out


def start_download(port, host, size, rate, timeout=5.0, rcvbuf=64 * 1024,
                   address="127.0.0.1"):
    """Starts `GET /bytes/<size>` (Host `host`) read at `rate` bytes per
    second in a forked child; returns a `Load` whose result() is a dict:
    status, length (Content-Length), received (body bytes), mismatch (the
    first offset whose byte is not ddv_hello's pattern, or None), error
    (errno name, "no byte for T s", "bad answer head", or None), complete
    (200, every byte, exact, closed cleanly), started, ended. `timeout`
    bounds each wait for bytes."""

    def run(stop_fd):
        return _run_download(stop_fd, port, host, size, rate, timeout,
                             rcvbuf, address)

    return Load(_Child(run, bound=size / rate * 1.5 + timeout + 30),
                size / rate)
