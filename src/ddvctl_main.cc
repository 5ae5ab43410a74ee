// ddvctl: the control CLI. `status [--json]`, `reload`, `stop`, `metrics`,
// `restart SITE`, against --control_socket.
#include <cstdio>
#include <string>

#include "absl/strings/str_join.h"
#include "gflags/gflags.h"
#include "nlohmann/json.hpp"
#include "src/control/control_client.h"

DEFINE_string(control_socket, "/tmp/ddv-demo/control.sock",
              "the master's control socket ([master] control_socket)");
DEFINE_bool(json, false, "status: print the raw JSON");
DEFINE_int32(timeout_ms, 5000, "give up after this long");

namespace {

void PrintStatus(const std::string& text) {
  nlohmann::json status = nlohmann::json::parse(text, nullptr, false);
  if (status.is_discarded()) {
    std::printf("%s", text.c_str());
    return;
  }
  std::printf("master pid %d, up %llds, config %s%s\n",
              status.value("pid", 0),
              static_cast<long long>(status.value("uptime_seconds", 0)),
              status.value("config", std::string()).c_str(),
              status.value("stopping", false) ? " (stopping)" : "");
  for (const auto& l : status["listeners"]) {
    std::printf("listener %-10s %-22s %s\n",
                l.value("name", std::string()).c_str(),
                l.value("address", std::string()).c_str(),
                l.value("protocol", std::string()).c_str());
  }
  for (const auto& s : status["sites"]) {
    std::vector<std::string> hosts = s.value("hosts", std::vector<std::string>());
    std::printf("site %-10s%s%s hosts: %s\n",
                s.value("id", std::string()).c_str(),
                s.value("default", false) ? " (default)" : "",
                s.value("failed", false) ? " FAILED" : "",
                hosts.empty() ? "-" : absl::StrJoin(hosts, " ").c_str());
    for (const auto& w : s["workers"]) {
      std::printf("  #%d pid %-7d %-9s restarts %d outstanding %d\n",
                  w.value("index", 0), w.value("pid", 0),
                  w.value("state", std::string()).c_str(),
                  w.value("restarts", 0), w.value("outstanding", 0));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "ddvctl [--control_socket=PATH] status [--json] | metrics | reload | "
      "stop | restart SITE");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc < 2) {
    std::fprintf(stderr, "%s\n", gflags::ProgramUsage());
    return 2;
  }
  std::string command = argv[1];
  if (command == "restart") {
    if (argc != 3) {
      std::fprintf(stderr, "usage: ddvctl restart SITE\n");
      return 2;
    }
    command += std::string(" ") + argv[2];
  } else if (command != "status" && command != "metrics" &&
             command != "reload" && command != "stop") {
    std::fprintf(stderr, "ddvctl: unknown command \"%s\"\n%s\n",
                 command.c_str(), gflags::ProgramUsage());
    return 2;
  }
  absl::StatusOr<std::string> reply = ddv::control::SendControlCommand(
      FLAGS_control_socket, command, absl::Milliseconds(FLAGS_timeout_ms));
  if (!reply.ok()) {
    std::fprintf(stderr, "ddvctl: %s\n",
                 std::string(reply.status().message()).c_str());
    return 1;
  }
  if (command == "status" && !FLAGS_json) {
    PrintStatus(*reply);
  } else {
    std::printf("%s", reply->c_str());
  }
  return 0;
}
