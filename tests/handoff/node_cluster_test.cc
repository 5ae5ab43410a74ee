// The Node cluster codec on its own: lines as stock Node 18–22 writes them
// (captured from `node` 20.20 on this machine), and the primary's answers
// read back as JSON.
#include "src/handoff/node_cluster.h"

#include <string>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace ddv {
namespace handoff {
namespace node {
namespace {

using json = nlohmann::json;

TEST(DecodeChildLine, OnlineAndQueryServerAsNodeSendsThem) {
  auto online = DecodeChildLine(R"({"cmd":"NODE_CLUSTER","act":"online","seq":0})");
  ASSERT_TRUE(online.ok()) << online.status();
  EXPECT_EQ(online->kind, ChildMessageKind::kOnline);
  EXPECT_EQ(online->seq, 0);

  auto query = DecodeChildLine(
      R"({"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,)"
      R"("address":null,"port":8123,"addressType":4,"backlog":0,"seq":1})");
  ASSERT_TRUE(query.ok()) << query.status();
  EXPECT_EQ(query->kind, ChildMessageKind::kQueryServer);
  EXPECT_EQ(query->seq, 1);
  EXPECT_EQ(query->port, 8123);
  EXPECT_EQ(query->address_type, 4);
  EXPECT_EQ(query->address, "");
}

TEST(DecodeChildLine, ListenWithAnAddress) {
  auto query = DecodeChildLine(
      R"({"cmd":"NODE_CLUSTER","act":"queryServer","address":"::1",)"
      R"("port":0,"addressType":6,"seq":4})");
  ASSERT_TRUE(query.ok());
  EXPECT_EQ(query->address, "::1");
  EXPECT_EQ(query->address_type, 6);
  EXPECT_EQ(query->port, 0);
}

TEST(DecodeChildLine, ListenOnAnFdOrAPathIsMarkedUnservable) {
  auto fd = DecodeChildLine(
      R"({"cmd":"NODE_CLUSTER","act":"queryServer","port":null,"fd":7,"seq":1})");
  ASSERT_TRUE(fd.ok());
  EXPECT_EQ(fd->address_type, -1);
  auto path = DecodeChildLine(
      R"({"cmd":"NODE_CLUSTER","act":"queryServer","address":"/tmp/s",)"
      R"("port":-1,"addressType":-1,"seq":1})");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->address_type, -1);
}

TEST(DecodeChildLine, AcceptedAnswersOurNewconn) {
  auto yes = DecodeChildLine(R"({"cmd":"NODE_CLUSTER","ack":2,"accepted":true,"seq":3})");
  ASSERT_TRUE(yes.ok());
  EXPECT_EQ(yes->kind, ChildMessageKind::kAccepted);
  EXPECT_EQ(yes->ack, 2);
  EXPECT_TRUE(yes->accepted);
  auto no = DecodeChildLine(R"({"cmd":"NODE_CLUSTER","ack":9,"accepted":false,"seq":4})");
  ASSERT_TRUE(no.ok());
  EXPECT_FALSE(no->accepted);
}

TEST(DecodeChildLine, HandleAckCloseAndExit) {
  EXPECT_EQ(DecodeChildLine(R"({"cmd":"NODE_HANDLE_ACK"})")->kind,
            ChildMessageKind::kHandleAck);
  auto close = DecodeChildLine(R"({"cmd":"NODE_CLUSTER","act":"close","key":"*:80:4","seq":5})");
  ASSERT_TRUE(close.ok());
  EXPECT_EQ(close->kind, ChildMessageKind::kClose);
  EXPECT_EQ(close->key, "*:80:4");
  EXPECT_EQ(DecodeChildLine(R"({"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":6})")->kind,
            ChildMessageKind::kExitedAfterDisconnect);
}

TEST(DecodeChildLine, UserMessagesAreNotNodeInternal) {
  for (const char* line : {R"({"hello":"world"})", R"("text")", "42", "null",
                           R"({"cmd":"ddv.rpc","id":1})", R"({"cmd":5})"}) {
    auto m = DecodeChildLine(line);
    ASSERT_TRUE(m.ok()) << line;
    EXPECT_EQ(m->kind, ChildMessageKind::kUser) << line;
  }
  EXPECT_EQ(DecodeChildLine(R"({"cmd":"NODE_SOMETHING_NEW"})")->kind,
            ChildMessageKind::kInternal);
}

TEST(DecodeChildLine, MalformedLinesAreErrorsNotCrashes) {
  for (const char* line :
       {"", "{", "not json", R"({"cmd":"NODE_CLUSTER","act":"queryServer","port":"80"})",
        R"({"cmd":"NODE_CLUSTER","act":"queryServer","port":70000})",
        R"({"cmd":"NODE_CLUSTER","act":"online","seq":-1})",
        R"({"cmd":"NODE_CLUSTER","ack":1,"accepted":"yes"})",
        R"({"cmd":"NODE_CLUSTER","accepted":true})",
        R"({"cmd":"NODE_CLUSTER","act":7})",
        R"({"cmd":"NODE_CLUSTER","act":"close","key":[1]})"}) {
    EXPECT_FALSE(DecodeChildLine(line).ok()) << line;
  }
}

TEST(Encode, QueryServerReplyHasWhatRoundRobinNeeds) {
  std::string line = EncodeQueryServerReply(1, ServerKey(8123, 4, ""), 4,
                                            "0.0.0.0", 8123, 7);
  ASSERT_EQ(line.back(), '\n');
  json reply = json::parse(line);
  EXPECT_EQ(reply["cmd"], "NODE_CLUSTER");
  EXPECT_TRUE(reply["errno"].is_null());
  EXPECT_EQ(reply["ack"], 1);
  EXPECT_EQ(reply["key"], "*:8123:4");
  EXPECT_EQ(reply["sockname"]["port"], 8123);
  EXPECT_EQ(reply["sockname"]["family"], "IPv4");
  EXPECT_EQ(reply["seq"], 7);
  EXPECT_FALSE(reply.contains("act"));
}

TEST(Encode, NewConnectionAndDisconnect) {
  json conn = json::parse(EncodeNewConnection("*:80:4", 12));
  EXPECT_EQ(conn["cmd"], "NODE_HANDLE");
  EXPECT_EQ(conn["type"], "net.Native");
  EXPECT_EQ(conn["msg"]["act"], "newconn");
  EXPECT_EQ(conn["msg"]["key"], "*:80:4");
  EXPECT_EQ(conn["msg"]["seq"], 12);
  json bye = json::parse(EncodeDisconnect(13));
  EXPECT_EQ(bye["act"], "disconnect");
  json error = json::parse(EncodeQueryServerError(3, "EADDRNOTAVAIL", 14));
  EXPECT_EQ(error["errno"], "EADDRNOTAVAIL");
  EXPECT_EQ(error["ack"], 3);
}

TEST(DecodeChildLine, TheHotLinesDecodeAsTheFullParseWould) {
  // Node's JSON.stringify output takes the fast path; the same messages
  // written another way take the full parse: both must agree.
  const char* lines[][2] = {
      {R"({"cmd":"NODE_CLUSTER","ack":12,"accepted":true,"seq":40})",
       R"({"seq":40,"accepted":true,"cmd":"NODE_CLUSTER","ack":12})"},
      {R"({"cmd":"NODE_CLUSTER","ack":0,"accepted":false,"seq":0})",
       R"({"cmd":"NODE_CLUSTER", "ack":0, "accepted":false, "seq":0})"},
  };
  for (const auto& pair : lines) {
    auto hot = DecodeChildLine(pair[0]);
    auto full = DecodeChildLine(pair[1]);
    ASSERT_TRUE(hot.ok() && full.ok()) << pair[0];
    EXPECT_EQ(hot->kind, ChildMessageKind::kAccepted);
    EXPECT_EQ(hot->kind, full->kind);
    EXPECT_EQ(hot->ack, full->ack);
    EXPECT_EQ(hot->accepted, full->accepted);
    EXPECT_EQ(hot->seq, full->seq);
  }
  // Near misses fall back to the full parse and its verdict.
  EXPECT_FALSE(DecodeChildLine(R"({"cmd":"NODE_CLUSTER","ack":-1,"accepted":true,"seq":1})").ok());
  EXPECT_FALSE(DecodeChildLine(R"({"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":1)").ok());
  EXPECT_EQ(DecodeChildLine(R"({"cmd":"NODE_CLUSTER","ack":1,"accepted":true,"seq":1,"x":2})")->ack, 1);
}

TEST(Encode, TheNewConnectionPrefixBuildsTheSameLine) {
  for (const char* key : {"*:80:4", "::1:443:6", "we\"ird\n:1:4"}) {
    std::string line;
    AppendNewConnection(NewConnectionPrefix(key), 77, &line);
    EXPECT_EQ(line, EncodeNewConnection(key, 77));
    json parsed = json::parse(line);
    EXPECT_EQ(parsed["msg"]["key"], key);
    EXPECT_EQ(parsed["msg"]["seq"], 77);
  }
}

// A connection behind an L4 tier carries the PROXY facts inside `msg`, where
// Node's cluster code ignores them and the ddv-worker package reads them.
TEST(Encode, NewConnectionCarriesTheDdvMember) {
  std::string line;
  AppendNewConnection(NewConnectionPrefix("*:80:4"), 5, &line,
                      R"({"proxy":{"alpn":"h2"}})");
  ASSERT_EQ(line.back(), '\n');
  json parsed = json::parse(line);
  EXPECT_EQ(parsed["msg"]["act"], "newconn");
  EXPECT_EQ(parsed["msg"]["seq"], 5);
  EXPECT_EQ(parsed["msg"]["ddv"]["proxy"]["alpn"], "h2");
}

// The routed host goes first, the PROXY facts after it; either alone, or
// nothing at all.
TEST(Encode, NewConnectionDdvMember) {
  EXPECT_EQ(NewConnectionDdv("", ""), "");
  EXPECT_EQ(NewConnectionDdv("", R"({"proxy":{"alpn":"h2"}})"),
            R"({"proxy":{"alpn":"h2"}})");
  EXPECT_EQ(NewConnectionDdv("a.test", ""), R"({"host":"a.test"})");
  EXPECT_EQ(NewConnectionDdv("a.test", "{}"), R"({"host":"a.test"})");
  const std::string both =
      NewConnectionDdv("[::1]", R"({"proxy":{"alpn":"h2"}})");
  EXPECT_EQ(both, R"({"host":"[::1]","proxy":{"alpn":"h2"}})");
  std::string line;
  AppendNewConnection(NewConnectionPrefix("*:80:4"), 6, &line, both);
  json parsed = json::parse(line);
  EXPECT_EQ(parsed["msg"]["ddv"]["host"], "[::1]");
  EXPECT_EQ(parsed["msg"]["ddv"]["proxy"]["alpn"], "h2");
}

TEST(LineReader, SplitsAcrossReadsAndKeepsOrder) {
  LineReader reader;
  ASSERT_TRUE(reader.Append("{\"a\":1}\n{\"b\"").ok());
  auto first = reader.Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, "{\"a\":1}");
  EXPECT_FALSE(reader.Next().has_value());
  ASSERT_TRUE(reader.Append(":2}\n\n{\"c\":3}\n").ok());
  EXPECT_EQ(*reader.Next(), "{\"b\":2}");
  EXPECT_EQ(*reader.Next(), "");
  EXPECT_EQ(*reader.Next(), "{\"c\":3}");
  EXPECT_FALSE(reader.Next().has_value());
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(LineReader, OneByteAtATime) {
  const std::string stream = "{\"x\":1}\n{\"y\":2}\n";
  LineReader reader;
  std::vector<std::string> lines;
  for (char c : stream) {
    ASSERT_TRUE(reader.Append(std::string(1, c)).ok());
    while (auto line = reader.Next()) lines.emplace_back(*line);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"{\"x\":1}", "{\"y\":2}"}));
}

TEST(LineReader, AnEndlessLineIsRefusedAndStaysRefused) {
  LineReader reader;
  std::string chunk(16 * 1024, 'x');
  absl::Status status;
  for (int i = 0; i < 8 && status.ok(); ++i) status = reader.Append(chunk);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(reader.Append("\n").ok());
}

TEST(LineReader, LongButBoundedLinesPass) {
  LineReader reader;
  std::string line(kMaxLineBytes - 1, 'y');
  ASSERT_TRUE(reader.Append(line + "\n").ok());
  EXPECT_EQ(reader.Next()->size(), line.size());
}

}  // namespace
}  // namespace node
}  // namespace handoff
}  // namespace ddv
