/* A fake master with a C interface, so the C API test (a .c file) can play
 * the master's side of the channel without a C wire encoder. Test-only. */
#ifndef DDV_TESTS_WORKER_FAKE_MASTER_C_H_
#define DDV_TESTS_WORKER_FAKE_MASTER_C_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fake_master fake_master;

/* NULL on failure (reason on stderr). */
fake_master* fake_master_create(void);
void fake_master_destroy(fake_master* master);

/* The worker's end of the channel, to put in DDV_CHANNEL_FD. Inheritable. */
int fake_master_worker_fd(const fake_master* master);

/* Receives the worker's hello; returns its worker index or -1. Copies the
 * site into `site`. */
int fake_master_expect_hello(fake_master* master, char* site,
                             size_t site_size);

/* Makes a loopback TCP connection, hands the accepted socket to the worker
 * (scm_rights) with `host` and protocol (0 tcp, 1 http, 2 tls), closes the
 * master's copy, and returns the client's fd (or -1). */
int fake_master_hand_off(fake_master* master, const char* host, int protocol);

/* As fake_master_hand_off (http), with what a PROXY v2 header said: source
 * [2001:db8::1]:40000, destination [2001:db8::2]:443, TLVs ALPN "h2" and
 * SSL (client 0x03, verify 0, CN "cn.example"). */
int fake_master_hand_off_proxied(fake_master* master, const char* host);

/* Receives one request, checks its method, answers `response_json` with
 * status OK. Returns 0 on success, -1 otherwise. */
int fake_master_answer(fake_master* master, const char* method,
                       const char* response_json);

/* Sends `part_json` as the master's site_view call (one part of a site
 * view, src/handoff/site_view.h). Returns 0 on success. */
int fake_master_send_site_view(fake_master* master, const char* part_json);

/* Receives one frame and checks its wire type (3 ack, 7 message, ...).
 * Returns 0 when it matches, -1 otherwise. */
int fake_master_expect_type(fake_master* master, int type);

/* Closes the master's end: the worker sees EOF. */
void fake_master_close(fake_master* master);

#ifdef __cplusplus
}
#endif

#endif /* DDV_TESTS_WORKER_FAKE_MASTER_C_H_ */
