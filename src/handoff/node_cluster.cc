// Node.js cluster IPC: decode the child's JSON lines, encode the primary's.
// Message shapes follow lib/internal/cluster/{child,utils}.js and
// lib/internal/child_process.js of Node 18–22.
#include "src/handoff/node_cluster.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
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
    if (m->ack < 0)
      return absl::InvalidArgumentError("\"accepted\" without \"ack\"");
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

// The two lines a worker sends for every connection, exactly as Node's
// JSON.stringify writes them, read without building a JSON tree: on the
// hot path the full parse cost more than the rest of the exchange. Anything
// else (other spacing, key order, values) takes the full parse.
std::optional<ChildMessage> DecodeHotLine(absl::string_view line) {
  constexpr absl::string_view kHandleAck = R"({"cmd":"NODE_HANDLE_ACK"})";
  constexpr absl::string_view kAccepted = R"({"cmd":"NODE_CLUSTER","ack":)";
  ChildMessage m;
  if (line == kHandleAck) {
    m.kind = ChildMessageKind::kHandleAck;
    return m;
  }
  if (!absl::ConsumePrefix(&line, kAccepted)) return std::nullopt;
  size_t comma = line.find(',');
  if (comma == absl::string_view::npos ||
      !absl::SimpleAtoi(line.substr(0, comma), &m.ack) || m.ack < 0 ||
      line.substr(0, comma).find_first_not_of("0123456789") !=
          absl::string_view::npos) {
    return std::nullopt;
  }
  line.remove_prefix(comma + 1);
  if (absl::ConsumePrefix(&line, R"("accepted":true,"seq":)")) {
    m.accepted = true;
  } else if (absl::ConsumePrefix(&line, R"("accepted":false,"seq":)")) {
    m.accepted = false;
  } else {
    return std::nullopt;
  }
  if (!absl::ConsumeSuffix(&line, "}") || line.empty() ||
      line.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(line, &m.seq)) {
    return std::nullopt;
  }
  m.kind = ChildMessageKind::kAccepted;
  return m;
}

}  // namespace

absl::StatusOr<ChildMessage> DecodeChildLine(absl::string_view line) {
  if (std::optional<ChildMessage> hot = DecodeHotLine(line)) return *hot;
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

std::string NewConnectionPrefix(absl::string_view key) {
  // The key is JSON-escaped once here (it echoes what the app asked to
  // listen on); the sequence number and the closing braces go on per line.
  return absl::StrCat(
      R"({"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER",)",
      R"("act":"newconn","key":)", json(std::string(key)).dump(), R"(,"seq":)");
}

void AppendNewConnection(absl::string_view prefix, int64_t seq,
                         std::string* out, absl::string_view ddv) {
  if (ddv.empty()) {
    absl::StrAppend(out, prefix, seq, "}}\n");
  } else {
    absl::StrAppend(out, prefix, seq, R"(,"ddv":)", ddv, "}}\n");
  }
}

std::string NewConnectionDdv(absl::string_view host, absl::string_view more) {
  if (host.empty()) return std::string(more);
  // A normal form is printable ASCII already; replace keeps a stray byte
  // from aborting the dump (the build has no exceptions).
  std::string out = absl::StrCat(
      R"({"host":)",
      json(std::string(host)).dump(-1, ' ', false,
                                   json::error_handler_t::replace));
  // `more` is "{...}": its members follow ours.
  if (more.size() > 2) {
    absl::StrAppend(&out, ",", more.substr(1));
  } else {
    out += '}';
  }
  return out;
}

std::string EncodeNewConnection(absl::string_view key, int64_t seq) {
  std::string line;
  AppendNewConnection(NewConnectionPrefix(key), seq, &line);
  return line;
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
