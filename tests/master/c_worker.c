/* A worker in C on the C API (ddv_worker.h), for the isolation tests: it
 * answers each request with "c_worker site=SITE host=HOST" and closes, one
 * connection at a time, and tells the library how many it has open
 * (ddv_worker_set_open_connections) as a C app would. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/worker/ddv_worker.h"

static uint64_t open_connections = 0;

/* Reads until the end of the request head (or 5 s of silence). */
static void read_head(int fd) {
  char buf[4096];
  size_t n = 0;
  while (n + 1 < sizeof(buf)) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
    if (r <= 0) return;
    n += (size_t)r;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\n") != NULL) return;
  }
}

static void on_connection(void* user, int fd, const ddv_connection_info* info) {
  ddv_worker* worker = (ddv_worker*)user;
  ddv_worker_set_open_connections(worker, ++open_connections);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  read_head(fd);
  char body[600];
  int body_len = snprintf(body, sizeof(body), "c_worker site=%s host=%s\n",
                          info->site, info->host[0] ? info->host : "-");
  char response[800];
  int len = snprintf(response, sizeof(response),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     body_len, body);
  if (write(fd, response, (size_t)len) != len) perror("write");
  close(fd);
  ddv_worker_set_open_connections(worker, --open_connections);
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
  rc = ddv_worker_run(worker);
  ddv_worker_destroy(worker);
  return rc == DDV_WORKER_OK ? 0 : 1;
}
