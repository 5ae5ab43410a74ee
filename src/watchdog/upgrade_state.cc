#include "src/watchdog/upgrade_state.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace watchdog {
namespace {

void SetCloseOnExec(int fd, bool on) {
  const int flags = fcntl(fd, F_GETFD);
  if (flags < 0) return;
  fcntl(fd, F_SETFD, on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC));
}

// A descriptor number from the state, owned from now on.
bool TakeFd(const nlohmann::json& value, UniqueFd* out) {
  if (!value.is_number_integer()) return false;
  const int fd = value.get<int>();
  if (fd < 3 || fcntl(fd, F_GETFD) < 0) return false;
  SetCloseOnExec(fd, true);
  *out = UniqueFd(fd);
  return true;
}

// The log writer's fds kept across execve: its pidfd (while it runs), the
// link's two ends and the park's.
std::vector<int> LogWriterFds(const logwriter::SupervisedLogWriter& writer) {
  std::vector<int> fds = {writer.sockets().master_end.get(),
                          writer.sockets().writer_end.get(),
                          writer.sockets().park_send.get(),
                          writer.sockets().park_recv.get()};
  if (writer.pid() > 0) fds.push_back(writer.pidfd());
  return fds;
}

// {"pid", "link": [masters' end, writer's end], "park": [send, receive],
// "pidfd"}: the writer beside the master, taken back by the new image.
nlohmann::json EncodeLogWriter(const logwriter::SupervisedLogWriter& writer) {
  nlohmann::json entry = {
      {"pid", writer.pid()},
      {"link",
       {writer.sockets().master_end.get(), writer.sockets().writer_end.get()}},
      {"park",
       {writer.sockets().park_send.get(), writer.sockets().park_recv.get()}}};
  if (writer.pid() > 0) entry["pidfd"] = writer.pidfd();
  return entry;
}

absl::StatusOr<logwriter::KeptWriter> DecodeLogWriter(
    const nlohmann::json& entry) {
  logwriter::KeptWriter kept;
  const auto bad = absl::InvalidArgumentError(
      absl::StrCat("log writer ", entry.dump()));
  if (!entry.is_object() || !entry.contains("pid") ||
      !entry["pid"].is_number_integer() || !entry.contains("link") ||
      !entry["link"].is_array() || entry["link"].size() != 2 ||
      !entry.contains("park") || !entry["park"].is_array() ||
      entry["park"].size() != 2 ||
      !TakeFd(entry["link"][0], &kept.sockets.master_end) ||
      !TakeFd(entry["link"][1], &kept.sockets.writer_end) ||
      !TakeFd(entry["park"][0], &kept.sockets.park_send) ||
      !TakeFd(entry["park"][1], &kept.sockets.park_recv)) {
    return bad;
  }
  kept.pid = entry["pid"].get<pid_t>();
  if (kept.pid > 0 &&
      (!entry.contains("pidfd") || !TakeFd(entry["pidfd"], &kept.pidfd))) {
    kept.pid = 0;  // it is started afresh on the kept sockets
  }
  return kept;
}

}  // namespace

absl::StatusOr<UniqueFd> WriteWatchdogState(
    const std::vector<std::string>& master_argv, const ListenerSet& listeners,
    const std::vector<const WorkerRecord*>& workers,
    const logwriter::SupervisedLogWriter* log_writer,
    const KeptServiceState& service) {
  nlohmann::json state = nlohmann::json::object();
  state["master_argv"] = master_argv;
  state["listeners"] = nlohmann::json::array();
  for (size_t i = 0; i < listeners.size(); ++i) {
    state["listeners"].push_back(
        {{"name", listeners.name(i)}, {"fd", listeners.fd(i)}});
  }
  state["workers"] = nlohmann::json::array();
  for (const WorkerRecord* record : workers) {
    nlohmann::json entry = EncodeWorkerRecord(*record);
    entry["fds"] = WorkerRecordFds(*record);
    state["workers"].push_back(std::move(entry));
  }
  if (log_writer != nullptr) state["log_writer"] = EncodeLogWriter(*log_writer);
  state["service"] = {{"socket_activated", service.socket_activated},
                      {"ready_sent", service.ready_sent},
                      {"reloading", service.reloading}};
  const std::string text =
      state.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  UniqueFd memfd(memfd_create("ddv-watchdog-state", 0));
  if (!memfd) {
    return ErrnoStatus(errno, "memfd_create", "saving the watchdog's state");
  }
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n =
        write(memfd.get(), text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return ErrnoStatus(errno, "write", "saving the watchdog's state");
    }
    written += n;
  }
  for (size_t i = 0; i < listeners.size(); ++i) {
    SetCloseOnExec(listeners.fd(i), false);
  }
  for (const WorkerRecord* record : workers) {
    for (int fd : WorkerRecordFds(*record)) SetCloseOnExec(fd, false);
  }
  if (log_writer != nullptr) {
    for (int fd : LogWriterFds(*log_writer)) SetCloseOnExec(fd, false);
  }
  return memfd;
}

void RestoreCloseOnExec(const ListenerSet& listeners,
                        const std::vector<const WorkerRecord*>& workers,
                        const logwriter::SupervisedLogWriter* log_writer) {
  for (size_t i = 0; i < listeners.size(); ++i) {
    SetCloseOnExec(listeners.fd(i), true);
  }
  for (const WorkerRecord* record : workers) {
    for (int fd : WorkerRecordFds(*record)) SetCloseOnExec(fd, true);
  }
  if (log_writer != nullptr) {
    for (int fd : LogWriterFds(*log_writer)) SetCloseOnExec(fd, true);
  }
}

absl::StatusOr<WatchdogState> ReadWatchdogState(int fd) {
  UniqueFd owned(fd);
  std::string text;
  if (lseek(fd, 0, SEEK_SET) < 0) {
    return ErrnoStatus(errno, "lseek", "reading the watchdog's saved state");
  }
  char buffer[65536];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoStatus(errno, "read", "reading the watchdog's saved state");
    }
    if (n == 0) break;
    text.append(buffer, n);
  }
  const nlohmann::json state =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat("the saved watchdog state is unusable: ", what));
  };
  if (!state.is_object() || !state.contains("master_argv") ||
      !state["master_argv"].is_array() || !state.contains("listeners") ||
      !state["listeners"].is_array() || !state.contains("workers") ||
      !state["workers"].is_array()) {
    return bad("not the expected JSON object");
  }
  WatchdogState out;
  for (const nlohmann::json& arg : state["master_argv"]) {
    if (!arg.is_string()) return bad("master_argv");
    out.master_argv.push_back(arg.get<std::string>());
  }
  for (const nlohmann::json& listener : state["listeners"]) {
    UniqueFd socket;
    if (!listener.is_object() || !listener.contains("name") ||
        !listener["name"].is_string() || !listener.contains("fd") ||
        !TakeFd(listener["fd"], &socket)) {
      return bad(absl::StrCat("listener ", listener.dump()));
    }
    out.listener_names.push_back(listener["name"].get<std::string>());
    out.listeners.push_back(std::move(socket));
  }
  // One unusable worker record costs that worker (its fds close, it sees
  // EOF and leaves), never the listeners and the other workers.
  for (const nlohmann::json& worker : state["workers"]) {
    LinkMessage message;
    message.body = worker;
    bool usable = worker.is_object() && worker.contains("fds") &&
                  worker["fds"].is_array();
    if (usable) {
      for (const nlohmann::json& fd : worker["fds"]) {
        UniqueFd taken;
        if (!TakeFd(fd, &taken)) usable = false;
        message.fds.push_back(std::move(taken));
      }
    }
    absl::StatusOr<WorkerRecord> record =
        usable ? DecodeWorkerRecord(std::move(message))
               : absl::InvalidArgumentError("unusable fds");
    if (!record.ok()) {
      out.skipped.push_back(
          absl::StrCat(record.status().message(), ": ", worker.dump()));
      continue;
    }
    out.workers.push_back(*std::move(record));
  }
  // An unusable writer entry costs the pipes it read (their workers get
  // EPIPE); a new writer starts.
  if (state.contains("log_writer")) {
    absl::StatusOr<logwriter::KeptWriter> writer =
        DecodeLogWriter(state["log_writer"]);
    if (writer.ok()) {
      out.log_writer = *std::move(writer);
    } else {
      out.skipped.push_back(std::string(writer.status().message()));
    }
  }
  // Absent in a state written by an image before systemd support: nothing
  // was told, nothing was passed.
  if (state.contains("service") && state["service"].is_object()) {
    const nlohmann::json& service = state["service"];
    const auto flag = [&service](const char* key) {
      auto it = service.find(key);
      return it != service.end() && it->is_boolean() && it->get<bool>();
    };
    out.service.socket_activated = flag("socket_activated");
    out.service.ready_sent = flag("ready_sent");
    out.service.reloading = flag("reloading");
  }
  return out;
}

}  // namespace watchdog
}  // namespace ddv
