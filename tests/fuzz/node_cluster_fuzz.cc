// Fuzzes what a Node worker can send the master: the byte stream is split
// by LineReader (in pieces of fuzzer-chosen sizes, as reads would cut it)
// and every line goes through DecodeChildLine. Nothing may crash or abort;
// decoded fields stay in the ranges the master relies on.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "src/handoff/node_cluster.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace node = ddv::handoff::node;

void CheckLine(absl::string_view line) {
  auto m = node::DecodeChildLine(line);
  if (!m.ok()) return;
  switch (m->kind) {
    case node::ChildMessageKind::kQueryServer:
    case node::ChildMessageKind::kListening:
      FUZZ_CHECK(m->port >= -1 && m->port <= 65535);
      FUZZ_CHECK(m->address_type >= -1 && m->address_type <= 6);
      break;
    case node::ChildMessageKind::kAccepted:
      FUZZ_CHECK(m->ack >= 0);
      break;
    default:
      break;
  }
  FUZZ_CHECK(m->seq >= -1);
  // The server data goes back to other workers as JSON: it must re-parse.
  std::string reply = node::EncodeQueryServerReply(
      m->seq, "k", 4, "0.0.0.0", 80, 1, m->data);
  FUZZ_CHECK(!reply.empty() && reply.back() == '\n');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks the read size, so lines cross read boundaries.
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64;
  absl::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  node::LineReader reader;
  for (size_t at = 0; at < stream.size(); at += chunk) {
    if (!reader.Append(stream.substr(at, chunk)).ok()) return 0;
    while (auto line = reader.Next()) CheckLine(*line);
  }
  // Whole input as one line as well.
  CheckLine(stream);
  return 0;
}
