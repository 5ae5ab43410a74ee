// Master, control side: signals (signalfd, so handlers never run user code),
// the control socket behind `ddvctl`, worker RPCs and reload.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "src/base/errno_status.h"
#include "src/master/master.h"
#include "src/sniff/host_name.h"
#include "src/uring/op_tag.h"

namespace ddv {
namespace master {
namespace {

using json = nlohmann::json;

constexpr int kHandledSignals[] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGCHLD};

}  // namespace

absl::Status Master::InitSignals() {
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : kHandledSignals) sigaddset(&mask, sig);
  // Blocked so they queue on the signalfd; children get a clean mask at
  // spawn (supervise::Spawn resets it).
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) < 0) {
    return ErrnoStatus(errno, "sigprocmask", "blocking handled signals");
  }
  signal_fd_.Reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!signal_fd_) return ErrnoStatus(errno, "signalfd", "watching signals");
  ArmSignalPoll();

  const std::string& path = config_.master.control_socket;
  if (path.empty()) return absl::OkStatus();
  std::error_code error;
  std::filesystem::create_directories(
      std::filesystem::path(path).parent_path(), error);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("control socket path too long: ", path));
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  control_fd_.Reset(
      socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!control_fd_) return ErrnoStatus(errno, "socket", "creating the control socket");
  // A stale socket from a crashed master would make bind fail.
  unlink(path.c_str());
  if (bind(control_fd_.get(), reinterpret_cast<sockaddr*>(&addr),
           sizeof(addr)) < 0) {
    return ErrnoStatus(errno, "bind",
                       absl::StrCat("binding the control socket \"", path, "\""));
  }
  chmod(path.c_str(), 0660);
  if (listen(control_fd_.get(), 16) < 0) {
    return ErrnoStatus(errno, "listen", "listening on the control socket");
  }
  ArmControlPoll();
  return absl::OkStatus();
}

void Master::ArmSignalPoll() {
  io_uring_sqe* sqe = Sqe(kOpSignalPoll, 0);
  io_uring_prep_poll_multishot(sqe, signal_fd_.get(), POLLIN);
}

void Master::ArmControlPoll() {
  io_uring_sqe* sqe = Sqe(kOpControlPoll, 0);
  io_uring_prep_poll_multishot(sqe, control_fd_.get(), POLLIN);
}

void Master::OnSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
        LOG(INFO) << "signal " << info.ssi_signo << ": graceful stop";
        BeginStop();
        break;
      case SIGHUP:
        LOG(INFO) << "SIGHUP: reloading " << config_.path;
        Reload();
        break;
      case SIGUSR1:
        // Workers own their log files' content; tell them too.
        for (int w = 0; w < workers_->size(); ++w) {
          if (workers_->pid(w) > 0) kill(workers_->pid(w), SIGUSR1);
        }
        break;
      case SIGCHLD:
        break;  // exits are seen through each worker's pidfd
    }
  }
}

void Master::BeginStop() {
  if (stopping_) return;
  stopping_ = true;
  // Undecided connections get until their peek deadline; routed ones until
  // a worker has them (plus the wait for a live worker).
  stop_deadline_ns_ = MonotonicNowNs() +
                      config_.master.peek_timeout_ms * 1000000LL +
                      absl::ToInt64Nanoseconds(options_.worker_wait);
  for (uint32_t l = 0; l < listeners_.size(); ++l) {
    io_uring_sqe* sqe = Sqe(kOpCancel, l);
    io_uring_prep_cancel64(sqe, uring::OpTag{kOpAccept, l, 0}.Encode(), 0);
  }
}

void Master::Reload() {
  absl::StatusOr<config::Config> loaded = config::LoadConfigFile(config_.path);
  if (!loaded.ok()) {
    LOG(ERROR) << "reload failed, keeping the running config: "
               << loaded.status().message();
    return;
  }
  absl::Status status = ApplyConfig(std::move(*loaded));
  if (!status.ok()) {
    LOG(ERROR) << "reload failed, keeping the running config: "
               << status.message();
    return;
  }
  LOG(INFO) << "reloaded " << config_.path;
}

// What a reload can change live: hosts, defaults, ALPN claims (a new route
// table swapped in whole); sites added or removed; a site's process count;
// its command, environment, logs or credentials (a rolling restart). The
// listening sockets belong to the watchdog, so listener changes need a
// restart of ddv_master, which the watchdog does without losing queued
// connections.
absl::Status Master::ApplyConfig(config::Config loaded) {
  if (loaded.listeners.size() != config_.listeners.size()) {
    return absl::FailedPreconditionError(
        "listeners were added or removed; restart ddv_master to apply that");
  }
  for (size_t i = 0; i < loaded.listeners.size(); ++i) {
    const config::ListenerConfig& a = loaded.listeners[i];
    const config::ListenerConfig& b = config_.listeners[i];
    if (a.name != b.name || a.address != b.address ||
        a.protocol != b.protocol || a.proxy_protocol != b.proxy_protocol) {
      return absl::FailedPreconditionError(absl::StrCat(
          "listener \"", b.name, "\" changed; restart ddv_master to apply that"));
    }
  }
  // Site indexes never change while the master runs: a removed site stays
  // as an empty slot (no hosts, no workers), a new one is appended.
  config::Config next = loaded;
  next.sites.clear();
  std::vector<bool> taken(loaded.sites.size(), false);
  for (const config::SiteConfig& old : config_.sites) {
    auto it = std::find_if(loaded.sites.begin(), loaded.sites.end(),
                           [&](const config::SiteConfig& s) {
                             return s.id == old.id;
                           });
    if (it == loaded.sites.end()) {
      config::SiteConfig removed = old;
      removed.hosts.clear();
      removed.is_default = false;
      removed.processes = 0;
      removed.listeners = {};
      removed.alpn.clear();
      next.sites.push_back(std::move(removed));
    } else {
      taken[it - loaded.sites.begin()] = true;
      next.sites.push_back(*it);
    }
  }
  for (size_t i = 0; i < loaded.sites.size(); ++i) {
    if (!taken[i]) next.sites.push_back(loaded.sites[i]);
  }
  // Listener defaults name sites by id; the route builder maps them.
  std::shared_ptr<const route::RouteTable> routes;
  absl::Status status = BuildRoutes(next, &routes);
  if (!status.ok()) return status;

  const size_t old_sites = config_.sites.size();
  for (size_t s = 0; s < next.sites.size(); ++s) {
    const config::SiteConfig& site = next.sites[s];
    if (s >= old_sites) {
      // The pool takes the site's index even when AddSite fails, and the
      // config is committed below in every case: the two never drift apart.
      // A spawn failure is the supervisor's business (back-off).
      absl::StatusOr<int> added = workers_->AddSite(site);
      if (!added.ok()) {
        LOG(ERROR) << "reload: site \"" << site.id
                   << "\" has no workers: " << added.status();
        continue;
      }
      status = workers_->StartSite(*added);
      if (!status.ok()) LOG(ERROR) << "reload: " << status;
      LOG(INFO) << "reload: site \"" << site.id << "\" added";
      continue;
    }
    const config::SiteConfig& before = config_.sites[s];
    const bool respawn = site.command != before.command ||
                         site.env != before.env || site.user != before.user ||
                         site.group != before.group ||
                         site.log_output != before.log_output ||
                         site.log_error != before.log_error ||
                         site.log_all != before.log_all ||
                         site.tls_cert != before.tls_cert ||
                         site.tls_key != before.tls_key;
    if (respawn) workers_->UpdateSpecs(s, site);
    if (site.processes != before.processes) {
      status = workers_->SetProcessCount(s, site, site.processes);
      if (!status.ok()) LOG(ERROR) << "reload: " << status;
      LOG(INFO) << "reload: site \"" << site.id << "\" now runs "
                << site.processes << " processes";
    }
    if (respawn && site.processes > 0) {
      workers_->RollingRestart(s);
      LOG(INFO) << "reload: site \"" << site.id << "\" changed; rolling restart";
    } else if (!site.tls_cert.empty()) {
      // Same paths, maybe renewed files: SIGHUP tells a worker to re-read
      // its certificates (docs/tls.md), without a restart.
      for (int w = 0; w < workers_->size(); ++w) {
        if (workers_->at(w).site == static_cast<int>(s) &&
            !workers_->at(w).retired && workers_->pid(w) > 0) {
          kill(workers_->pid(w), SIGHUP);
        }
      }
    }
  }
  routes_ = std::move(routes);
  config_ = std::move(next);
  return absl::OkStatus();
}

std::string Master::MetricsText() const {
  std::string out = RenderCounters(counters_);
  absl::StrAppend(&out,
                  "# HELP ddv_connections_undecided connections the master "
                  "holds now\n# TYPE ddv_connections_undecided gauge\n"
                  "ddv_connections_undecided ",
                  connections_.in_use(), "\n");
  absl::StrAppend(&out, "# TYPE ddv_worker_outstanding gauge\n");
  for (int w = 0; w < workers_->size(); ++w) {
    const Worker& worker = workers_->at(w);
    absl::StrAppend(&out, "ddv_worker_outstanding{site=\"",
                    workers_->site_id(worker.site), "\",worker=\"",
                    worker.index, "\"} ", worker.outstanding, "\n");
  }
  return out;
}

std::string Master::StatusJson() const {
  json status;
  status["pid"] = getpid();
  status["uptime_seconds"] = (MonotonicNowNs() - started_ns_) / 1000000000;
  status["config"] = config_.path;
  status["stopping"] = stopping_;
  json listeners = json::array();
  for (const config::ListenerConfig& l : config_.listeners) {
    listeners.push_back({{"name", l.name},
                         {"address", l.address},
                         {"protocol", config::ProtocolName(l.protocol)},
                         {"default_site", l.default_site}});
  }
  status["listeners"] = listeners;
  json sites = json::array();
  for (size_t s = 0; s < config_.sites.size(); ++s) {
    const config::SiteConfig& site = config_.sites[s];
    if (site.processes == 0) continue;  // removed by a reload
    json workers = json::array();
    for (int w = 0; w < workers_->size(); ++w) {
      const Worker& worker = workers_->at(w);
      if (worker.site != static_cast<int>(s)) continue;
      if (worker.retired && workers_->pid(w) == 0) continue;
      int slot = worker.process_slot;
      workers.push_back(
          {{"index", worker.index},
           {"pid", workers_->pid(w)},
           {"state", supervise::ProcessStateName(
                         workers_->processes().state(slot))},
           {"ready", worker.ready},
           {"retired", worker.retired},
           {"restarts", workers_->processes().restarts(slot)},
           {"outstanding", worker.outstanding},
           {"unread_bytes", workers_->UnreadBytes(w)}});
    }
    sites.push_back({{"id", site.id},
                     {"hosts", site.hosts},
                     {"default", site.is_default},
                     {"failed", workers_->SiteFailed(s)},
                     {"workers", workers}});
  }
  status["sites"] = sites;
  json counters;
#define DDV_JSON_COUNTER(name, help) counters[#name] = counters_.name;
  DDV_MASTER_COUNTERS(DDV_JSON_COUNTER)
#undef DDV_JSON_COUNTER
  status["counters"] = counters;
  return status.dump();
}

// Control clients are served through the ring: a client that connects and
// says nothing costs the loop nothing (it is closed after a second).
void Master::OnControlReadable() {
  while (true) {
    UniqueFd client(accept4(control_fd_.get(), nullptr, nullptr,
                            SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!client) return;
    uint32_t slot = 0;
    while (slot < control_clients_.size() && control_clients_[slot].fd) ++slot;
    if (slot == control_clients_.size()) {
      const char kBusy[] = "error: too many control clients\n";
      send(client.get(), kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    ControlClient& c = control_clients_[slot];
    c.fd = std::move(client);
    c.length = 0;
    ++c.generation;
    c.deadline = ToTimespecNs(MonotonicNowNs() + 1000000000LL);
    SubmitControlRecv(slot);
  }
}

void Master::SubmitControlRecv(uint32_t slot) {
  ControlClient& c = control_clients_[slot];
  ring_->Reserve(2);
  io_uring_sqe* sqe = Sqe(kOpControlRecv, slot, c.generation);
  io_uring_prep_recv(sqe, c.fd.get(), c.buffer + c.length,
                     sizeof(c.buffer) - c.length, 0);
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* timeout = Sqe(kOpControlTimeout, slot, c.generation);
  io_uring_prep_link_timeout(timeout, &c.deadline, IORING_TIMEOUT_ABS);
  c.inflight += 2;
}

void Master::OnControlCompletion(Op op, uint32_t slot, io_uring_cqe* cqe) {
  ControlClient& c = control_clients_[slot];
  --c.inflight;
  if (op == kOpControlRecv && c.fd) {
    if (cqe->res > 0) {
      c.length += cqe->res;
      absl::string_view text(c.buffer, c.length);
      if (text.find('\n') == absl::string_view::npos &&
          c.length < sizeof(c.buffer)) {
        if (c.inflight == 0) SubmitControlRecv(slot);
        else c.resubmit = true;
        return;
      }
      std::string reply = ControlCommand(text);
      // The socket buffer (~200 KiB) holds any reply we make; a client that
      // does not read gets a truncated answer, never a stalled loop.
      size_t sent = 0;
      while (sent < reply.size()) {
        ssize_t n = send(c.fd.get(), reply.data() + sent, reply.size() - sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n <= 0) break;
        sent += n;
      }
    }
    c.fd.Reset();
    return;
  }
  // The link timeout's own completion.
  if (c.resubmit && c.inflight == 0 && c.fd) {
    c.resubmit = false;
    SubmitControlRecv(slot);
  }
}

std::string Master::ControlCommand(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
  if (words.empty()) return "error: empty command\n";
  if (words[0] == "status") return StatusJson() + "\n";
  if (words[0] == "metrics") return MetricsText();
  if (words[0] == "reload") {
    Reload();
    return "ok: reload requested; see the master log for the outcome\n";
  }
  if (words[0] == "stop") {
    BeginStop();
    return "ok: stopping\n";
  }
  if (words[0] == "restart" && words.size() == 2) {
    for (size_t s = 0; s < config_.sites.size(); ++s) {
      if (config_.sites[s].id == words[1] && config_.sites[s].processes > 0) {
        int restarted = RollingRestart(s);
        return absl::StrCat("ok: restarting ", restarted, " workers of \"",
                            words[1], "\" one at a time\n");
      }
    }
    return absl::StrCat("error: no site \"", words[1], "\"\n");
  }
  return absl::StrCat("error: unknown command \"", words[0],
                      "\" (status, metrics, reload, stop, restart SITE)\n");
}

int Master::RollingRestart(int site) {
  workers_->RollingRestart(site);
  return workers_->LiveWorkers(site);
}

void Master::Reply(int w, uint64_t id, absl::Status status,
                   const std::string& body) {
  handoff::Response response;
  response.id = id;
  response.code = status.code();
  response.error = std::string(status.message());
  response.body = status.ok() ? body : "";
  absl::StatusOr<std::string> bytes = handoff::EncodeFrame(response);
  if (!bytes.ok()) return;
  absl::Status sent = handoff::SendFrame(workers_->at(w).channel.get(), *bytes,
                                         {}, absl::ZeroDuration());
  if (!sent.ok()) {
    LOG_EVERY_N(WARNING, 100) << "RPC reply lost: " << sent;
  }
}

void Master::OnWorkerRequest(int w, const handoff::Request& request) {
  if (request.method == "ping") {
    Reply(w, request.id, absl::OkStatus(), "{\"pong\":true}");
  } else if (request.method == "status") {
    Reply(w, request.id, absl::OkStatus(), StatusJson());
  } else if (request.method == "update_server_conf") {
    Reply(w, request.id, UpdateServerConf(w, request.body), "{}");
  } else {
    Reply(w, request.id,
          absl::UnimplementedError(
              absl::StrCat("unknown method \"", request.method, "\"")),
          "");
  }
}

// The seed's updateServerConf: a worker adds hosts to its own site or claims
// the default. Policy: a host another site already serves is refused, and
// the default can be claimed only when no other site holds it.
absl::Status Master::UpdateServerConf(int w, const std::string& body) {
  json request = json::parse(body, nullptr, false);
  if (request.is_discarded() || !request.is_object()) {
    return absl::InvalidArgumentError("update_server_conf: body is not a JSON object");
  }
  const int site = workers_->at(w).site;
  config::Config next = config_;
  config::SiteConfig& mine = next.sites[site];
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() == "add_hosts" && it->is_array()) {
      for (const json& host : *it) {
        if (!host.is_string()) {
          return absl::InvalidArgumentError("add_hosts: hosts are strings");
        }
        std::string name = absl::AsciiStrToLower(host.get<std::string>());
        absl::string_view bare = name;
        bool wildcard = absl::ConsumePrefix(&bare, "*.");
        sniff::HostName normal;
        if (const char* error =
                sniff::NormalizeHost(bare, sniff::HostSyntax::kTlsSni, &normal)) {
          return absl::InvalidArgumentError(
              absl::StrCat("add_hosts: \"", name, "\": ", error));
        }
        std::string pattern =
            absl::StrCat(wildcard ? "*." : "", normal.view());
        for (const config::SiteConfig& other : next.sites) {
          if (&other == &mine) continue;
          for (const std::string& h : other.hosts) {
            if (h == pattern) {
              return absl::AlreadyExistsError(absl::StrCat(
                  "add_hosts: \"", pattern, "\" is served by site \"",
                  other.id, "\""));
            }
          }
        }
        if (std::find(mine.hosts.begin(), mine.hosts.end(), pattern) ==
            mine.hosts.end()) {
          mine.hosts.push_back(pattern);
        }
      }
    } else if (it.key() == "default" && it->is_boolean()) {
      if (it->get<bool>()) {
        for (const config::SiteConfig& other : next.sites) {
          if (&other != &mine && other.is_default) {
            return absl::FailedPreconditionError(absl::StrCat(
                "default: site \"", other.id, "\" is the default already"));
          }
        }
      }
      mine.is_default = it->get<bool>();
    } else if (it.key() == "processes" && it->is_number_integer()) {
      // The config's own bounds (docs/config.md) are the policy.
      int64_t count = it->get<int64_t>();
      if (count < 1 || count > 1024) {
        return absl::InvalidArgumentError(absl::StrCat(
            "processes: ", count, " is outside 1..1024"));
      }
      mine.processes = static_cast<int>(count);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_server_conf: unknown or mistyped key \"", it.key(),
          "\" (add_hosts: [string], default: bool, processes: int)"));
    }
  }
  std::shared_ptr<const route::RouteTable> routes;
  absl::Status status = BuildRoutes(next, &routes);
  if (!status.ok()) return status;
  if (mine.processes != config_.sites[site].processes) {
    status = workers_->SetProcessCount(site, mine, mine.processes);
    if (!status.ok()) return status;
  }
  routes_ = std::move(routes);
  config_ = std::move(next);
  LOG(INFO) << "site " << config_.sites[site].id
            << " updated its server conf: " << body;
  return absl::OkStatus();
}

void Master::ForwardMessage(int w, handoff::Message message) {
  const Worker& from = workers_->at(w);
  message.source_site = workers_->site_id(from.site);
  message.source_worker = from.index;
  absl::StatusOr<std::string> bytes = handoff::EncodeFrame(message);
  if (!bytes.ok()) return;
  for (int t = 0; t < workers_->size(); ++t) {
    const Worker& to = workers_->at(t);
    if (workers_->site_id(to.site) != message.target_site) continue;
    if (message.target_worker != handoff::kAnyWorker &&
        static_cast<uint32_t>(to.index) != message.target_worker) {
      continue;
    }
    (void)handoff::SendFrame(to.channel.get(), *bytes, {}, absl::ZeroDuration());
    if (message.target_worker == handoff::kAnyWorker) break;
  }
}

}  // namespace master
}  // namespace ddv
