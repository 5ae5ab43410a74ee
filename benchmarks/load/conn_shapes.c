/* conn_shapes: the load shapes wrk cannot make.

   usage:
     conn_shapes hold PORT COUNT MODE SECONDS [HOST]
     conn_shapes rate PORT PER_SECOND SECONDS [HOST]

   hold: keeps COUNT connections to 127.0.0.1:PORT open for SECONDS.
     MODE idle: they never send a byte.
     MODE slow: each sends `GET / HTTP/1.1\r\nHost: HOST\r\n\r\n` one byte
       per second (a slowloris-shaped client).
     A connection the server closes is counted, with the seconds it lived,
     and replaced by a new one, so COUNT stay open; connects are paced at
     5000/s so the listen backlog is not what is measured. Slot i connects
     from 127.0.0.(2 + i / 1000): held connections come from many clients,
     as they would in production. From one source address, 15k connections
     to one port fill half the ephemeral range, and every other connect()
     from 127.0.0.1 (wrk's) then spends its time in the kernel's port search
     (__inet_check_established: 85% of the client CPU, measured), so the
     load generator, not the server, was what the idle shape measured. Prints on stdout
     "holding N" once COUNT are open (or after 30 s, with how many are),
     then at the end:
       open N closed_by_server N lifetime_p50_ms X lifetime_max_ms X
       connect_errors N
   rate: opens PER_SECOND new connections per second on a fixed schedule
     (open loop: a slow answer does not delay the next start), each one
     `GET / HTTP/1.1` with `Host: HOST` and `Connection: close`, and records
     the time from the scheduled start to the end of the answer (the
     server's close), so queueing in the server counts as latency. At the
     end:
       requests N errors N non2xx N p50_us X p90_us X p99_us X max_us X
       achieved_rps R
     A connection with no answer after 5 s is an error.

   SIGTERM or SIGINT ends either mode early, with its report.
   One thread, one epoll, non-blocking sockets, loopback only.
   Built by run_load.py with `cc -O2 -o conn_shapes conn_shapes.c`.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static volatile sig_atomic_t stop_now; /* SIGTERM/SIGINT: report and exit */

static void on_stop(int sig) {
  (void)sig;
  stop_now = 1;
}
static int ep;
static char request[256];
static size_t request_len;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, long n, double p) {
  if (n == 0) return 0;
  long i = (long)(p * (n - 1) + 0.5);
  return v[i];
}

/* A non-blocking connect to addr, registered for `events` with `tag`;
   from `source` (network order) unless it is 0. The port is left to
   connect() (IP_BIND_ADDRESS_NO_PORT), so a source address has the whole
   ephemeral range per destination. */
static int open_conn(unsigned events, long tag, in_addr_t source) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (source != 0) {
    int one = 1;
    struct sockaddr_in from = {.sin_family = AF_INET,
                               .sin_addr.s_addr = source};
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&from, sizeof from) < 0) {
      close(fd);
      return -1;
    }
  }
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)tag};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ---------------------------------------------------------------- hold */

struct held {
  int fd;
  double opened;
  size_t sent; /* slow mode: bytes of `request` sent so far */
};

static int run_hold(long count, int slow, double seconds) {
  struct held *h = calloc(count, sizeof *h);
  /* Slots to (re)open, a stack: a reopen costs O(1), not a scan of COUNT. */
  long *free_slots = malloc(sizeof(long) * count);
  long n_free = 0;
  double *lifetimes = malloc(sizeof(double) * 1000000);
  long n_lifetimes = 0, closed = 0, connect_errors = 0, open_now = 0;
  for (long i = count - 1; i >= 0; i--) {
    h[i].fd = -1;
    free_slots[n_free++] = i;
  }
  double start = now(), end = start + seconds, next_tick = start + 1;
  double announce_by = start + 30;
  int announced = 0;
  const double pace = 1.0 / 5000;
  double next_open = start;
  struct epoll_event evs[256];
  while (now() < end && !stop_now) {
    /* Open (or reopen) slots, paced. */
    double t = now();
    while (next_open <= t && n_free > 0) {
      long slot = free_slots[--n_free];
      in_addr_t source = htonl(INADDR_LOOPBACK + 1 + slot / 1000);
      int fd = open_conn(EPOLLRDHUP | EPOLLIN, slot, source);
      if (fd < 0) {
        connect_errors++;
        free_slots[n_free++] = slot;
        next_open += pace;
        break; /* out of fds or ports: try again on the next turn */
      }
      h[slot].fd = fd;
      h[slot].opened = t;
      h[slot].sent = 0;
      open_now++;
      next_open += pace;
    }
    /* Do not burst after a stall, nor bank opens while all are open. */
    if (next_open < t - 1 || open_now >= count) next_open = t;
    if (!announced && (open_now >= count || t >= announce_by)) {
      printf("holding %ld\n", open_now);
      fflush(stdout);
      announced = 1;
    }
    if (slow && t >= next_tick) {
      next_tick += 1;
      for (long i = 0; i < count; i++) {
        if (h[i].fd < 0 || h[i].sent >= request_len) continue;
        if (send(h[i].fd, request + h[i].sent, 1, MSG_NOSIGNAL) == 1)
          h[i].sent++;
      }
    }
    int n = epoll_wait(ep, evs, 256, 2);
    for (int k = 0; k < n; k++) {
      long i = (long)evs[k].data.u64;
      if (h[i].fd < 0) continue;
      char buf[4096];
      ssize_t r = recv(h[i].fd, buf, sizeof buf, 0);
      if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR))) continue;
      /* Closed (or reset) by the server: count, free the slot. */
      if (n_lifetimes < 1000000) lifetimes[n_lifetimes++] = now() - h[i].opened;
      closed++;
      close(h[i].fd);
      h[i].fd = -1;
      free_slots[n_free++] = i;
      open_now--;
    }
  }
  if (!announced) printf("holding %ld\n", open_now);
  qsort(lifetimes, n_lifetimes, sizeof(double), cmp_double);
  printf("open %ld closed_by_server %ld lifetime_p50_ms %.0f "
         "lifetime_max_ms %.0f connect_errors %ld\n",
         open_now, closed, percentile(lifetimes, n_lifetimes, 0.5) * 1e3,
         n_lifetimes ? lifetimes[n_lifetimes - 1] * 1e3 : 0.0,
         connect_errors);
  return 0;
}

/* ---------------------------------------------------------------- rate */

struct timed {
  int fd;
  double scheduled;
  size_t sent;
  char head[16];
  size_t got;
};

static int run_rate(double per_second, double seconds) {
  long slots = (long)(per_second * 6) + 16; /* 5 s of answers in flight */
  struct timed *c = calloc(slots, sizeof *c);
  long n_samples = (long)(per_second * seconds) + 16;
  double *lat = malloc(sizeof(double) * n_samples);
  long n_lat = 0, errors = 0, non2xx = 0, in_flight = 0;
  for (long i = 0; i < slots; i++) c[i].fd = -1;
  double start = now(), end = start + seconds;
  long started = 0;
  long cursor = 0;
  struct epoll_event evs[256];
  for (;;) {
    double t = now();
    /* Every start due by now, on the fixed schedule. */
    while (t < end && start + started / per_second <= t) {
      double scheduled = start + started / per_second;
      started++;
      long tried = 0;
      while (tried < slots && c[cursor].fd >= 0) {
        cursor = (cursor + 1) % slots;
        tried++;
      }
      if (tried == slots) {
        errors++; /* more than 5 s of answers outstanding */
        continue;
      }
      int fd = open_conn(EPOLLOUT | EPOLLIN | EPOLLRDHUP, cursor, 0);
      if (fd < 0) {
        errors++;
        continue;
      }
      c[cursor] = (struct timed){.fd = fd, .scheduled = scheduled};
      in_flight++;
    }
    if (stop_now) end = t < end ? t : end;
    if (t >= end && in_flight == 0) break;
    /* Stalled connections: an error after 5 s. */
    if (t >= end + 5) {
      for (long i = 0; i < slots; i++)
        if (c[i].fd >= 0) {
          close(c[i].fd);
          c[i].fd = -1;
          errors++;
        }
      break;
    }
    double next = start + started / per_second;
    int wait_ms = t < end ? (int)((next - t) * 1e3) : 10;
    if (wait_ms < 0) wait_ms = 0;
    if (wait_ms > 10) wait_ms = 10;
    int n = epoll_wait(ep, evs, 256, wait_ms);
    for (int k = 0; k < n; k++) {
      long i = (long)evs[k].data.u64;
      struct timed *x = &c[i];
      if (x->fd < 0) continue;
      int done = 0, failed = 0;
      if ((evs[k].events & EPOLLOUT) && x->sent < request_len) {
        ssize_t w = send(x->fd, request + x->sent, request_len - x->sent,
                         MSG_NOSIGNAL);
        if (w > 0) {
          x->sent += w;
          if (x->sent == request_len) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                     .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
          }
        } else if (w < 0 && errno != EAGAIN) {
          failed = 1;
        }
      }
      if (!failed && (evs[k].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP |
                                       EPOLLERR))) {
        char buf[16384];
        for (;;) {
          ssize_t r = recv(x->fd, buf, sizeof buf, 0);
          if (r > 0) {
            size_t take = sizeof x->head - 1 - x->got;
            if (take > (size_t)r) take = r;
            memcpy(x->head + x->got, buf, take);
            x->got += take;
            continue;
          }
          if (r == 0) done = 1;
          else if (errno != EAGAIN && errno != EINTR) failed = 1;
          break;
        }
      }
      if (!done && !failed) continue;
      double finished = now();
      if (failed || x->got < 12) {
        errors++;
      } else {
        if (strncmp(x->head + 9, "200", 3) != 0) non2xx++;
        if (n_lat < n_samples) lat[n_lat++] = finished - x->scheduled;
      }
      close(x->fd);
      x->fd = -1;
      in_flight--;
    }
  }
  qsort(lat, n_lat, sizeof(double), cmp_double);
  printf("requests %ld errors %ld non2xx %ld p50_us %.0f p90_us %.0f "
         "p99_us %.0f max_us %.0f achieved_rps %.1f\n",
         n_lat, errors, non2xx, percentile(lat, n_lat, 0.5) * 1e6,
         percentile(lat, n_lat, 0.9) * 1e6, percentile(lat, n_lat, 0.99) * 1e6,
         n_lat ? lat[n_lat - 1] * 1e6 : 0.0, n_lat / seconds);
  return errors ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[1], "hold") == 0 && argc < 6)) {
    fprintf(stderr,
            "usage: conn_shapes hold PORT COUNT idle|slow SECONDS [HOST]\n"
            "       conn_shapes rate PORT PER_SECOND SECONDS [HOST]\n");
    return 2;
  }
  const char *mode = argv[1];
  int hold = strcmp(mode, "hold") == 0;
  const char *host = argc > (hold ? 6 : 5) ? argv[hold ? 6 : 5] : "a.localhost";
  addr.sin_family = AF_INET;
  addr.sin_port = htons(atoi(argv[2]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct sigaction sa = {.sa_handler = on_stop};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (hold) {
    int slow = strcmp(argv[4], "slow") == 0;
    if (!slow && strcmp(argv[4], "idle") != 0) {
      fprintf(stderr, "conn_shapes: MODE is idle or slow, not %s\n", argv[4]);
      return 2;
    }
    request_len = snprintf(request, sizeof request,
                           "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
    return run_hold(atol(argv[3]), slow, atof(argv[5]));
  }
  if (strcmp(mode, "rate") == 0) {
    request_len = snprintf(request, sizeof request,
                           "GET / HTTP/1.1\r\nHost: %s\r\n"
                           "Connection: close\r\n\r\n", host);
    return run_rate(atof(argv[3]), atof(argv[4]));
  }
  fprintf(stderr, "conn_shapes: unknown mode %s\n", mode);
  return 2;
}
