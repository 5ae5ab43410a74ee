// ServiceNotifier: the order of READY, RELOADING and STOPPING, over
// NotifySocket.
#include "src/watchdog/service_notifier.h"

#include <time.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace ddv {
namespace watchdog {

absl::StatusOr<ServiceNotifier> ServiceNotifier::Create(
    const ServiceNotifierOptions& options) {
  ServiceNotifier notifier;
  if (options.notify_socket.empty()) return notifier;
  absl::StatusOr<NotifySocket> socket =
      NotifySocket::Open(options.notify_socket);
  if (!socket.ok()) return socket.status();
  notifier.socket_ = *std::move(socket);
  notifier.ready_sent_ = options.ready_sent;
  notifier.reloading_ = options.reloading;
  if (options.watchdog > absl::ZeroDuration()) {
    // sd_watchdog_enabled(3): ping at half the interval.
    notifier.ping_interval_ = options.watchdog / 2;
  }
  return notifier;
}

int64_t ServiceNotifier::MonotonicNowUsec() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000 + now.tv_nsec / 1000;
}

void ServiceNotifier::Send(const std::string& message) {
  absl::Status sent = socket_.Send(message);
  if (!sent.ok()) {
    LOG_EVERY_N(WARNING, 100) << "systemd: " << sent.message();
  }
}

void ServiceNotifier::Ready(absl::string_view status) {
  if (!enabled()) return;
  const std::string line = absl::StrCat("STATUS=", NotifyValue(status));
  if (stopping_ || (ready_sent_ && !reloading_)) {
    Send(line);
    return;
  }
  Send(absl::StrCat("READY=1\n", line));
  ready_sent_ = true;
  reloading_ = false;
}

void ServiceNotifier::Reloading(int64_t monotonic_usec,
                                absl::string_view status) {
  if (!enabled()) return;
  const std::string line = absl::StrCat("STATUS=", NotifyValue(status));
  if (!ready_sent_ || stopping_ || reloading_) {
    Send(line);
    return;
  }
  Send(absl::StrCat("RELOADING=1\nMONOTONIC_USEC=", monotonic_usec, "\n",
                    line));
  reloading_ = true;
}

void ServiceNotifier::Reloaded(absl::string_view status) {
  if (!enabled()) return;
  if (reloading_) {
    Ready(status);
  } else {
    Status(status);
  }
}

void ServiceNotifier::Stopping(absl::string_view status) {
  if (!enabled()) return;
  // The watchdog's SIGTERM and then the master's own "stopping" are one
  // stop: the first says it.
  if (stopping_) return;
  Send(absl::StrCat("STOPPING=1\nSTATUS=", NotifyValue(status)));
  stopping_ = true;
}

void ServiceNotifier::Status(absl::string_view status) {
  if (!enabled()) return;
  Send(absl::StrCat("STATUS=", NotifyValue(status)));
}

bool ServiceNotifier::Handle(const nlohmann::json& message) {
  auto field = message.find("op");
  if (field == message.end() || !field->is_string()) return false;
  const std::string op = field->get<std::string>();
  field = message.find("status");
  const std::string status = field != message.end() && field->is_string()
                                 ? field->get<std::string>()
                                 : std::string();
  if (op == "serving") {
    Ready(status);
  } else if (op == "status") {
    Status(status);
  } else if (op == "reloading") {
    field = message.find("monotonic_usec");
    Reloading(field != message.end() && field->is_number_integer()
                  ? field->get<int64_t>()
                  : MonotonicNowUsec(),
              status);
  } else if (op == "reloaded") {
    Reloaded(status);
  } else if (op == "stopping") {
    Stopping(status);
  } else {
    return false;
  }
  return true;
}

void ServiceNotifier::Ping(bool force) {
  if (!enabled() || ping_interval_ == absl::ZeroDuration()) return;
  const int64_t now = MonotonicNowUsec();
  if (!force && now < next_ping_usec_) return;
  Send("WATCHDOG=1");
  next_ping_usec_ = now + absl::ToInt64Microseconds(ping_interval_);
}

absl::Duration ServiceNotifier::UntilPing() const {
  if (!enabled() || ping_interval_ == absl::ZeroDuration()) {
    return absl::InfiniteDuration();
  }
  return std::max(absl::ZeroDuration(),
                  absl::Microseconds(next_ping_usec_ - MonotonicNowUsec()));
}

}  // namespace watchdog
}  // namespace ddv
