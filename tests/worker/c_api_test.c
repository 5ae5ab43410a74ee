/* The C API, compiled as C: a worker written against ddv_worker.h only,
 * with the test playing the master in the same process. Plain C main(), no
 * gtest: exits non-zero on the first failed CHECK. */
#define _POSIX_C_SOURCE 200809L

#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/worker/ddv_worker.h"
#include "tests/worker/fake_master_c.h"

#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                \
      exit(1);                                                       \
    }                                                                \
  } while (0)

struct app {
  int connections;
  int proxied;
  char host[256];
  char alpn[256];
  int tls;
  int rpc_status;
  char rpc_text[256];
  int rpc_done;
  int master_gone;
  uint32_t listener_key;
};

static void on_connection(void* user, int fd, const ddv_connection_info* info) {
  struct app* app = (struct app*)user;
  app->connections++;
  snprintf(app->host, sizeof(app->host), "%s", info->host);
  snprintf(app->alpn, sizeof(app->alpn), "%s", info->alpn);
  app->tls = info->tls;
  app->listener_key = ddv_worker_listener_key(info);
  CHECK(info->protocol == DDV_PROTOCOL_TLS);
  CHECK(info->peer_length > 0);
  CHECK(strcmp(info->site, "c") == 0);
  /* No PROXY header: nothing to find. */
  const struct sockaddr* address = NULL;
  socklen_t length = 0;
  const void* value = NULL;
  size_t value_length = 0;
  CHECK(ddv_worker_proxy_destination(info, &address, &length) == 0);
  CHECK(ddv_worker_proxy_tlv(info, DDV_PP2_TYPE_ALPN, &value,
                             &value_length) == 0);
  CHECK(ddv_worker_proxy_ssl(info, NULL, NULL) == 0);
  CHECK(ddv_worker_proxy_tlvs(info, &value, &value_length) == 0);
  CHECK(value_length == 0);
  const char reply[] = "hello from C\n";
  CHECK(write(fd, reply, sizeof(reply) - 1) == (ssize_t)(sizeof(reply) - 1));
  close(fd);
}

/* A connection that came through an L4 tier speaking PROXY v2. */
static void on_proxied(void* user, int fd, const ddv_connection_info* info) {
  struct app* app = (struct app*)user;
  CHECK(info->peer_from_proxy == 1);
  CHECK(info->peer->sa_family == AF_INET6);
  const struct sockaddr* address = NULL;
  socklen_t length = 0;
  CHECK(ddv_worker_proxy_destination(info, &address, &length) == 1);
  CHECK(address->sa_family == AF_INET6);
  CHECK(length == sizeof(struct sockaddr_in6));
  const void* value = NULL;
  size_t value_length = 0;
  CHECK(ddv_worker_proxy_tlv(info, DDV_PP2_TYPE_ALPN, &value,
                             &value_length) == 1);
  CHECK(value_length == 2 && memcmp(value, "h2", 2) == 0);
  CHECK(ddv_worker_proxy_tlv(info, DDV_PP2_SUBTYPE_SSL_CN, &value,
                             &value_length) == 1);
  CHECK(value_length == 10 && memcmp(value, "cn.example", 10) == 0);
  CHECK(ddv_worker_proxy_tlv(info, DDV_PP2_TYPE_AUTHORITY, &value,
                             &value_length) == 0);
  CHECK(ddv_worker_proxy_tlv(info, 256, &value, &value_length) == 0);
  uint8_t client = 0;
  uint32_t verify = 1;
  CHECK(ddv_worker_proxy_ssl(info, &client, &verify) == 1);
  CHECK(client == (DDV_PP2_CLIENT_SSL | DDV_PP2_CLIENT_CERT_CONN));
  CHECK(verify == 0);
  CHECK(ddv_worker_proxy_tlvs(info, &value, &value_length) == 0);
  CHECK(value_length == 26);
  app->proxied++;
  close(fd);
}

static void on_rpc(void* user, int status, const char* text) {
  struct app* app = (struct app*)user;
  app->rpc_status = status;
  snprintf(app->rpc_text, sizeof(app->rpc_text), "%s", text);
  app->rpc_done = 1;
}

static void on_master_gone(void* user, const char* why) {
  (void)why;
  ((struct app*)user)->master_gone = 1;
}

static void pump(ddv_worker* worker, const int* flag) {
  for (int i = 0; i < 500 && !*flag; ++i) {
    struct pollfd p = {ddv_worker_fd(worker), ddv_worker_poll_events(worker),
                       0};
    poll(&p, 1, 10);
    CHECK(ddv_worker_drain(worker) == DDV_WORKER_OK);
  }
  CHECK(*flag);
}

static void read_line(int fd, char* buf, size_t size) {
  size_t n = 0;
  while (n + 1 < size) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    ssize_t r = read(fd, buf + n, size - 1 - n);
    if (r <= 0) break;
    n += (size_t)r;
  }
  buf[n] = '\0';
}

int main(void) {
  struct app app;
  memset(&app, 0, sizeof(app));
  char error[512];
  ddv_worker* worker = NULL;

  /* Not under a master: standalone, not an error. */
  unsetenv("DDV_CHANNEL_FD");
  CHECK(ddv_worker_from_environment(NULL, &worker, error, sizeof(error)) ==
        DDV_WORKER_STANDALONE);
  CHECK(worker == NULL);

  /* A broken contract is an error with a reason. */
  setenv("DDV_CHANNEL_FD", "not-a-number", 1);
  CHECK(ddv_worker_from_environment(NULL, &worker, error, sizeof(error)) ==
        DDV_WORKER_ERROR);
  CHECK(strstr(error, "DDV_CHANNEL_FD") != NULL);

  fake_master* master = fake_master_create();
  CHECK(master != NULL);
  char fd_text[16];
  snprintf(fd_text, sizeof(fd_text), "%d", fake_master_worker_fd(master));
  setenv("DDV_CHANNEL_FD", fd_text, 1);
  setenv("DDV_SITE", "c", 1);
  setenv("DDV_WORKER_INDEX", "2", 1);
  setenv("DDV_HANDOFF", "scm_rights", 1);

  ddv_worker_options options;
  ddv_worker_options_init(&options);
  options.master_silence_timeout_ms = 0; /* the fake master never beats */
  CHECK(ddv_worker_from_environment(&options, &worker, error,
                                    sizeof(error)) == DDV_WORKER_OK);
  CHECK(worker != NULL);
  CHECK(getenv("DDV_CHANNEL_FD") == NULL);
  CHECK(strcmp(ddv_worker_site(worker), "c") == 0);
  CHECK(ddv_worker_index(worker) == 2);
  CHECK(ddv_worker_fd(worker) >= 0);
  CHECK(ddv_worker_next_timeout_ms(worker) == -1);

  char site[64];
  CHECK(fake_master_expect_hello(master, site, sizeof(site)) == 2);
  CHECK(strcmp(site, "c") == 0);

  ddv_worker_on_connection(worker, on_connection, &app);
  ddv_worker_on_master_gone(worker, on_master_gone, &app);

  /* The master's site view: on listener 0, "c.localhost" is c's and
   * "d.localhost" another site's. Answered with a response (type 6). */
  CHECK(fake_master_send_site_view(
            master,
            "{\"master\":\"m1\",\"version\":1,\"part\":0,\"last\":true,\"strict\":true,"
            "\"listeners\":[{\"index\":0,\"address\":\"127.0.0.1:1\","
            "\"retired\":false,\"default\":false,\"own\":[\"c.localhost\"],"
            "\"others\":[\"d.localhost\"]}]}") == 0);
  CHECK(ddv_worker_drain(worker) == DDV_WORKER_OK);
  CHECK(fake_master_expect_type(master, 6) == 0);

  /* A TLS connection handed off and answered from C. */
  int client = fake_master_hand_off(master, "c.localhost", DDV_PROTOCOL_TLS);
  CHECK(client >= 0);
  pump(worker, &app.connections);
  /* scm_rights batches are not acknowledged: the master closed its copy. */
  CHECK(strcmp(app.host, "c.localhost") == 0);
  CHECK(strcmp(app.alpn, "h2,http/1.1") == 0);
  CHECK(app.tls == 1);
  char line[64];
  read_line(client, line, sizeof(line));
  CHECK(strcmp(line, "hello from C\n") == 0);
  close(client);

  /* Requests on it are checked against the site view. */
  CHECK(app.listener_key != DDV_NO_LISTENER_KEY);
  CHECK(ddv_worker_check_request(worker, app.listener_key, "/",
                                 "C.localhost:443") == DDV_HOST_ALLOWED);
  CHECK(ddv_worker_check_request(worker, app.listener_key, "/",
                                 "d.localhost") == DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_check_request(worker, app.listener_key,
                                 "http://d.localhost/x", "c.localhost") ==
        DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_check_request(worker, app.listener_key, "/", "bad host") ==
        DDV_HOST_INVALID);
  CHECK(ddv_worker_check_request(worker, app.listener_key, NULL, NULL) ==
        DDV_HOST_ALLOWED);
  CHECK(ddv_worker_check_request(worker, DDV_NO_LISTENER_KEY, "/",
                                 "d.localhost") == DDV_HOST_ALLOWED);
  CHECK(ddv_worker_misdirected_requests(worker) == 2);

  /* A reload moves c.localhost to another site while the connection's
   * first request is unread: the new view reaches the worker first. */
  CHECK(fake_master_send_site_view(
            master,
            "{\"master\":\"m1\",\"version\":2,\"part\":0,\"last\":true,\"strict\":true,"
            "\"listeners\":[{\"index\":0,\"address\":\"127.0.0.1:1\","
            "\"retired\":false,\"default\":false,\"own\":[],"
            "\"others\":[\"c.localhost\",\"d.localhost\"]}]}") == 0);
  CHECK(ddv_worker_drain(worker) == DDV_WORKER_OK);
  CHECK(fake_master_expect_type(master, 6) == 0);
  /* The first request names the host the master routed the connection by
   * (app.host, copied in the callback): answered. */
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host, "/",
                                       "C.localhost.:443") == DDV_HOST_ALLOWED);
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host,
                                       "http://c.localhost/x", "d.localhost") ==
        DDV_HOST_ALLOWED);
  /* A later request is checked against the view: the name moved away. */
  CHECK(ddv_worker_check_request(worker, app.listener_key, "/",
                                 "c.localhost") == DDV_HOST_MISDIRECTED);
  /* A first request for another name is checked as any. */
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host, "/",
                                       "d.localhost") == DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host,
                                       "http://d.localhost/", "c.localhost") ==
        DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host, "/",
                                       "bad host") == DDV_HOST_INVALID);
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, app.host,
                                       NULL, NULL) == DDV_HOST_ALLOWED);
  /* Routed by no name: nothing to allow beyond the view. */
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, NULL, "/",
                                       "c.localhost") == DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_check_first_request(worker, app.listener_key, "", "/",
                                       "c.localhost") == DDV_HOST_MISDIRECTED);
  CHECK(ddv_worker_misdirected_requests(worker) == 7);

  /* One behind an L4 tier: the rest of its PROXY header. */
  ddv_worker_on_connection(worker, on_proxied, &app);
  client = fake_master_hand_off_proxied(master, "c.localhost");
  CHECK(client >= 0);
  pump(worker, &app.proxied);
  close(client);

  /* Ping round trip. */
  CHECK(ddv_worker_ping(worker, 5000, on_rpc, &app) == DDV_WORKER_OK);
  CHECK(ddv_worker_next_timeout_ms(worker) >= 0);
  CHECK(fake_master_answer(master, "ping", "{\"pong\":true}") == 0);
  pump(worker, &app.rpc_done);
  CHECK(app.rpc_status == 0);
  CHECK(strcmp(app.rpc_text, "{\"pong\":true}") == 0);

  /* Bad JSON is refused up front; the callback never runs. */
  app.rpc_done = 0;
  CHECK(ddv_worker_call(worker, "status", "{oops", 1000, on_rpc, &app) ==
        DDV_WORKER_ERROR);
  CHECK(strstr(ddv_worker_last_error(worker), "JSON") != NULL);

  /* Worker -> worker messages travel as message frames (type 7). */
  CHECK(ddv_worker_send_to_worker(worker, "b", UINT32_MAX, "{\"x\":1}") ==
        DDV_WORKER_OK);
  CHECK(fake_master_expect_type(master, 7) == 0);

  /* A timeout reaches the callback with DEADLINE_EXCEEDED (4). */
  CHECK(ddv_worker_update_server_conf(worker, "{\"processes\":3}", 50, on_rpc,
                                      &app) == DDV_WORKER_OK);
  pump(worker, &app.rpc_done);
  CHECK(app.rpc_status == 4);

  /* The master goes away: the worker stops, Run returns at once. */
  fake_master_close(master);
  pump(worker, &app.master_gone);
  CHECK(ddv_worker_master_gone(worker));
  CHECK(ddv_worker_stopped(worker));
  CHECK(ddv_worker_fd(worker) == -1);
  CHECK(ddv_worker_run(worker) == DDV_WORKER_OK);

  ddv_worker_destroy(worker);
  fake_master_destroy(master);
  printf("c_api_test: OK\n");
  return 0;
}
