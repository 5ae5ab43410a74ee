// The C interface (ddv_worker.h) over ddv::worker::Worker: an opaque handle,
// C function pointers with user data, and errors as return codes plus text.
#include "src/worker/ddv_worker.h"

#include <climits>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "src/route/host_check.h"
#include "src/worker/worker.h"

using ddv::UniqueFd;
using ddv::worker::ConnectionInfo;
using ddv::worker::IncomingMessage;
using ddv::worker::Worker;
using nlohmann::json;

struct ddv_worker {
  std::unique_ptr<Worker> worker;
  std::string last_error;
};

namespace {

// What a connection callback's `info` points at: the C struct first, so the
// ddv_worker_proxy_* functions find the C++ info behind it. The struct's
// layout is the ABI and stays as it was.
struct ConnectionInfoC {
  ddv_connection_info c;
  const ConnectionInfo* info;
};
static_assert(std::is_standard_layout<ConnectionInfoC>::value,
              "the C struct must be at the start");

const ConnectionInfo& InfoOf(const ddv_connection_info* c) {
  return *reinterpret_cast<const ConnectionInfoC*>(c)->info;
}

void CopyError(const std::string& text, char* error, size_t error_size) {
  if (error == nullptr || error_size == 0) return;
  size_t n = text.size() < error_size - 1 ? text.size() : error_size - 1;
  std::memcpy(error, text.data(), n);
  error[n] = '\0';
}

absl::Duration TimeoutFromMillis(int64_t ms) {
  return ms < 0 ? absl::InfiniteDuration() : absl::Milliseconds(ms);
}

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Worker::RpcCallback WrapRpc(ddv_rpc_fn fn, void* user) {
  return [fn, user](absl::StatusOr<json> result) {
    if (fn == nullptr) return;
    if (result.ok()) {
      fn(user, 0, Dump(*result).c_str());
    } else {
      fn(user, static_cast<int>(result.status().code()),
         std::string(result.status().message()).c_str());
    }
  };
}

// Parses an optional JSON argument; NULL means an empty object.
bool ParseBody(ddv_worker* w, const char* text, json* out) {
  if (text == nullptr) {
    *out = json::object();
    return true;
  }
  *out = json::parse(text, nullptr, false);
  if (out->is_discarded()) {
    w->last_error = "json_body is not valid JSON";
    return false;
  }
  return true;
}

absl::string_view OrEmpty(const char* text) {
  return text == nullptr ? absl::string_view() : absl::string_view(text);
}

int HostCode(ddv::worker::HostVerdict verdict) {
  switch (verdict) {
    case ddv::worker::HostVerdict::kAllowed:
      return DDV_HOST_ALLOWED;
    case ddv::worker::HostVerdict::kMisdirected:
      return DDV_HOST_MISDIRECTED;
    case ddv::worker::HostVerdict::kInvalid:
      return DDV_HOST_INVALID;
  }
  return DDV_HOST_ALLOWED;
}

}  // namespace

extern "C" {

void ddv_worker_options_init(ddv_worker_options* options) {
  options->master_silence_timeout_ms = 30000;
  options->consume_proxy_header = 1;
  options->clear_environment = 1;
}

int ddv_worker_from_environment(const ddv_worker_options* options,
                                ddv_worker** out, char* error,
                                size_t error_size) {
  *out = nullptr;
  ddv::worker::WorkerOptions cpp_options;
  if (options != nullptr) {
    cpp_options.master_silence_timeout =
        options->master_silence_timeout_ms > 0
            ? absl::Milliseconds(options->master_silence_timeout_ms)
            : absl::InfiniteDuration();
    cpp_options.consume_proxy_header = options->consume_proxy_header != 0;
    cpp_options.clear_environment = options->clear_environment != 0;
  }
  auto worker = Worker::FromEnvironment(cpp_options);
  if (!worker.ok()) {
    CopyError(worker.status().ToString(), error, error_size);
    return absl::IsNotFound(worker.status()) ? DDV_WORKER_STANDALONE
                                             : DDV_WORKER_ERROR;
  }
  *out = new ddv_worker{std::move(*worker), std::string()};
  CopyError("", error, error_size);
  return DDV_WORKER_OK;
}

void ddv_worker_destroy(ddv_worker* worker) { delete worker; }

int ddv_worker_fd(const ddv_worker* w) { return w->worker->fd(); }

short ddv_worker_poll_events(const ddv_worker* w) {
  return w->worker->poll_events();
}

int ddv_worker_next_timeout_ms(const ddv_worker* w) {
  absl::Duration d = w->worker->NextTimeout();
  if (d == absl::InfiniteDuration()) return -1;
  int64_t ms = absl::ToInt64Milliseconds(d + absl::Microseconds(999));
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

int ddv_worker_drain(ddv_worker* w) {
  absl::Status status = w->worker->Drain();
  if (status.ok()) return DDV_WORKER_OK;
  w->last_error = status.ToString();
  return DDV_WORKER_ERROR;
}

int ddv_worker_run(ddv_worker* w) {
  absl::Status status = w->worker->Run();
  if (status.ok()) return DDV_WORKER_OK;
  w->last_error = status.ToString();
  return DDV_WORKER_ERROR;
}

int ddv_worker_stopped(const ddv_worker* w) { return w->worker->stopped(); }
int ddv_worker_master_gone(const ddv_worker* w) {
  return w->worker->master_gone();
}
int ddv_worker_shutdown_requested(const ddv_worker* w) {
  return w->worker->shutdown_requested();
}
void ddv_worker_set_open_connections(ddv_worker* w, uint64_t open) {
  w->worker->SetOpenConnections(open);
}
const char* ddv_worker_site(const ddv_worker* w) {
  return w->worker->identity().site.c_str();
}
uint32_t ddv_worker_index(const ddv_worker* w) {
  return w->worker->identity().worker_index;
}
const char* ddv_worker_last_error(const ddv_worker* w) {
  return w->last_error.c_str();
}

void ddv_worker_on_connection(ddv_worker* w, ddv_connection_fn fn,
                              void* user) {
  if (fn == nullptr) {
    w->worker->OnConnection(nullptr);
    return;
  }
  w->worker->OnConnection([fn, user](UniqueFd socket,
                                     const ConnectionInfo& info) {
    std::string alpn;
    for (const std::string& p : info.alpn) {
      if (!alpn.empty()) alpn += ',';
      alpn += p;
    }
    ConnectionInfoC with_info{};
    with_info.info = &info;
    ddv_connection_info& c = with_info.c;
    c.connection_id = info.connection_id;
    c.site = info.site.c_str();
    c.site_index = info.site_index;
    c.listener_index = info.listener_index;
    c.protocol = static_cast<int>(info.protocol);
    c.tls = info.tls ? 1 : 0;
    c.host = info.host.c_str();
    c.alpn = alpn.c_str();
    c.accept_time_ns = info.accept_time_ns;
    c.peer = reinterpret_cast<const sockaddr*>(&info.peer);
    c.peer_length = info.peer_length;
    c.peer_from_proxy = info.peer_from_proxy ? 1 : 0;
    c.skip_bytes = info.skip_bytes;
    fn(user, socket.Release(), &with_info.c);
  });
}

void ddv_worker_on_shutdown(ddv_worker* w, ddv_shutdown_fn fn, void* user) {
  if (fn == nullptr) {
    w->worker->OnShutdown(nullptr);
    return;
  }
  w->worker->OnShutdown([fn, user](absl::Duration grace) {
    fn(user, absl::ToInt64Milliseconds(grace));
  });
}

void ddv_worker_on_master_gone(ddv_worker* w, ddv_master_gone_fn fn,
                               void* user) {
  if (fn == nullptr) {
    w->worker->OnMasterGone(nullptr);
    return;
  }
  w->worker->OnMasterGone([fn, user](const absl::Status& why) {
    fn(user, std::string(why.message()).c_str());
  });
}

void ddv_worker_on_message(ddv_worker* w, ddv_message_fn fn, void* user) {
  if (fn == nullptr) {
    w->worker->OnMessage(nullptr);
    return;
  }
  w->worker->OnMessage([fn, user](const IncomingMessage& message) {
    fn(user, message.source_site.c_str(), message.source_worker,
       Dump(message.body).c_str());
  });
}

int ddv_worker_proxy_destination(const ddv_connection_info* c,
                                 const struct sockaddr** address,
                                 socklen_t* length) {
  const ddv::worker::ProxyInfo& proxy = InfoOf(c).proxy;
  if (proxy.destination_length == 0) return 0;
  *address = reinterpret_cast<const sockaddr*>(&proxy.destination);
  *length = proxy.destination_length;
  return 1;
}

int ddv_worker_proxy_tlv(const ddv_connection_info* c, int type,
                         const void** value, size_t* length) {
  if (type < 0 || type > 0xff) return 0;
  std::optional<absl::string_view> found =
      InfoOf(c).proxy.Tlv(static_cast<uint8_t>(type));
  if (!found.has_value()) return 0;
  *value = found->data();
  *length = found->size();
  return 1;
}

int ddv_worker_proxy_ssl(const ddv_connection_info* c, uint8_t* client,
                         uint32_t* verify) {
  const ddv::worker::ProxyInfo& proxy = InfoOf(c).proxy;
  if (!proxy.ssl) return 0;
  if (client != nullptr) *client = proxy.ssl_client;
  if (verify != nullptr) *verify = proxy.ssl_verify;
  return 1;
}

int ddv_worker_proxy_tlvs(const ddv_connection_info* c, const void** data,
                          size_t* length) {
  const ddv::worker::ProxyInfo& proxy = InfoOf(c).proxy;
  *data = proxy.tlvs.data();
  *length = proxy.tlvs.size();
  return proxy.tlvs_truncated ? 1 : 0;
}

int ddv_worker_call(ddv_worker* w, const char* method, const char* json_body,
                    int64_t timeout_ms, ddv_rpc_fn fn, void* user) {
  if (method == nullptr) {
    w->last_error = "method is NULL";
    return DDV_WORKER_ERROR;
  }
  json body;
  if (!ParseBody(w, json_body, &body)) return DDV_WORKER_ERROR;
  w->worker->Call(method, std::move(body), TimeoutFromMillis(timeout_ms),
                  WrapRpc(fn, user));
  return DDV_WORKER_OK;
}

int ddv_worker_ping(ddv_worker* w, int64_t timeout_ms, ddv_rpc_fn fn,
                    void* user) {
  w->worker->Ping(TimeoutFromMillis(timeout_ms), WrapRpc(fn, user));
  return DDV_WORKER_OK;
}

int ddv_worker_status(ddv_worker* w, int64_t timeout_ms, ddv_rpc_fn fn,
                      void* user) {
  w->worker->Status(TimeoutFromMillis(timeout_ms), WrapRpc(fn, user));
  return DDV_WORKER_OK;
}

int ddv_worker_update_server_conf(ddv_worker* w, const char* json_body,
                                  int64_t timeout_ms, ddv_rpc_fn fn,
                                  void* user) {
  return ddv_worker_call(w, "update_server_conf", json_body, timeout_ms, fn,
                         user);
}

int ddv_worker_send_to_worker(ddv_worker* w, const char* site,
                              uint32_t worker_index, const char* json_body) {
  if (site == nullptr) {
    w->last_error = "site is NULL";
    return DDV_WORKER_ERROR;
  }
  json body;
  if (!ParseBody(w, json_body, &body)) return DDV_WORKER_ERROR;
  absl::Status status =
      w->worker->SendToWorker(site, worker_index, std::move(body));
  if (status.ok()) return DDV_WORKER_OK;
  w->last_error = status.ToString();
  return DDV_WORKER_ERROR;
}

uint32_t ddv_worker_listener_key(const ddv_connection_info* info) {
  return InfoOf(info).listener_key;
}

int ddv_worker_check_request(ddv_worker* w, uint32_t listener_key,
                             const char* target, const char* host) {
  return HostCode(w->worker->CheckRequest(listener_key, OrEmpty(target),
                                          OrEmpty(host)));
}

int ddv_worker_check_first_request(ddv_worker* w, uint32_t listener_key,
                                   const char* routed_host,
                                   const char* target, const char* host) {
  if (ddv::route::NamesRoutedHost(OrEmpty(target), OrEmpty(host),
                                  OrEmpty(routed_host))) {
    return DDV_HOST_ALLOWED;
  }
  return ddv_worker_check_request(w, listener_key, target, host);
}

uint64_t ddv_worker_misdirected_requests(const ddv_worker* w) {
  return w->worker->misdirected_requests();
}

}  // extern "C"
