// Access log lines (both formats, escaping) and the files: mode, append,
// writes as the ring would do them, reopen after a rename, drops.
#include "src/master/access_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using ::testing::HasSubstr;

sockaddr_storage Address4(const char* ip, int port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in*>(&s);
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  inet_pton(AF_INET, ip, &a->sin_addr);
  return s;
}

sockaddr_storage Address6(const char* ip, int port) {
  sockaddr_storage s{};
  auto* a = reinterpret_cast<sockaddr_in6*>(&s);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  inet_pton(AF_INET6, ip, &a->sin6_addr);
  return s;
}

// 2025-06-01T12:00:00.000123Z
constexpr int64_t kTime = 1748779200LL * 1000000000 + 123456;
// A monotonic "now" a batch interval past the last one: every write is due.
int64_t Later() {
  static int64_t now = 0;
  now += AccessLogs::kBatchNs;
  return now;
}

TEST(AccessLogLineTest, JsonHasEveryKeyNullWhenAbsent) {
  const sockaddr_storage peer = Address4("127.0.0.1", 40000);
  AccessLogEntry e;
  e.unix_ns = kTime;
  e.listener = "http";
  e.peer = &peer;
  e.host = "a.example.com";
  e.site = "a";
  e.worker_pid = 4242;
  e.outcome = "routed";
  e.micros = 57;
  std::string line;
  FormatAccessLogLine(config::AccessLogFormat::kJson, e, &line);
  EXPECT_EQ(line,
            "{\"time\":\"2025-06-01T12:00:00.000123Z\",\"listener\":\"http\","
            "\"peer\":\"127.0.0.1:40000\",\"proxy_peer\":null,"
            "\"host\":\"a.example.com\",\"alpn\":null,\"site\":\"a\","
            "\"worker_pid\":4242,\"outcome\":\"routed\",\"us\":57}\n");
}

TEST(AccessLogLineTest, LogfmtLeavesAbsentKeysOutAndQuotesWhenNeeded) {
  const sockaddr_storage peer = Address6("::1", 443);
  const sockaddr_storage proxy = Address4("203.0.113.7", 5555);
  AccessLogEntry e;
  e.unix_ns = kTime;
  e.listener = "my listener";
  e.peer = &peer;
  e.proxy_peer = &proxy;
  e.alpn = "h2,http/1.1";
  e.outcome = "no_site";
  e.micros = 1200;
  std::string line;
  FormatAccessLogLine(config::AccessLogFormat::kLogfmt, e, &line);
  EXPECT_EQ(line,
            "time=2025-06-01T12:00:00.000123Z listener=\"my listener\" "
            "peer=[::1]:443 proxy_peer=203.0.113.7:5555 alpn=h2,http/1.1 "
            "outcome=no_site us=1200\n");
}

TEST(AccessLogLineTest, EscapesQuotesControlsAndBadUtf8) {
  AccessLogEntry e;
  e.unix_ns = kTime;
  e.listener = "caf\xc3\xa9";            // valid UTF-8 stays
  const std::string alpn("a\"b\\\n\x01\xff", 7);  // an ALPN name is any bytes
  e.alpn = alpn;
  e.outcome = "timeout";
  std::string json, logfmt;
  FormatAccessLogLine(config::AccessLogFormat::kJson, e, &json);
  FormatAccessLogLine(config::AccessLogFormat::kLogfmt, e, &logfmt);
  EXPECT_THAT(json, HasSubstr("\"listener\":\"caf\xc3\xa9\""));
  EXPECT_THAT(json, HasSubstr("\"alpn\":\"a\\\"b\\\\\\n\\u0001\xef\xbf\xbd\""));
  EXPECT_THAT(logfmt, HasSubstr(" alpn=\"a\\\"b\\\\\\n\\u0001\xef\xbf\xbd\" "));
  EXPECT_THAT(logfmt, HasSubstr(" listener=\"caf\xc3\xa9\" "));
}

std::string TempDir() {
  char dir[] = "/tmp/ddv-access-log-XXXXXX";
  return mkdtemp(dir);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What the master's ring does with NextWrite/OnWritten, done here with
// write(2).
void WriteAll(AccessLogs& logs) {
  for (int f = 0; f < logs.file_count(); ++f) {
    AccessLogs::Write w;
    while (logs.NextWrite(f, Later(), &w)) {
      logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
    }
  }
}

config::ListenerConfig Listener(const std::string& name, double sample = 1.0) {
  config::ListenerConfig l;
  l.name = name;
  l.access_log_sample = sample;
  return l;
}

AccessLogEntry Entry(int64_t n) {
  AccessLogEntry e;
  e.unix_ns = kTime;
  e.listener = "http";
  e.outcome = "routed";
  e.micros = n;
  return e;
}

TEST(AccessLogsTest, CreatesWith0640AndAppends) {
  const std::string dir = TempDir();
  const std::string path = dir + "/access.log";
  { std::ofstream(path) << "kept\n"; }
  chmod(path.c_str(), 0600);
  const std::string fresh = dir + "/fresh.log";
  AccessLogs logs;
  absl::StatusOr<int> a = logs.Open(path);
  absl::StatusOr<int> b = logs.Open(fresh);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*logs.Open(path), *a) << "one file per path";
  struct stat st{};
  ASSERT_EQ(stat(fresh.c_str(), &st), 0);
  const mode_t umask_now = umask(0);
  umask(umask_now);
  EXPECT_EQ(st.st_mode & 0777, 0640u & ~umask_now);
  logs.Bind(0, Listener("http"), *a);
  logs.Bind(1, Listener("tls"), *b);
  ASSERT_TRUE(logs.Wants(0));
  logs.Append(0, Entry(1));
  logs.Append(1, Entry(2));
  WriteAll(logs);
  EXPECT_THAT(Slurp(path), HasSubstr("kept\n{\"time\""));
  EXPECT_THAT(Slurp(fresh), HasSubstr("\"us\":2}\n"));
  EXPECT_EQ(logs.lines(), 2u);
}

TEST(AccessLogsTest, OpenFailureNamesCallAndPath) {
  AccessLogs logs;
  absl::StatusOr<int> f = logs.Open("/nonexistent-ddv-dir/access.log");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(),
              HasSubstr("open() failed while opening access log "
                        "\"/nonexistent-ddv-dir/access.log\""));
}

TEST(AccessLogsTest, ReopenAfterRenameKeepsEveryLineOnce) {
  const std::string dir = TempDir();
  const std::string path = dir + "/access.log";
  AccessLogs logs;
  const int f = *logs.Open(path);
  logs.Bind(0, Listener("http"), f);
  int n = 0;
  for (; n < 10; ++n) logs.Append(0, Entry(n));
  // A write in flight when the file is moved and a reopen is asked.
  AccessLogs::Write w;
  ASSERT_TRUE(logs.NextWrite(f, Later(), &w));
  for (; n < 20; ++n) logs.Append(0, Entry(n));
  ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);
  int reopened = 0;
  ASSERT_TRUE(logs.Reopen(&reopened).ok());
  EXPECT_EQ(reopened, 1);
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
  for (; n < 30; ++n) logs.Append(0, Entry(n));
  WriteAll(logs);
  const std::string old_file = Slurp(path + ".1");
  const std::string new_file = Slurp(path);
  for (int i = 0; i < 30; ++i) {
    const std::string us = "\"us\":" + std::to_string(i) + "}\n";
    const bool in_old = old_file.find(us) != std::string::npos;
    const bool in_new = new_file.find(us) != std::string::npos;
    EXPECT_NE(in_old, in_new) << "line " << i;
    EXPECT_EQ(in_old, i < 10) << "line " << i;  // the write in flight
  }
}

TEST(AccessLogsTest, WritesInBatchesOfBytesOrTime) {
  const std::string dir = TempDir();
  AccessLogs logs;
  const int f = *logs.Open(dir + "/a.log");
  logs.Bind(0, Listener("http"), f);
  logs.Append(0, Entry(1));
  AccessLogs::Write w;
  const int64_t t0 = Later();
  ASSERT_TRUE(logs.NextWrite(f, t0, &w)) << "the first write is due";
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
  logs.Append(0, Entry(2));
  EXPECT_FALSE(logs.NextWrite(f, t0 + 1000, &w)) << "too soon, too small";
  ASSERT_TRUE(logs.NextWrite(f, t0 + AccessLogs::kBatchNs, &w)) << "due";
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
  const int64_t t1 = t0 + AccessLogs::kBatchNs;
  int lines = 0;
  while (!logs.NextWrite(f, t1 + 1000, &w)) {
    logs.Append(0, Entry(3));
    ++lines;
  }
  // About 64 KiB of ~170-byte lines made a batch.
  EXPECT_GE(w.size, AccessLogs::kBatchBytes);
  EXPECT_GT(lines, 300);
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
}

TEST(AccessLogsTest, ShortWritesGoOnAndFullBuffersDrop) {
  const std::string dir = TempDir();
  AccessLogs logs;
  const int f = *logs.Open(dir + "/a.log");
  logs.Bind(0, Listener("http"), f);
  logs.Append(0, Entry(1));
  AccessLogs::Write w;
  ASSERT_TRUE(logs.NextWrite(f, Later(), &w));
  const size_t size = w.size;
  EXPECT_FALSE(logs.NextWrite(f, Later(), &w)) << "one write in flight";
  EXPECT_TRUE(logs.Busy());
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, 10)));
  ASSERT_TRUE(logs.NextWrite(f, Later(), &w));
  EXPECT_EQ(w.size, size - 10);
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
  EXPECT_FALSE(logs.Busy());
  // A failed write drops what it carried, counted.
  logs.Append(0, Entry(2));
  ASSERT_TRUE(logs.NextWrite(f, Later(), &w));
  logs.OnWritten(f, -ENOSPC);
  EXPECT_EQ(logs.write_errors(), 1u);
  // Nothing written for a while: lines beyond the cap are dropped.
  while (logs.dropped() == 0) logs.Append(0, Entry(3));
  // Lines are some 170 bytes: about 4 MiB of them were kept.
  EXPECT_GT(logs.lines() * 200, AccessLogs::kMaxPendingBytes);
  EXPECT_LT(logs.lines() * 150, AccessLogs::kMaxPendingBytes);
  WriteAll(logs);
  EXPECT_THAT(Slurp(dir + "/a.log"), HasSubstr("\"us\":1}\n"));
}

TEST(AccessLogsTest, SamplesAboutTheShareAsked) {
  AccessLogs logs;
  const std::string dir = TempDir();
  const int f = *logs.Open(dir + "/a.log");
  logs.Bind(0, Listener("http", 0.25), f);
  logs.Bind(1, Listener("never", 0.0), f);
  logs.Bind(2, Listener("unbound"), -1);
  int yes = 0;
  for (int i = 0; i < 10000; ++i) yes += logs.Wants(0) ? 1 : 0;
  EXPECT_NEAR(yes, 2500, 250);  // about 5.8 standard deviations
  EXPECT_FALSE(logs.Wants(1));
  EXPECT_FALSE(logs.Wants(2));
  EXPECT_FALSE(logs.Wants(7));
}

TEST(AccessLogsTest, UnboundFilesCloseAfterTheirLastLines) {
  const std::string dir = TempDir();
  AccessLogs logs;
  const int f = *logs.Open(dir + "/a.log");
  logs.Bind(0, Listener("http"), f);
  logs.Append(0, Entry(1));
  logs.Bind(0, Listener("http"), -1);
  logs.CloseUnbound();
  AccessLogs::Write w;
  ASSERT_TRUE(logs.NextWrite(f, Later(), &w)) << "its last lines still go out";
  logs.OnWritten(f, static_cast<int>(write(w.fd, w.data, w.size)));
  EXPECT_FALSE(logs.NextWrite(f, Later(), &w));
  EXPECT_THAT(Slurp(dir + "/a.log"), HasSubstr("\"us\":1}\n"));
  // Opened again by path: a fresh file object.
  EXPECT_TRUE(logs.Open(dir + "/a.log").ok());
}

}  // namespace
}  // namespace master
}  // namespace ddv
