// The log writer as a real process (forked from the test), fed through the
// master's client: whole lines from concurrent pipes, reopen by message and
// by signal with nothing lost, size rotation, a partial last line, a stop
// that drains, and a writer killed and restarted that carries on from the
// park.
#include "src/logwriter/log_writer.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/logwriter/log_writer_client.h"
#include "src/logwriter/writer_process.h"
#include "tests/supervise/test_util.h"

namespace ddv {
namespace logwriter {
namespace {

using ::ddv::supervise::testing::MakeTempDir;
using ::ddv::supervise::testing::ReadFile;

// A log writer in a child process, on `sockets`.
class WriterChild {
 public:
  WriterChild(const WriterSockets& sockets, absl::Duration stop_grace =
                                                absl::Seconds(5)) {
    pid_ = fork();
    if (pid_ == 0) {
      LogWriterOptions options;
      options.link_fd = sockets.writer_end.get();
      options.park_send_fd = sockets.park_send.get();
      options.park_recv_fd = sockets.park_recv.get();
      options.stop_grace = stop_grace;
      // Only what a writer process gets: not the masters' end of the link,
      // nor the test's pipes (holding a write end, it would never see EOF).
      for (int fd = 3; fd < 1024; ++fd) {
        if (fd != options.link_fd && fd != options.park_send_fd &&
            fd != options.park_recv_fd) {
          close(fd);
        }
      }
      _exit(RunLogWriter(options).ok() ? 0 : 1);
    }
  }
  ~WriterChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Waits (bounded) for the exit; the exit status, or -1.
  int Wait(absl::Duration timeout = absl::Seconds(10)) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return -1;
  }
  void Kill() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = 0;
  }

 private:
  pid_t pid_ = -1;
};

supervise::ProcessSpec Spec(const std::string& name, const std::string& out,
                            const std::string& err, uint64_t max_bytes = 0,
                            uint32_t keep = 0) {
  supervise::ProcessSpec spec;
  spec.name = name;
  spec.stdout_path = out;
  spec.stderr_path = err;
  spec.log_max_bytes = max_bytes;
  spec.log_keep = keep;
  return spec;
}

void WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    ASSERT_GT(n, 0) << strerror(errno);
    done += n;
  }
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Waits until `path` holds at least `lines` lines.
bool WaitForLines(const std::string& path, size_t lines,
                  absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const std::string text = Slurp(path);
    if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >=
        lines) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return false;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// "ddvctl reopen" through the link: the writer answers `reply`.
std::string Reopen(LogWriterClient& client) {
  int pair[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  EXPECT_TRUE(client.RequestReopen(theirs.get()).ok());
  theirs.Reset();
  std::string reply;
  char buffer[256];
  ssize_t n;
  while ((n = read(ours.get(), buffer, sizeof(buffer))) > 0) {
    reply.append(buffer, n);
  }
  return reply;
}

class LogWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    dir_ = MakeTempDir();
    absl::StatusOr<WriterSockets> sockets = MakeWriterSockets(true);
    ASSERT_TRUE(sockets.ok()) << sockets.status();
    sockets_ = *std::move(sockets);
    client_ = std::make_unique<LogWriterClient>(sockets_.master_end.get());
  }

  supervise::StdioPipes Register(const supervise::ProcessSpec& spec) {
    absl::StatusOr<supervise::StdioPipes> pipes = client_->Route(spec);
    EXPECT_TRUE(pipes.ok()) << pipes.status();
    return pipes.ok() ? *std::move(pipes) : supervise::StdioPipes();
  }

  std::string dir_;
  WriterSockets sockets_;
  std::unique_ptr<LogWriterClient> client_;
};

TEST_F(LogWriterTest, ConcurrentWritersLinesStayWhole) {
  WriterChild writer(sockets_);
  const std::string log = dir_ + "/a.log";
  // log_all: one pipe for both streams; and one stream each.
  supervise::StdioPipes w0 = Register(Spec("a#0", log, log));
  supervise::StdioPipes w1 = Register(Spec("a#1", log, log));
  supervise::StdioPipes w2 = Register(Spec("a#2", log, ""));
  supervise::StdioPipes w3 = Register(Spec("a#3", "", log));
  ASSERT_TRUE(w0.out && w0.err_to_out && !w0.err) << "log_all: one pipe";
  ASSERT_TRUE(w1.out && w2.out && !w2.err && !w3.out && w3.err);
  // Each line goes out in three writes, interleaved across four pipes, as
  // unbuffered writers would make them.
  const int kLines = 300;
  const std::vector<std::pair<int, std::string>> writers = {
      {w0.out.get(), "a#0 all"},
      {w1.out.get(), "a#1 all"},
      {w2.out.get(), "a#2 out"},
      {w3.err.get(), "a#3 err"}};
  for (int i = 0; i < kLines; ++i) {
    for (const auto& [fd, who] : writers) WriteAll(fd, who);
    for (const auto& [fd, who] : writers) WriteAll(fd, absl::StrCat(" ", i));
    for (const auto& [fd, who] : writers) WriteAll(fd, " end\n");
  }
  ASSERT_TRUE(WaitForLines(log, 4 * kLines)) << Slurp(log);
  std::map<std::string, int> next;
  for (const std::string& line : Lines(Slurp(log))) {
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    ASSERT_EQ(words.size(), 4u) << "a line was torn: \"" << line << "\"";
    const std::string who = words[0] + " " + words[1];
    EXPECT_EQ(words[2], absl::StrCat(next[who]++)) << who;  // in order
    EXPECT_EQ(words[3], "end");
  }
  for (const auto& [fd, who] : writers) EXPECT_EQ(next[who], kLines) << who;
  EXPECT_EQ(std::filesystem::status(log).permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms(0640));
}

TEST_F(LogWriterTest, ReopenByMessageAndBySignalLosesNothing) {
  WriterChild writer(sockets_);
  const std::string out = dir_ + "/a.out";
  const std::string err = dir_ + "/a.err";
  supervise::StdioPipes w = Register(Spec("a#0", out, err));
  int line = 0;
  auto write_lines = [&](int n) {
    for (int i = 0; i < n; ++i, ++line) {
      WriteAll(w.out.get(), absl::StrCat("out ", line, "\n"));
      WriteAll(w.err.get(), absl::StrCat("err ", line, "\n"));
    }
  };
  std::vector<std::string> rotated;
  for (int round = 0; round < 3; ++round) {
    write_lines(50);
    ASSERT_TRUE(WaitForLines(out, 50));
    ASSERT_TRUE(WaitForLines(err, 50));
    // logrotate: move the files away, then ask for the reopen.
    for (const std::string& path : {out, err}) {
      const std::string moved = absl::StrCat(path, ".r", round);
      ASSERT_EQ(rename(path.c_str(), moved.c_str()), 0);
      rotated.push_back(moved);
    }
    write_lines(20);  // written while the old files are gone: theirs
    if (round == 1) {
      kill(writer.pid(), SIGUSR1);
      const absl::Time deadline = absl::Now() + absl::Seconds(10);
      while (!std::filesystem::exists(err) && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(2));
      }
      ASSERT_TRUE(std::filesystem::exists(err)) << "reopened on SIGUSR1";
    } else {
      EXPECT_EQ(Reopen(*client_), "ok: reopened 2 log files\n");
    }
  }
  write_lines(50);
  w.out.Reset();
  w.err.Reset();
  ASSERT_TRUE(WaitForLines(out, 50));
  ASSERT_TRUE(WaitForLines(err, 50));
  // Every line exactly once across the old and new files, in order.
  for (const std::string& stream : {std::string("out"), std::string("err")}) {
    const std::string path = stream == "out" ? out : err;
    std::vector<std::string> all;
    for (const std::string& moved : rotated) {
      if (moved.rfind(path, 0) != 0) continue;
      for (const std::string& l : Lines(Slurp(moved))) all.push_back(l);
    }
    for (const std::string& l : Lines(Slurp(path))) all.push_back(l);
    ASSERT_EQ(all.size(), static_cast<size_t>(line)) << stream;
    for (int i = 0; i < line; ++i) {
      EXPECT_EQ(all[i], absl::StrCat(stream, " ", i));
    }
  }
}

TEST_F(LogWriterTest, APartialLastLineIsEndedAtEof) {
  WriterChild writer(sockets_);
  const std::string log = dir_ + "/a.log";
  supervise::StdioPipes w = Register(Spec("a#0", log, ""));
  ASSERT_TRUE(w.out);
  EXPECT_FALSE(w.err) << "no stderr path: it stays the master's";
  WriteAll(w.out.get(), "whole\nno newline at the end");
  w.out.Reset();
  ASSERT_TRUE(WaitForLines(log, 2));
  EXPECT_EQ(Slurp(log), "whole\nno newline at the end\n");
}

TEST_F(LogWriterTest, RotatesBySizeKeepingWholeLines) {
  WriterChild writer(sockets_);
  const std::string log = dir_ + "/a.log";
  const uint64_t kMax = 1000;
  supervise::StdioPipes w = Register(Spec("a#0", log, "", kMax, 2));
  // 20-byte lines: 50 per file; 400 lines make 8 files, 3 kept.
  const int kLines = 400;
  for (int i = 0; i < kLines; ++i) {
    char line[32];
    std::snprintf(line, sizeof(line), "line %014d\n", i);
    WriteAll(w.out.get(), line);
  }
  w.out.Reset();
  std::vector<std::string> kept;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    const std::vector<std::string> last = Lines(Slurp(log));
    if (!last.empty() && last.back() == "line 00000000000399") break;
    absl::SleepFor(absl::Milliseconds(5));
  }
  for (const std::string& path : {log + ".2", log + ".1", log}) {
    const std::string text = Slurp(path);
    EXPECT_LE(text.size(), kMax) << path;
    EXPECT_EQ(text.back(), '\n') << path;
    for (const std::string& l : Lines(text)) kept.push_back(l);
  }
  EXPECT_FALSE(std::filesystem::exists(log + ".3"));
  // Three full files of 50 lines: each filled to the limit, not past it.
  ASSERT_EQ(kept.size(), 150u);
  // The newest lines, contiguous, end at the last one written.
  EXPECT_EQ(kept.back(), "line 00000000000399");
  for (size_t i = 1; i < kept.size(); ++i) {
    EXPECT_EQ(std::stoi(kept[i].substr(5)), std::stoi(kept[i - 1].substr(5)) + 1);
  }
}

TEST_F(LogWriterTest, StopReadsOpenPipesThenExits) {
  WriterChild writer(sockets_, absl::Milliseconds(300));
  const std::string log = dir_ + "/a.log";
  supervise::StdioPipes w = Register(Spec("a#0", log, ""));
  WriteAll(w.out.get(), "before\npartial");
  ASSERT_TRUE(WaitForLines(log, 1));
  kill(writer.pid(), SIGTERM);
  // The pipe stays open: the writer gives up after its stop grace, and
  // still writes the partial line it had.
  EXPECT_EQ(writer.Wait(), 0);
  EXPECT_EQ(Slurp(log), "before\npartial\n");
}

TEST_F(LogWriterTest, TheEndOfTheLinkStopsTheWriter) {
  WriterChild writer(sockets_);
  const std::string log = dir_ + "/a.log";
  supervise::StdioPipes w = Register(Spec("a#0", log, ""));
  WriteAll(w.out.get(), "one\n");
  ASSERT_TRUE(WaitForLines(log, 1));
  client_.reset();
  sockets_.master_end.Reset();
  w.out.Reset();  // the worker exits too
  EXPECT_EQ(writer.Wait(), 0);
  EXPECT_EQ(Slurp(log), "one\n");
}

TEST_F(LogWriterTest, ARestartedWriterCarriesOnFromThePark) {
  const std::string log = dir_ + "/a.log";
  auto first = std::make_unique<WriterChild>(sockets_);
  supervise::StdioPipes w = Register(Spec("a#0", log, ""));
  WriteAll(w.out.get(), "1\n2\n");
  ASSERT_TRUE(WaitForLines(log, 2));
  first->Kill();
  // Nobody reads now; the park keeps the pipe open, so the worker's writes
  // wait in it instead of failing with EPIPE.
  WriteAll(w.out.get(), "3\n4\n");
  // A registration sent while no writer runs waits in the link.
  supervise::StdioPipes late = Register(Spec("a#1", log, ""));
  WriteAll(late.out.get(), "late\n");
  WriterChild second(sockets_);
  WriteAll(w.out.get(), "5\n");
  w.out.Reset();
  late.out.Reset();
  ASSERT_TRUE(WaitForLines(log, 6)) << Slurp(log);
  std::vector<std::string> lines = Lines(Slurp(log));
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines, ::testing::ElementsAre("1", "2", "3", "4", "5", "late"));
  kill(second.pid(), SIGTERM);
  EXPECT_EQ(second.Wait(), 0);
}

TEST_F(LogWriterTest, ALogTheMasterCannotOpenFailsTheStart) {
  absl::StatusOr<supervise::StdioPipes> pipes =
      client_->Route(Spec("a#0", dir_ + "/missing/dir/a.log", ""));
  ASSERT_FALSE(pipes.ok());
  EXPECT_THAT(std::string(pipes.status().message()),
              ::testing::HasSubstr("for worker a#0"));
}

TEST_F(LogWriterTest, NoReaderMeansNoPipes) {
  // No writer was ever started and its end is closed: the worker keeps its
  // files, opened by Spawn as before.
  sockets_.writer_end.Reset();
  absl::StatusOr<supervise::StdioPipes> pipes =
      client_->Route(Spec("a#0", dir_ + "/a.log", ""));
  ASSERT_TRUE(pipes.ok());
  EXPECT_FALSE(pipes->out);
  EXPECT_FALSE(pipes->err);
}

}  // namespace
}  // namespace logwriter
}  // namespace ddv
