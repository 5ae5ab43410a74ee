/* A worker in C on the C API (ddv_worker.h), for the isolation and 421
 * tests: it answers each request with "c_worker site=SITE host=HOST" (the
 * request's Host), keep-alive until the client closes, sends
 * "Connection: close" or is idle for 2 s. Before answering it checks the
 * request's name as docs/worker.md tells a C app to: the first request on a
 * connection with ddv_worker_check_first_request() (it may name the host
 * the master routed the connection by), later ones with
 * ddv_worker_check_request(); 421 or 400 and close when refused. Like an
 * app with its own event loop it takes connections inside
 * ddv_worker_drain() and reads them after it returns (so a site view that
 * came behind a connection is in force by then), one at a time, and tells
 * the library how many it has open (ddv_worker_set_open_connections). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "src/worker/ddv_worker.h"

/* A connection taken in the callback, served after the drain. */
struct waiting {
  int fd;
  uint32_t listener_key;
  char routed_host[256]; /* info->host: a normalised name, <= 253 bytes */
};

#define MAX_WAITING 64
static struct waiting waiting[MAX_WAITING];
static size_t waiting_count = 0;
static uint64_t open_connections = 0;

struct request {
  char target[2048];
  char host[512];
  int has_host;
  int close; /* Connection: close, or HTTP/1.0 */
};

static void on_connection(void* user, int fd, const ddv_connection_info* info) {
  ddv_worker* worker = (ddv_worker*)user;
  if (waiting_count == MAX_WAITING) {
    close(fd);
    return;
  }
  struct waiting* c = &waiting[waiting_count++];
  c->fd = fd;
  c->listener_key = ddv_worker_listener_key(info);
  snprintf(c->routed_host, sizeof(c->routed_host), "%s", info->host);
  ddv_worker_set_open_connections(worker, ++open_connections);
}

/* Copies `length` bytes of `from`, without leading and trailing blanks. */
static void copy_trimmed(char* to, size_t size, const char* from,
                         size_t length) {
  while (length > 0 && (*from == ' ' || *from == '\t')) {
    ++from;
    --length;
  }
  while (length > 0 && (from[length - 1] == ' ' || from[length - 1] == '\t')) {
    --length;
  }
  if (length >= size) length = size - 1;
  memcpy(to, from, length);
  to[length] = '\0';
}

/* The request line's target and the Host and Connection fields of a head
 * (NUL-terminated, without its final CRLF CRLF). */
static void parse_head(const char* head, struct request* r) {
  memset(r, 0, sizeof(*r));
  const char* line_end = strstr(head, "\r\n");
  size_t line_length = line_end ? (size_t)(line_end - head) : strlen(head);
  const char* space = memchr(head, ' ', line_length);
  if (space != NULL) {
    const char* target = space + 1;
    const char* rest = head + line_length;
    const char* target_end = memchr(target, ' ', (size_t)(rest - target));
    if (target_end == NULL) target_end = rest;
    copy_trimmed(r->target, sizeof(r->target), target,
                 (size_t)(target_end - target));
    r->close = (size_t)(rest - target_end) >= 9 &&
               strncmp(target_end + 1, "HTTP/1.0", 8) == 0;
  }
  for (const char* line = line_end; line != NULL;) {
    line += 2;
    const char* end = strstr(line, "\r\n");
    size_t length = end ? (size_t)(end - line) : strlen(line);
    const char* colon = memchr(line, ':', length);
    if (colon != NULL) {
      size_t name_length = (size_t)(colon - line);
      const char* value = colon + 1;
      size_t value_length = length - name_length - 1;
      if (name_length == 4 && strncasecmp(line, "host", 4) == 0) {
        copy_trimmed(r->host, sizeof(r->host), value, value_length);
        r->has_host = 1;
      } else if (name_length == 10 &&
                 strncasecmp(line, "connection", 10) == 0) {
        char connection[64];
        copy_trimmed(connection, sizeof(connection), value, value_length);
        if (strcasecmp(connection, "close") == 0) r->close = 1;
      }
    }
    line = end;
  }
}

static int respond(int fd, const char* status, const char* body, int close) {
  char response[1024];
  int length = snprintf(response, sizeof(response),
                        "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                        "Content-Length: %zu\r\n%s\r\n%s",
                        status, strlen(body),
                        close ? "Connection: close\r\n" : "", body);
  if (length < 0 || (size_t)length >= sizeof(response)) return 0;
  return write(fd, response, (size_t)length) == length;
}

/* Serves `c` until the client closes, asks to, goes idle or is refused. */
static void serve(ddv_worker* worker, const struct waiting* c) {
  fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
  char buf[8192];
  size_t have = 0;
  buf[0] = '\0';
  for (int requests = 1;; ++requests) {
    char* end;
    while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
      if (have + 1 >= sizeof(buf)) return; /* a head too long: close */
      struct pollfd p = {c->fd, POLLIN, 0};
      if (poll(&p, 1, 2000) <= 0) return;
      ssize_t n = read(c->fd, buf + have, sizeof(buf) - 1 - have);
      if (n <= 0) return;
      have += (size_t)n;
      buf[have] = '\0';
    }
    *end = '\0';
    struct request r;
    parse_head(buf, &r);
    const size_t used = (size_t)(end + 4 - buf);
    memmove(buf, buf + used, have - used + 1);
    have -= used;

    const char* host = r.has_host ? r.host : NULL;
    /* The first request was routed by its name; the others are checked
     * against the site view as it is now. */
    const int verdict =
        requests == 1
            ? ddv_worker_check_first_request(worker, c->listener_key,
                                             c->routed_host, r.target, host)
            : ddv_worker_check_request(worker, c->listener_key, r.target,
                                       host);
    if (verdict == DDV_HOST_MISDIRECTED) {
      respond(c->fd, "421 Misdirected Request", "misdirected\n", 1);
      return;
    }
    if (verdict == DDV_HOST_INVALID) {
      respond(c->fd, "400 Bad Request", "bad host\n", 1);
      return;
    }
    char body[800];
    snprintf(body, sizeof(body), "c_worker site=%s host=%s\n",
             ddv_worker_site(worker), host != NULL ? host : "-");
    if (!respond(c->fd, "200 OK", body, r.close) || r.close) return;
  }
}

int main(void) {
  char error[256] = "";
  ddv_worker* worker = NULL;
  int rc = ddv_worker_from_environment(NULL, &worker, error, sizeof(error));
  if (rc != DDV_WORKER_OK) {
    fprintf(stderr, "c_worker: %s\n",
            rc == DDV_WORKER_STANDALONE ? "not started by ddv_master" : error);
    return 2;
  }
  ddv_worker_on_connection(worker, on_connection, worker);
  /* Until the master asks it to stop, or is gone. */
  int status = 0;
  while (!ddv_worker_stopped(worker)) {
    struct pollfd p = {ddv_worker_fd(worker), ddv_worker_poll_events(worker),
                       0};
    if (poll(&p, 1, ddv_worker_next_timeout_ms(worker)) < 0 &&
        errno != EINTR) {
      perror("c_worker: poll");
      status = 1;
      break;
    }
    if (ddv_worker_drain(worker) != DDV_WORKER_OK) {
      fprintf(stderr, "c_worker: %s\n", ddv_worker_last_error(worker));
      status = 1;
      break;
    }
    for (size_t i = 0; i < waiting_count; ++i) {
      serve(worker, &waiting[i]);
      close(waiting[i].fd);
      ddv_worker_set_open_connections(worker, --open_connections);
    }
    waiting_count = 0;
  }
  ddv_worker_destroy(worker);
  return status;
}
