/* A worker built outside Bazel against the installed package: compiled with
 * `pkg-config --cflags --libs ddv-worker`, it includes <ddv/ddv_worker.h>,
 * links libddv_worker.so.0, and answers each request handed to it with
 * "c_worker site=SITE host=HOST" (or 421 for another site's name, as
 * ddv_worker_check_first_request says), logging a line for each on stdout.
 * package_test.sh runs it as a site of the installed ddv_master. One connection at a time, blocking: a test, not a
 * server to copy for production. */
#define _POSIX_C_SOURCE 200809L

#include <ddv/ddv_worker.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Reads until the end of the request head (or 5 s of silence) into `buf`
 * (NUL-terminated). */
static void read_head(int fd, char* buf, size_t size) {
  size_t n = 0;
  buf[0] = '\0';
  while (n + 1 < size) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return;
    ssize_t r = read(fd, buf + n, size - 1 - n);
    if (r <= 0) return;
    n += (size_t)r;
    buf[n] = '\0';
    if (strstr(buf, "\r\n\r\n") != NULL) return;
  }
}

/* Copies the value of `head`'s field `name` (lower case, with ':') into
 * `out`; 0 when the head has none. */
static int field(const char* head, const char* name, char* out, size_t size) {
  for (const char* line = strstr(head, "\r\n"); line != NULL;
       line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, strlen(name)) != 0) continue;
    const char* value = line + strlen(name);
    while (*value == ' ') ++value;
    size_t n = strcspn(value, " \r");
    if (n >= size) n = size - 1;
    memcpy(out, value, n);
    out[n] = '\0';
    return 1;
  }
  return 0;
}

static void on_connection(void* user, int fd, const ddv_connection_info* info) {
  ddv_worker* worker = (ddv_worker*)user;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  char head[4096];
  read_head(fd, head, sizeof(head));
  /* The request's name, checked as docs/worker.md says: this is the
   * connection's first request, which the master routed by info->host. */
  char target[1024] = "";
  sscanf(head, "%*s %1023s", target);
  char host[512];
  const int has_host = field(head, "host:", host, sizeof(host));
  const int verdict = ddv_worker_check_first_request(
      worker, ddv_worker_listener_key(info), info->host, target,
      has_host ? host : NULL);
  char body[600];
  int body_len = snprintf(body, sizeof(body), "c_worker site=%s host=%s\n",
                          info->site, info->host[0] ? info->host : "-");
  const char* status = "200 OK";
  if (verdict == DDV_HOST_MISDIRECTED) {
    status = "421 Misdirected Request";
    body_len = snprintf(body, sizeof(body), "misdirected\n");
  } else if (verdict == DDV_HOST_INVALID) {
    status = "400 Bad Request";
    body_len = snprintf(body, sizeof(body), "bad host\n");
  }
  char response[800];
  int len = snprintf(response, sizeof(response),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     status, body_len, body);
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
  ddv_worker_on_connection(worker, on_connection, worker);
  /* Until the master asks it to stop, or is gone. */
  rc = ddv_worker_run(worker);
  ddv_worker_destroy(worker);
  return rc == DDV_WORKER_OK ? 0 : 1;
}
