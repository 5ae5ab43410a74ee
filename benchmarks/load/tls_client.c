/* tls_client: full TLS handshakes, one HTTPS request each, either as many
   as the server takes (closed loop) or at a fixed rate (open loop).

   usage: tls_client PORT SECONDS CONNECTIONS [SNI [RATE]]

   One thread, one epoll. Each connection: non-blocking connect to
   127.0.0.1:PORT, TLS handshake with SNI (default a.localhost) and ALPN
   http/1.1, `GET / HTTP/1.1` with `Host: SNI` and `Connection: close`, read
   the answer, close. No resumption: every connection gets a fresh SSL
   object, the client keeps no session cache and offers no ticket, so every
   handshake is full (TLS 1.3, X25519, the server's certificate signature
   checked; the chain is not verified).

   Without RATE (or RATE 0), closed loop: CONNECTIONS connections are kept
   in flight, a finished one replaced at once by a new one, for SECONDS
   seconds; the rate is whatever the server and this client reach.
   With RATE > 0, open loop: RATE new connections per second on a fixed
   schedule for SECONDS seconds, whatever the answers do (a slow answer
   does not delay the next start), at most CONNECTIONS in flight (a start
   with every slot busy is an error); then up to 5 s for the last answers.
   This is the fixed, moderate rate at which a server's wake-ups per
   connection show, which saturation hides.

   At the end it prints one line and exits 0:
     requests N handshakes N errors N non2xx N resumed N seconds S rps R
     cpu_us U p50_us X p90_us X p99_us X max_us X
   requests: complete answers (status line and a body of Content-Length
   bytes); in the closed loop only those before the deadline. handshakes:
   completed handshakes; errors: connect/handshake/read failures, stalls
   (no progress for 5 s) and, with RATE, starts with no free slot; non2xx:
   answers that were not 200; resumed: handshakes that resumed a session
   (must be 0); cpu_us: this process's own user + system CPU (getrusage),
   the same work per handshake on every server path, so it tells how fast
   the machine ran meanwhile (with RATE it includes the waits' timer
   wake-ups too). pNN_us: latency of the answered connections, from the
   start (with RATE: the scheduled start, so queueing counts) to the end of
   the answer.

   Built by run_load.py with `cc -O2 -o tls_client tls_client.c -lssl -lcrypto`.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECT, ST_HANDSHAKE, ST_WRITE, ST_READ };

struct conn {
  int fd;
  int state;
  SSL *ssl;
  size_t sent;
  char buf[4096];
  size_t got;
  double last;
  double start; /* opened (closed loop) or scheduled (RATE) */
};

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int ep;
static const char *sni = "a.localhost";
static char request[256];
static size_t request_len;
static long n_requests, n_handshakes, n_errors, n_non2xx, n_resumed;
static double *lat; /* seconds from start to answer, per answer */
static long n_lat, cap_lat;

static void record_latency(double seconds) {
  if (n_lat == cap_lat) {
    long cap = cap_lat ? cap_lat * 2 : 65536;
    double *grown = realloc(lat, sizeof *lat * (size_t)cap);
    if (!grown) return; /* keep what we have */
    lat = grown;
    cap_lat = cap;
  }
  lat[n_lat++] = seconds;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double q) {
  if (n_lat == 0) return 0;
  return lat[(long)(q * (n_lat - 1) + 0.5)]; /* as conn_shapes.c */
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void conn_close(struct conn *c) {
  if (c->ssl) {
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    close(c->fd); /* epoll forgets it with the last reference */
    c->fd = -1;
  }
}

static int conn_open(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("socket");
    return -1;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->sent = c->got = 0;
  c->last = now();
  c->start = c->last;
  c->state = ST_CONNECT;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                           .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    perror("epoll_ctl");
    return -1;
  }
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
      errno != EINPROGRESS)
    return -1;
  return 0;
}

/* 1: answer complete; 0: need more; -1: bad. */
static int answer_complete(struct conn *c) {
  c->buf[c->got < sizeof c->buf ? c->got : sizeof c->buf - 1] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) return c->got >= sizeof c->buf - 1 ? -1 : 0;
  char *cl = strcasestr(c->buf, "\r\ncontent-length:");
  if (!cl || cl > end) return -1;
  long len = strtol(cl + 17, NULL, 10);
  size_t need = (size_t)(end + 4 - c->buf) + (size_t)len;
  return c->got >= need ? 1 : 0;
}

/* Drive one connection as far as it goes; returns 1 when it is finished
   (answered or failed) and must be replaced. */
static int step(struct conn *c) {
  for (;;) {
    switch (c->state) {
      case ST_CONNECT: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS) return 0;
        if (err != 0) {
          n_errors++;
          return 1;
        }
        /* Not yet connected: a zero-length peek tells. */
        struct sockaddr_in peer;
        socklen_t pl = sizeof peer;
        if (getpeername(c->fd, (struct sockaddr *)&peer, &pl) != 0) {
          if (errno == ENOTCONN) return 0;
          n_errors++;
          return 1;
        }
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, sni);
        SSL_set_connect_state(c->ssl);
        c->state = ST_HANDSHAKE;
        break;
      }
      case ST_HANDSHAKE: {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
          int e = SSL_get_error(c->ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
          n_errors++;
          ERR_clear_error();
          return 1;
        }
        n_handshakes++;
        if (SSL_session_reused(c->ssl)) n_resumed++;
        c->state = ST_WRITE;
        break;
      }
      case ST_WRITE: {
        int r = SSL_write(c->ssl, request, (int)request_len);
        if (r <= 0) {
          int e = SSL_get_error(c->ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
          n_errors++;
          ERR_clear_error();
          return 1;
        }
        c->state = ST_READ;
        break;
      }
      case ST_READ: {
        if (c->got >= sizeof c->buf - 1) {
          n_errors++;
          return 1;
        }
        int r = SSL_read(c->ssl, c->buf + c->got,
                         (int)(sizeof c->buf - 1 - c->got));
        if (r > 0) {
          c->got += (size_t)r;
          int done = answer_complete(c);
          if (done < 0) {
            n_errors++;
            return 1;
          }
          if (done) {
            /* The server closes after a Connection: close answer; like
               wrk, count the answer, then close our side. */
            if (strncmp(c->buf, "HTTP/1.1 200", 12) == 0) {
              n_requests++;
              record_latency(now() - c->start);
            } else {
              n_non2xx++;
            }
            return 1;
          }
          continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        /* Closed before a complete answer. */
        n_errors++;
        ERR_clear_error();
        return 1;
      }
    }
  }
}

/* Opens a connection in slot c; on failure counts an error and leaves the
   slot closed. Returns 0 when open. */
static int open_or_count(struct conn *c) {
  if (conn_open(c) == 0) return 0;
  n_errors++;
  conn_close(c);
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s PORT SECONDS CONNECTIONS [SNI [RATE]]\n",
            argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  double seconds = atof(argv[2]);
  int nconn = atoi(argv[3]);
  if (argc > 4) sni = argv[4];
  double rate = argc > 5 ? atof(argv[5]) : 0;
  if (port <= 0 || seconds <= 0 || nconn <= 0 || nconn > 10000 || rate < 0) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request,
                                 "GET / HTTP/1.1\r\nHost: %s\r\n"
                                 "Connection: close\r\n\r\n", sni);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return 1;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);

  /* RATE may keep thousands in flight: as many fds as we may have. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct conn *conns = calloc((size_t)nconn, sizeof *conns);
  /* RATE: the free slots, a stack. */
  int *free_slots = calloc((size_t)nconn, sizeof *free_slots);
  int n_free = 0;
  if (ep < 0 || !conns || !free_slots) return 1;
  for (int i = 0; i < nconn; i++) conns[i].fd = -1;
  if (rate > 0) {
    for (int i = nconn - 1; i >= 0; i--) free_slots[n_free++] = i;
  } else {
    for (int i = 0; i < nconn; i++) open_or_count(&conns[i]);
  }
  double start = now(), deadline = start + seconds, last_scan = start;
  /* RATE: after the deadline, the connections in flight get up to 5 s. */
  double hard_end = rate > 0 ? deadline + 5 : deadline;
  long started = 0;
  struct epoll_event evs[256];
  for (;;) {
    double t = now();
    if (rate > 0) {
      /* Every start due by now, on the fixed schedule. */
      while (t < deadline && start + started / rate <= t) {
        double scheduled = start + started / rate;
        started++;
        if (n_free == 0) {
          n_errors++; /* CONNECTIONS answers outstanding */
          continue;
        }
        struct conn *c = &conns[free_slots[--n_free]];
        if (open_or_count(c) != 0) {
          free_slots[n_free++] = (int)(c - conns);
          continue;
        }
        c->start = scheduled;
      }
      if (t >= deadline && n_free == nconn) break;
    } else if (t >= deadline) {
      break;
    }
    if (t >= hard_end) break;
    /* Sleep until the next start (RATE) or 100 ms, exactly: epoll_wait's
       milliseconds would round a 0.6 ms gap down to a busy loop. */
    double wait = rate > 0 && t < deadline ? start + started / rate - t : 0.1;
    if (wait > 0.1) wait = 0.1;
    if (wait < 0) wait = 0;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(wait * 1e9)};
    int n = epoll_pwait2(ep, evs, 256, &ts, NULL);
    if (n < 0 && errno != EINTR) {
      perror("epoll_pwait2");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      struct conn *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      c->last = now();
      if (!step(c)) continue;
      conn_close(c);
      if (rate > 0)
        free_slots[n_free++] = (int)(c - conns);
      else
        open_or_count(c);
    }
    t = now();
    if (t - last_scan >= 0.5) { /* stalls, and slots that failed to open */
      last_scan = t;
      for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        if (c->fd >= 0 && t - c->last < 5.0) continue;
        if (rate > 0 && c->fd < 0) continue; /* a free slot */
        if (c->fd >= 0) n_errors++;
        conn_close(c);
        if (rate > 0)
          free_slots[n_free++] = i;
        else
          open_or_count(c);
      }
    }
  }
  for (int i = 0; i < nconn; i++) {
    if (rate > 0 && conns[i].fd >= 0) n_errors++; /* no answer in 5 s */
    conn_close(&conns[i]);
  }
  /* The closed loop's rate is over the run; the open loop's over the
     schedule (the last answers come after it). */
  double el = rate > 0 ? seconds : now() - start;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu_us = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                  ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
  qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
  printf("requests %ld handshakes %ld errors %ld non2xx %ld resumed %ld "
         "seconds %.3f rps %.1f cpu_us %.0f p50_us %.0f p90_us %.0f "
         "p99_us %.0f max_us %.0f\n", n_requests, n_handshakes, n_errors,
         n_non2xx, n_resumed, el, n_requests / el, cpu_us,
         percentile(0.5) * 1e6, percentile(0.9) * 1e6,
         percentile(0.99) * 1e6, n_lat ? lat[n_lat - 1] * 1e6 : 0.0);
  fflush(stdout);
  return 0;
}
