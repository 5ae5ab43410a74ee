#include "src/watchdog/worker_record.h"

#include "absl/strings/str_cat.h"

namespace ddv {
namespace watchdog {
namespace {

bool ReadStrings(const nlohmann::json& body, const char* name,
                 std::vector<std::string>* out) {
  auto it = body.find(name);
  if (it == body.end()) return true;
  if (!it->is_array()) return false;
  std::vector<std::string> strings;
  for (const nlohmann::json& item : *it) {
    if (!item.is_string()) return false;
    strings.push_back(item.get<std::string>());
  }
  *out = std::move(strings);
  return true;
}

// Reads an optional field of the expected JSON type; false on a wrong type.
template <typename T>
bool ReadField(const nlohmann::json& body, const char* name, T* out) {
  auto it = body.find(name);
  if (it == body.end()) return true;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return false;
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
  } else {
    if (!it->is_number_integer()) return false;
  }
  *out = it->get<T>();
  return true;
}

}  // namespace

std::string WorkerRecord::key() const { return absl::StrCat(site, "#", index); }

nlohmann::json EncodeWorkerRecord(const WorkerRecord& record) {
  nlohmann::json body = EncodeWorkerReady(record);
  body["op"] = "worker";
  body["site"] = record.site;
  body["index"] = record.index;
  body["node"] = record.node;
  body["spec"] = record.spec_fingerprint;
  body["wire_version"] = record.wire_version;
  body["ticket_secret"] = record.ticket_secret;
  return body;
}

std::vector<int> WorkerRecordFds(const WorkerRecord& record) {
  return {record.pidfd.get(), record.channel.get(), record.child_end.get()};
}

absl::StatusOr<WorkerRecord> DecodeWorkerRecord(LinkMessage message) {
  WorkerRecord record;
  const nlohmann::json& body = message.body;
  int pid = 0;
  if (!ReadField(body, "site", &record.site) ||
      !ReadField(body, "index", &record.index) ||
      !ReadField(body, "pid", &pid) || !ReadField(body, "node", &record.node) ||
      !ReadField(body, "spec", &record.spec_fingerprint) ||
      !ReadField(body, "wire_version", &record.wire_version) ||
      !ReadField(body, "ticket_secret", &record.ticket_secret) ||
      !ReadField(body, "ready", &record.ready) ||
      !ReadField(body, "draining", &record.draining) ||
      !ReadField(body, "node_server_key", &record.node_server_key) ||
      !ReadField(body, "node_speaks_ddv", &record.node_speaks_ddv) ||
      !ReadStrings(body, "conf_updates", &record.conf_updates)) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker record with a field of the wrong type: ",
                     body.dump()));
  }
  record.pid = pid;
  if (record.site.empty() || record.index < 0 || record.pid <= 0 ||
      message.fds.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "incomplete worker record (", message.fds.size(), " fds): ",
        body.dump()));
  }
  record.pidfd = std::move(message.fds[0]);
  record.channel = std::move(message.fds[1]);
  record.child_end = std::move(message.fds[2]);
  return record;
}

nlohmann::json EncodeWorkerReady(const WorkerRecord& record) {
  nlohmann::json body = nlohmann::json::object();
  body["op"] = "ready";
  body["key"] = record.key();
  body["pid"] = record.pid;
  body["ready"] = record.ready;
  body["draining"] = record.draining;
  body["conf_updates"] = record.conf_updates;
  if (record.node) {
    body["node_server_key"] = record.node_server_key;
    body["node_speaks_ddv"] = record.node_speaks_ddv;
  }
  return body;
}

bool ApplyWorkerReady(const nlohmann::json& body, WorkerRecord* record) {
  int pid = 0;
  std::string key;
  if (!ReadField(body, "key", &key) || !ReadField(body, "pid", &pid) ||
      key != record->key() || pid != record->pid) {
    return false;
  }
  WorkerRecord updated;
  updated.ready = record->ready;
  updated.draining = record->draining;
  updated.node_server_key = record->node_server_key;
  updated.node_speaks_ddv = record->node_speaks_ddv;
  updated.conf_updates = record->conf_updates;
  if (!ReadField(body, "ready", &updated.ready) ||
      !ReadField(body, "draining", &updated.draining) ||
      !ReadField(body, "node_server_key", &updated.node_server_key) ||
      !ReadField(body, "node_speaks_ddv", &updated.node_speaks_ddv) ||
      !ReadStrings(body, "conf_updates", &updated.conf_updates)) {
    return false;
  }
  record->conf_updates = std::move(updated.conf_updates);
  record->ready = updated.ready;
  record->draining = updated.draining;
  record->node_server_key = std::move(updated.node_server_key);
  record->node_speaks_ddv = updated.node_speaks_ddv;
  return true;
}

}  // namespace watchdog
}  // namespace ddv
