// Node.js cluster IPC: decode the child's JSON lines, encode the primary's.
// Message shapes follow lib/internal/cluster/{child,utils}.js and
// lib/internal/child_process.js of Node 18–22.
#include "src/handoff/node_cluster.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace ddv {
namespace handoff {
namespace node {
namespace {

using json = nlohmann::json;

constexpr char kClusterCmd[] = "NODE_CLUSTER";
constexpr char kHandleAckCmd[] = "NODE_HANDLE_ACK";
// lib/internal/child_process.js: messages whose cmd starts with this are
// Node's own and never reach the app's 'message' listeners.
constexpr char kInternalPrefix[] = "NODE_";

// Reads an integer field if present. Absent or null leaves *out alone; any
// other type, or a value out of range, is an error. (nlohmann's value() would
// throw on a wrong type, and the build has no exceptions to catch it.)
absl::Status OptionalInt(const json& object, const char* name, int64_t min,
                         int64_t max, int64_t* out) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is not an integer"));
  }
  int64_t value = it->get<int64_t>();
  if (value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is out of range: ", value));
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status OptionalString(const json& object, const char* name,
                            std::string* out) {
  auto it = object.find(name);
  if (it == object.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" is not a string"));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status DecodeCluster(const json& object, ChildMessage* m) {
  absl::Status status = OptionalInt(object, "seq", 0, INT64_MAX, &m->seq);
  if (!status.ok()) return status;
  std::string act;
  status = OptionalString(object, "act", &act);
  if (!status.ok()) return status;

  if (act.empty()) {
    // {"ack":M,"accepted":bool}: the answer to our newconn M.
    auto accepted = object.find("accepted");
    if (accepted == object.end()) {
      m->kind = ChildMessageKind::kInternal;
      return absl::OkStatus();
    }
    if (!accepted->is_boolean()) {
      return absl::InvalidArgumentError("\"accepted\" is not a boolean");
    }
    status = OptionalInt(object, "ack", 0, INT64_MAX, &m->ack);
    if (!status.ok()) return status;
    if (m->ack < 0) return absl::InvalidArgumentError("\"accepted\" without \"ack\"");
    m->kind = ChildMessageKind::kAccepted;
    m->accepted = accepted->get<bool>();
    return absl::OkStatus();
  }
  if (act == "online") {
    m->kind = ChildMessageKind::kOnline;
    return absl::OkStatus();
  }
  if (act == "queryServer" || act == "listening") {
    m->kind = act == "queryServer" ? ChildMessageKind::kQueryServer
                                   : ChildMessageKind::kListening;
    int64_t port = -1;
    int64_t address_type = 0;
    status = OptionalInt(object, "port", -1, 65535, &port);
    if (status.ok()) {
      status = OptionalInt(object, "addressType", -1, 6, &address_type);
    }
    if (status.ok()) status = OptionalString(object, "address", &m->address);
    if (!status.ok()) return status;
    m->port = static_cast<int>(port);
    m->address_type = static_cast<int>(address_type);
    // listen({fd}) and listen(handle) name no port: not something ddv can
    // route to. The caller answers with an error.
    auto fd = object.find("fd");
    if (fd != object.end() && !fd->is_null()) m->address_type = -1;
    auto data = object.find("data");
    if (data != object.end()) m->data = data->dump();
    return absl::OkStatus();
  }
  if (act == "close") {
    m->kind = ChildMessageKind::kClose;
    return OptionalString(object, "key", &m->key);
  }
  if (act == "exitedAfterDisconnect") {
    m->kind = ChildMessageKind::kExitedAfterDisconnect;
    return absl::OkStatus();
  }
  m->kind = ChildMessageKind::kInternal;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ChildMessage> DecodeChildLine(absl::string_view line) {
  json object = json::parse(line.begin(), line.end(), /*cb=*/nullptr,
                            /*allow_exceptions=*/false);
  if (object.is_discarded()) {
    return absl::InvalidArgumentError("not JSON");
  }
  ChildMessage m;
  // process.send() may send any JSON value; only objects carry a cmd.
  if (!object.is_object()) {
    m.kind = ChildMessageKind::kUser;
    return m;
  }
  auto cmd = object.find("cmd");
  if (cmd == object.end() || !cmd->is_string() ||
      !absl::StartsWith(cmd->get_ref<const std::string&>(), kInternalPrefix)) {
    m.kind = ChildMessageKind::kUser;
    return m;
  }
  const std::string& name = cmd->get_ref<const std::string&>();
  if (name == kHandleAckCmd) {
    m.kind = ChildMessageKind::kHandleAck;
    return m;
  }
  if (name != kClusterCmd) {
    m.kind = ChildMessageKind::kInternal;
    return m;
  }
  absl::Status status = DecodeCluster(object, &m);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad NODE_CLUSTER message: ", status.message()));
  }
  return m;
}

std::string ServerKey(int port, int address_type, absl::string_view address) {
  return absl::StrCat(address.empty() ? "*" : address, ":", port, ":",
                      address_type);
}

std::string EncodeQueryServerReply(int64_t ack, absl::string_view key,
                                   int address_type,
                                   absl::string_view address, int port,
                                   int64_t seq, absl::string_view data) {
  json parsed = json::parse(data.begin(), data.end(), nullptr,
                            /*allow_exceptions=*/false);
  json sockname = {
      {"address", std::string(address)},
      {"family", address_type == 6 ? "IPv6" : "IPv4"},
      {"port", port},
  };
  json reply = {
      {"cmd", kClusterCmd}, {"errno", nullptr},  {"key", std::string(key)},
      {"ack", ack},
      {"data", parsed.is_discarded() ? json(nullptr) : parsed},
      {"sockname", sockname},
      {"seq", seq},
  };
  return reply.dump() + "\n";
}

std::string EncodeQueryServerError(int64_t ack, absl::string_view uv_errno,
                                   int64_t seq) {
  json reply = {{"cmd", kClusterCmd}, {"errno", std::string(uv_errno)},
                {"key", nullptr},     {"ack", ack},
                {"data", nullptr},    {"seq", seq}};
  return reply.dump() + "\n";
}

std::string EncodeNewConnection(absl::string_view key, int64_t seq) {
  json message = {
      {"cmd", "NODE_HANDLE"},
      {"type", "net.Native"},
      {"msg",
       {{"cmd", kClusterCmd},
        {"act", "newconn"},
        {"key", std::string(key)},
        {"seq", seq}}},
  };
  return message.dump() + "\n";
}

std::string EncodeDisconnect(int64_t seq) {
  json message = {{"cmd", kClusterCmd}, {"act", "disconnect"}, {"seq", seq}};
  return message.dump() + "\n";
}

absl::Status LineReader::Append(absl::string_view bytes) {
  if (overflow_) {
    return absl::ResourceExhaustedError("line over the limit");
  }
  // Drop what was returned before growing, so the buffer holds at most one
  // partial line plus this read.
  if (start_ > 0) {
    buffer_.erase(0, start_);
    scanned_ -= start_;
    start_ = 0;
  }
  buffer_.append(bytes.data(), bytes.size());
  size_t newline = buffer_.find('\n', scanned_);
  size_t partial_from =
      newline == std::string::npos ? 0 : buffer_.rfind('\n') + 1;
  if (buffer_.size() - partial_from > kMaxLineBytes) {
    overflow_ = true;
    return absl::ResourceExhaustedError(absl::StrCat(
        "a line from the Node worker exceeds ", kMaxLineBytes, " bytes"));
  }
  return absl::OkStatus();
}

std::optional<absl::string_view> LineReader::Next() {
  size_t newline = buffer_.find('\n', std::max(start_, scanned_));
  if (newline == std::string::npos) {
    scanned_ = buffer_.size();
    return std::nullopt;
  }
  absl::string_view line(buffer_.data() + start_, newline - start_);
  start_ = newline + 1;
  scanned_ = start_;
  return line;
}

}  // namespace node
}  // namespace handoff
}  // namespace ddv
