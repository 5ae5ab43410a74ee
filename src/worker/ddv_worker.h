/* ddv_worker.h: the C interface of the ddv worker library, so a worker can be
 * written in any language with a C FFI. It wraps ddv::worker::Worker
 * (src/worker/worker.h); the environment contract is in docs/worker.md.
 *
 * Single-threaded like the C++ class: call every function from the thread
 * that runs the event loop. Callbacks run inside ddv_worker_drain() and
 * ddv_worker_run() (and inside an RPC call when the master is already gone);
 * strings passed to callbacks are valid only during the call. */
#ifndef DDV_SRC_WORKER_DDV_WORKER_H_
#define DDV_SRC_WORKER_DDV_WORKER_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ddv_worker ddv_worker;

/* Return values. Errors are negative; the text is in ddv_worker_last_error()
 * (or in the caller's buffer for ddv_worker_from_environment()). */
#define DDV_WORKER_OK 0
#define DDV_WORKER_STANDALONE 1 /* not started by a master: serve yourself */
#define DDV_WORKER_ERROR (-1)

/* ddv_connection_info.protocol */
#define DDV_PROTOCOL_TCP 0
#define DDV_PROTOCOL_HTTP 1
#define DDV_PROTOCOL_TLS 2

typedef struct ddv_connection_info {
  uint64_t connection_id;
  const char* site; /* this worker's site id */
  uint32_t site_index;
  uint32_t listener_index;
  int protocol; /* DDV_PROTOCOL_* */
  int tls;      /* 1: the worker must terminate TLS on this socket */
  const char* host; /* normalised Host or SNI; "" when none */
  const char* alpn; /* comma-joined list offered by the client; "" if none */
  int64_t accept_time_ns; /* CLOCK_MONOTONIC */
  /* The client: the PROXY source when there was one, else getpeername().
   * peer_length is 0 when unknown. */
  const struct sockaddr* peer;
  socklen_t peer_length;
  int peer_from_proxy;
  uint32_t skip_bytes; /* PROXY bytes still to read; 0 unless disabled */
} ddv_connection_info;

/* PROXY protocol: what an L4 tier in front of ddv said beyond the client's
 * address (that one is `peer`, with peer_from_proxy set). Since
 * DDV_WORKER_0.1. These take the `info` pointer a connection callback was
 * given (not a copy of the struct) and work during that call; the pointers
 * they return live as long as `info`. Without a PROXY header they find
 * nothing. docs/worker.md#proxy-protocol. */

/* v2 TLV types (haproxy doc/proxy-protocol.txt §2.2). The SSL subtypes are
 * looked up inside DDV_PP2_TYPE_SSL. */
#define DDV_PP2_TYPE_ALPN 0x01
#define DDV_PP2_TYPE_AUTHORITY 0x02
#define DDV_PP2_TYPE_UNIQUE_ID 0x05
#define DDV_PP2_TYPE_SSL 0x20
#define DDV_PP2_SUBTYPE_SSL_VERSION 0x21
#define DDV_PP2_SUBTYPE_SSL_CN 0x22
#define DDV_PP2_SUBTYPE_SSL_CIPHER 0x23
#define DDV_PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define DDV_PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define DDV_PP2_TYPE_NETNS 0x30
/* DDV_PP2_TYPE_SSL's client field. */
#define DDV_PP2_CLIENT_SSL 0x01
#define DDV_PP2_CLIENT_CERT_CONN 0x02
#define DDV_PP2_CLIENT_CERT_SESS 0x04

/* The address the client connected to at the L4 tier: 1 with *address and
 * *length set when the header carried addresses, else 0. */
int ddv_worker_proxy_destination(const ddv_connection_info* info,
                                 const struct sockaddr** address,
                                 socklen_t* length);
/* The value of the first v2 TLV of `type` (DDV_PP2_TYPE_*, or any other,
 * such as a cloud vendor's): 1 with *value (not NUL-terminated) and *length
 * set, 0 when the header had none. */
int ddv_worker_proxy_tlv(const ddv_connection_info* info, int type,
                         const void** value, size_t* length);
/* DDV_PP2_TYPE_SSL's fixed fields: 1 with *client (DDV_PP2_CLIENT_* bits)
 * and *verify (0: the client's certificate, if any, verified) set, 0 when
 * the client did not speak TLS to the L4 tier. Either pointer may be NULL. */
int ddv_worker_proxy_ssl(const ddv_connection_info* info, uint8_t* client,
                         uint32_t* verify);
/* Every TLV the master passed on, as the header had them (type, u16
 * big-endian length, value; without NOOP and CRC32C): *data and *length
 * set (length 0: none). Returns 1 when some TLVs were left out because
 * they did not fit the handoff, else 0. */
int ddv_worker_proxy_tlvs(const ddv_connection_info* info, const void** data,
                          size_t* length);

/* The callee owns `fd` and must close it. */
typedef void (*ddv_connection_fn)(void* user, int fd,
                                  const ddv_connection_info* info);
typedef void (*ddv_shutdown_fn)(void* user, int64_t grace_ms);
typedef void (*ddv_master_gone_fn)(void* user, const char* why);
typedef void (*ddv_message_fn)(void* user, const char* source_site,
                               uint32_t source_worker, const char* json_body);
/* status is an absl::StatusCode (0 OK, 4 DEADLINE_EXCEEDED, 14 UNAVAILABLE,
 * ...). On OK `text` is the JSON response body, else the error message. */
typedef void (*ddv_rpc_fn)(void* user, int status, const char* text);

typedef struct ddv_worker_options {
  int64_t master_silence_timeout_ms; /* <= 0: never give up on silence */
  int consume_proxy_header;          /* default 1 */
  int clear_environment;             /* default 1 */
} ddv_worker_options;

/* Fills `options` with the defaults (30 s, 1, 1). */
void ddv_worker_options_init(ddv_worker_options* options);

/* Reads DDV_CHANNEL_FD & co. Returns DDV_WORKER_OK with *out set,
 * DDV_WORKER_STANDALONE when not started by a master (*out NULL), or
 * DDV_WORKER_ERROR with the reason in `error` (the process should exit).
 * `options` may be NULL; `error` may be NULL. */
int ddv_worker_from_environment(const ddv_worker_options* options,
                                ddv_worker** out, char* error,
                                size_t error_size);
void ddv_worker_destroy(ddv_worker* worker);

/* Event-loop integration: poll ddv_worker_fd() for ddv_worker_poll_events()
 * with a timeout of at most ddv_worker_next_timeout_ms() (-1: none), then
 * call ddv_worker_drain(). The fd is -1 once the master is gone. */
int ddv_worker_fd(const ddv_worker* worker);
short ddv_worker_poll_events(const ddv_worker* worker);
int ddv_worker_next_timeout_ms(const ddv_worker* worker);
int ddv_worker_drain(ddv_worker* worker);
/* A built-in loop until shutdown or master gone. */
int ddv_worker_run(ddv_worker* worker);

int ddv_worker_stopped(const ddv_worker* worker);
int ddv_worker_master_gone(const ddv_worker* worker);
int ddv_worker_shutdown_requested(const ddv_worker* worker);
const char* ddv_worker_site(const ddv_worker* worker);
uint32_t ddv_worker_index(const ddv_worker* worker);
const char* ddv_worker_last_error(const ddv_worker* worker);

void ddv_worker_on_connection(ddv_worker* worker, ddv_connection_fn fn,
                              void* user);
void ddv_worker_on_shutdown(ddv_worker* worker, ddv_shutdown_fn fn,
                            void* user);
void ddv_worker_on_master_gone(ddv_worker* worker, ddv_master_gone_fn fn,
                               void* user);
void ddv_worker_on_message(ddv_worker* worker, ddv_message_fn fn, void* user);

/* RPCs. `json_body` may be NULL ({}); `fn` may be NULL (result ignored).
 * Return DDV_WORKER_ERROR without calling `fn` when the arguments are bad
 * (e.g. json_body is not JSON); otherwise `fn` runs exactly once later. */
int ddv_worker_call(ddv_worker* worker, const char* method,
                    const char* json_body, int64_t timeout_ms, ddv_rpc_fn fn,
                    void* user);
int ddv_worker_ping(ddv_worker* worker, int64_t timeout_ms, ddv_rpc_fn fn,
                    void* user);
int ddv_worker_status(ddv_worker* worker, int64_t timeout_ms, ddv_rpc_fn fn,
                      void* user);
/* `json_body`: {"add_hosts": [...], "processes": N, "default": true}, any
 * subset. */
int ddv_worker_update_server_conf(ddv_worker* worker, const char* json_body,
                                  int64_t timeout_ms, ddv_rpc_fn fn,
                                  void* user);
/* How many connections the app has open now (taken and not yet closed).
 * The library reports it to the master, with the number taken, from
 * ddv_worker_drain() (ddv_worker_next_timeout_ms() says when): at most
 * every 10 ms for a site with max_connections, which counts them, and
 * every second for one without (the site view says which). Call it whenever
 * the count changes; it only stores the number. Since DDV_WORKER_0.2. */
void ddv_worker_set_open_connections(ddv_worker* worker, uint64_t open);

/* 421 Misdirected Request (docs/worker.md#421-misdirected-request). Since
 * DDV_WORKER_0.2. */

/* The library's number for the listener a connection came on: keep it with
 * the connection for ddv_worker_check_request(). Takes the `info` pointer a
 * connection callback was given, during that call. It stays right when a
 * master restart renumbers listener_index. */
uint32_t ddv_worker_listener_key(const ddv_connection_info* info);

/* A listener key no connection has: ddv_worker_check_request() allows
 * everything on it (sockets the app accepted itself). */
#define DDV_NO_LISTENER_KEY UINT32_MAX

/* ddv_worker_check_request(), ddv_worker_check_first_request() */
#define DDV_HOST_ALLOWED 0     /* answer the request */
#define DDV_HOST_MISDIRECTED 1 /* 421 Misdirected Request, Connection: close */
#define DDV_HOST_INVALID 2     /* 400 Bad Request */

/* Whether a request on a connection of `listener_key` may be answered here
 * (docs/isolation.md): the name it asks for must route to this site on that
 * listener; a connection's first request goes to
 * ddv_worker_check_first_request() (below) instead. `target` is the
 * request target (an absolute-form one's authority wins over Host; NULL or
 * "/..." leaves Host in charge), `host` the Host field value (NULL when
 * absent). Returns DDV_HOST_*; always
 * DDV_HOST_ALLOWED with strict_host = false or before the master said
 * which names are the site's; DDV_HOST_MISDIRECTED for every request of a
 * connection whose listener is gone with nothing now at its address. */
int ddv_worker_check_request(ddv_worker* worker, uint32_t listener_key,
                             const char* target, const char* host);
/* How many DDV_HOST_MISDIRECTED answers ddv_worker_check_request and
 * ddv_worker_check_first_request gave. */
uint64_t ddv_worker_misdirected_requests(const ddv_worker* worker);

/* ddv_worker_check_request() for the first request of a connection. The
 * master routed the connection by that request's name (its Host, or the
 * TLS SNI), so a first request naming it is this site's whatever the view
 * says by the time the app reads it: a reload that moved the name to
 * another site may have sent its new view while the request was unread
 * (docs/isolation.md#the-first-request-names-what-the-master-routed-by).
 * `routed_host` is the connection's `info->host`, which the app copies in
 * its connection callback and keeps with the listener key (NULL or "":
 * the connection was routed by no name). Returns DDV_HOST_ALLOWED when the
 * request's name (read as ddv_worker_check_request reads it, in the
 * master's normal form: case, port and one trailing dot ignored) is
 * `routed_host`; otherwise what ddv_worker_check_request(worker,
 * listener_key, target, host) returns. Only for the first request: every
 * later request on the connection goes to ddv_worker_check_request, so a
 * name the site lost is refused on its kept-alive connections. Since
 * DDV_WORKER_0.3. */
int ddv_worker_check_first_request(ddv_worker* worker, uint32_t listener_key,
                                   const char* routed_host,
                                   const char* target, const char* host);

/* Worker -> worker message, forwarded by the master to `site`'s worker
 * `worker_index` (UINT32_MAX: any one) and delivered to its
 * ddv_worker_on_message callback. Best effort: DDV_WORKER_OK means queued to
 * the master, not delivered. */
int ddv_worker_send_to_worker(ddv_worker* worker, const char* site,
                              uint32_t worker_index, const char* json_body);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif /* DDV_SRC_WORKER_DDV_WORKER_H_ */
