/* A worker built outside Bazel against the installed package: compiled with
 * `pkg-config --cflags --libs ddv-worker`, it includes <ddv/ddv_worker.h>,
 * links libddv_worker.so.0, and answers each request handed to it with
 * "c_worker site=SITE host=HOST", logging a line for each on stdout.
 * package_test.sh runs it as a site of the installed ddv_master. One connection at a time, blocking: a test, not a
 * server to copy for production. */
#define _POSIX_C_SOURCE 200809L

#include <ddv/ddv_worker.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
  (void)user;
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
  /* One line per request in the site's log, for the logrotate check. */
  printf("c_worker served host=%s\n", info->host[0] ? info->host : "-");
  fflush(stdout);
}

int main(void) {
  char error[256] = "";
  ddv_worker* worker = NULL;
  int rc = ddv_worker_from_environment(NULL, &worker, error, sizeof(error));
  if (rc == DDV_WORKER_STANDALONE) {
    fprintf(stderr, "c_worker: not started by ddv_master\n");
    return 2;
  }
  if (rc != DDV_WORKER_OK) {
    fprintf(stderr, "c_worker: %s\n", error);
    return 2;
  }
  ddv_worker_on_connection(worker, on_connection, NULL);
  /* Until the master asks it to stop, or is gone. */
  rc = ddv_worker_run(worker);
  ddv_worker_destroy(worker);
  return rc == DDV_WORKER_OK ? 0 : 1;
}
