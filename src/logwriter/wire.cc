// Log writer messages, byte by byte (little-endian):
//   u32 magic "DDVL" | u8 version | u8 type | u16 route count | u64 park id |
//   u8 flags (bit 0: has_reply) | then per route:
//   u8 stream | u64 max_bytes | u32 keep | u16 worker length | u16 path
//   length | worker | path
#include "src/logwriter/wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace ddv {
namespace logwriter {
namespace {

constexpr size_t kHeaderBytes = 4 + 1 + 1 + 2 + 8 + 1;
constexpr uint8_t kFlagHasReply = 1;

template <typename T>
void Put(std::string* out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    out->push_back(static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) &
                                     0xff));
  }
}

// Reads fields in order; every read checks the bytes left.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}

  template <typename T>
  bool Get(T* value) {
    if (data_.size() < sizeof(T)) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[i])) << (8 * i);
    }
    *value = static_cast<T>(v);
    data_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetString(size_t length, std::string* out) {
    if (data_.size() < length) return false;
    out->assign(data_.data(), length);
    data_.remove_prefix(length);
    return true;
  }
  size_t left() const { return data_.size(); }

 private:
  absl::string_view data_;
};

bool KnownType(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kRegister) &&
         type <= static_cast<uint8_t>(MessageType::kUnpark);
}

absl::Status CheckRoutes(const Message& m) {
  const size_t n = m.routes.size();
  switch (m.type) {
    case MessageType::kRegister:
      if (n == 0 || n > kMaxRoutesPerMessage) {
        return absl::InvalidArgumentError(absl::StrCat(
            "a register message carries 1 to ", kMaxRoutesPerMessage,
            " pipes, not ", n));
      }
      break;
    case MessageType::kPark:
      if (n != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("a park record carries one pipe, not ", n));
      }
      break;
    case MessageType::kReopen:
    case MessageType::kUnpark:
      if (n != 0) {
        return absl::InvalidArgumentError("this message carries no pipe");
      }
      break;
  }
  for (const PipeRoute& r : m.routes) {
    if (r.stream != Stream::kStdout && r.stream != Stream::kStderr &&
        r.stream != Stream::kBoth) {
      return absl::InvalidArgumentError("unknown stream");
    }
    if (r.worker.size() > kMaxWorkerNameLength) {
      return absl::InvalidArgumentError("worker name too long");
    }
    if (r.path.empty() || r.path.size() > kMaxPathLength || r.path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("log path \"", r.path.substr(0, 64),
                       "\" must be absolute and at most ", kMaxPathLength,
                       " bytes"));
    }
    if (std::memchr(r.path.data(), '\0', r.path.size()) != nullptr) {
      return absl::InvalidArgumentError("log path holds a NUL byte");
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* StreamName(Stream stream) {
  switch (stream) {
    case Stream::kStdout:
      return "stdout";
    case Stream::kStderr:
      return "stderr";
    case Stream::kBoth:
      return "output";
  }
  return "output";
}

size_t FdCount(const Message& message) {
  switch (message.type) {
    case MessageType::kRegister:
    case MessageType::kPark:
      return message.routes.size();
    case MessageType::kReopen:
      return message.has_reply ? 1 : 0;
    case MessageType::kUnpark:
      return 0;
  }
  return 0;
}

absl::StatusOr<std::string> EncodeMessage(const Message& m) {
  absl::Status valid = CheckRoutes(m);
  if (!valid.ok()) return valid;
  std::string out;
  Put<uint32_t>(&out, kMagic);
  Put<uint8_t>(&out, kVersion);
  Put<uint8_t>(&out, static_cast<uint8_t>(m.type));
  Put<uint16_t>(&out, static_cast<uint16_t>(m.routes.size()));
  Put<uint64_t>(&out, m.park_id);
  Put<uint8_t>(&out, m.has_reply ? kFlagHasReply : 0);
  for (const PipeRoute& r : m.routes) {
    Put<uint8_t>(&out, static_cast<uint8_t>(r.stream));
    Put<uint64_t>(&out, r.max_bytes);
    Put<uint32_t>(&out, r.keep);
    Put<uint16_t>(&out, static_cast<uint16_t>(r.worker.size()));
    Put<uint16_t>(&out, static_cast<uint16_t>(r.path.size()));
    out += r.worker;
    out += r.path;
  }
  if (out.size() > kMaxMessageBytes) {
    return absl::InvalidArgumentError("log writer message too large");
  }
  return out;
}

absl::StatusOr<Message> DecodeMessage(absl::string_view bytes) {
  if (bytes.size() < kHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log writer message of ", bytes.size(), " bytes is truncated"));
  }
  Reader r(bytes);
  uint32_t magic = 0;
  uint8_t version = 0, type = 0, flags = 0;
  uint16_t count = 0;
  Message m;
  r.Get(&magic);
  r.Get(&version);
  r.Get(&type);
  r.Get(&count);
  r.Get(&m.park_id);
  r.Get(&flags);
  if (magic != kMagic) {
    return absl::InvalidArgumentError("not a log writer message (bad magic)");
  }
  if (version != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log writer message version ", version, ", expected ", kVersion));
  }
  if (!KnownType(type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log writer message type ", type));
  }
  if (count > kMaxRoutesPerMessage) {
    return absl::InvalidArgumentError(
        absl::StrCat("log writer message with ", count, " pipes"));
  }
  m.type = static_cast<MessageType>(type);
  m.has_reply = (flags & kFlagHasReply) != 0;
  for (uint16_t i = 0; i < count; ++i) {
    PipeRoute route;
    uint8_t stream = 0;
    uint16_t worker_length = 0, path_length = 0;
    if (!r.Get(&stream) || !r.Get(&route.max_bytes) || !r.Get(&route.keep) ||
        !r.Get(&worker_length) || !r.Get(&path_length) ||
        !r.GetString(worker_length, &route.worker) ||
        !r.GetString(path_length, &route.path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("log writer message truncated in pipe ", i));
    }
    route.stream = static_cast<Stream>(stream);
    m.routes.push_back(std::move(route));
  }
  if (r.left() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log writer message has ", r.left(), " trailing bytes"));
  }
  if ((flags & ~kFlagHasReply) != 0) {
    return absl::InvalidArgumentError("unknown log writer message flags");
  }
  if (m.type != MessageType::kReopen && m.has_reply) {
    return absl::InvalidArgumentError("only a reopen request has a reply");
  }
  absl::Status valid = CheckRoutes(m);
  if (!valid.ok()) return valid;
  return m;
}

}  // namespace logwriter
}  // namespace ddv
