// The watchdog link and what travels on it: real socketpairs, real fds.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "src/watchdog/link.h"
#include "src/watchdog/listener_set.h"
#include "src/watchdog/upgrade_state.h"
#include "src/watchdog/worker_record.h"

namespace ddv::watchdog {
namespace {

UniqueFd OpenNull() { return UniqueFd(open("/dev/null", O_RDONLY | O_CLOEXEC)); }

// Two fds name the same open file.
bool SameFile(int a, int b) {
  struct stat sa, sb;
  return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
         sa.st_dev == sb.st_dev;
}

WorkerRecord SampleRecord() {
  WorkerRecord record;
  record.site = "a";
  record.index = 1;
  record.pid = 4242;
  record.node = true;
  record.spec_fingerprint = "0123456789abcdef";
  record.ticket_secret = "secret";
  record.ready = true;
  record.node_server_key = "0.0.0.0:8080:4";
  record.node_speaks_ddv = true;
  record.pidfd = OpenNull();
  int pair[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  record.channel = UniqueFd(pair[0]);
  record.child_end = UniqueFd(pair[1]);
  return record;
}

TEST(WorkerRecordTest, TravelsWithItsFdsOverTheLink) {
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> link = MakeLinkPair();
  ASSERT_TRUE(link.ok()) << link.status();
  WorkerRecord sent = SampleRecord();
  ASSERT_TRUE(SendLinkMessage(link->first.get(), EncodeWorkerRecord(sent),
                              WorkerRecordFds(sent))
                  .ok());
  absl::StatusOr<LinkMessage> message =
      ReceiveLinkMessage(link->second.get(), absl::Seconds(1));
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(message->body["op"], "worker");
  absl::StatusOr<WorkerRecord> got = DecodeWorkerRecord(*std::move(message));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->key(), "a#1");
  EXPECT_EQ(got->pid, 4242);
  EXPECT_TRUE(got->node);
  EXPECT_EQ(got->spec_fingerprint, sent.spec_fingerprint);
  EXPECT_EQ(got->ticket_secret, "secret");
  EXPECT_TRUE(got->ready);
  EXPECT_EQ(got->node_server_key, "0.0.0.0:8080:4");
  EXPECT_TRUE(got->node_speaks_ddv);
  EXPECT_TRUE(SameFile(got->pidfd.get(), sent.pidfd.get()));
  EXPECT_TRUE(SameFile(got->channel.get(), sent.channel.get()));
  EXPECT_TRUE(SameFile(got->child_end.get(), sent.child_end.get()));
  EXPECT_NE(got->channel.get(), sent.channel.get());  // a copy
}

TEST(WorkerRecordTest, CarriesTheWireVersionAndOldRecordsSpeakVersion1) {
  WorkerRecord sent = SampleRecord();
  sent.wire_version = 7;
  nlohmann::json body = EncodeWorkerRecord(sent);
  EXPECT_EQ(body["wire_version"], 7);
  LinkMessage message{body, {}};
  for (int fd : WorkerRecordFds(sent)) {
    message.fds.emplace_back(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  }
  absl::StatusOr<WorkerRecord> got = DecodeWorkerRecord(std::move(message));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->wire_version, 7);

  // A record from a build before records carried the version: its worker
  // speaks version 1, and the master will not adopt it.
  body.erase("wire_version");
  LinkMessage old{body, {}};
  for (int fd : WorkerRecordFds(sent)) {
    old.fds.emplace_back(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  }
  got = DecodeWorkerRecord(std::move(old));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->wire_version, 1);
}

TEST(WorkerRecordTest, ReadyUpdatesOnlyTheSameProcess) {
  WorkerRecord record = SampleRecord();
  record.ready = false;
  WorkerRecord update = SampleRecord();
  update.ready = true;
  update.node_server_key = "[::]:9090:6";
  EXPECT_TRUE(ApplyWorkerReady(EncodeWorkerReady(update), &record));
  EXPECT_TRUE(record.ready);
  EXPECT_EQ(record.node_server_key, "[::]:9090:6");
  update.pid = 1;  // a newer process of the slot: not this record's
  update.node_server_key = "x";
  EXPECT_FALSE(ApplyWorkerReady(EncodeWorkerReady(update), &record));
  EXPECT_EQ(record.node_server_key, "[::]:9090:6");
}

TEST(WorkerRecordTest, IncompleteRecordsAreRefused) {
  LinkMessage missing_fds;
  missing_fds.body = EncodeWorkerRecord(SampleRecord());
  EXPECT_FALSE(DecodeWorkerRecord(std::move(missing_fds)).ok());
  LinkMessage wrong_type;
  wrong_type.body = EncodeWorkerRecord(SampleRecord());
  wrong_type.body["pid"] = "4242";
  for (int i = 0; i < 3; ++i) wrong_type.fds.push_back(OpenNull());
  absl::StatusOr<WorkerRecord> decoded = DecodeWorkerRecord(std::move(wrong_type));
  EXPECT_FALSE(decoded.ok());
}

TEST(LinkTest, NotJsonOrNoOpIsInvalidAndFdsAreClosed) {
  absl::StatusOr<std::pair<UniqueFd, UniqueFd>> link = MakeLinkPair();
  ASSERT_TRUE(link.ok());
  ASSERT_EQ(send(link->first.get(), "not json", 8, 0), 8);
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReceiveLinkMessage(link->second.get(), absl::Seconds(1)).status()));
  ASSERT_TRUE(SendLinkMessage(link->first.get(), {{"no_op", 1}}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(
      ReceiveLinkMessage(link->second.get(), absl::Seconds(1)).status()));
  EXPECT_TRUE(absl::IsNotFound(
      ReceiveLinkMessage(link->second.get(), absl::ZeroDuration()).status()));
  link->first.Reset();
  EXPECT_TRUE(absl::IsUnavailable(
      ReceiveLinkMessage(link->second.get(), absl::Seconds(1)).status()));
}

TEST(UpgradeStateTest, RoundTripKeepsEveryFdOpenAcrossExec) {
  std::vector<UniqueFd> sockets;
  sockets.push_back(OpenNull());
  sockets.push_back(OpenNull());
  const int first = sockets[0].get();
  ListenerSet listeners({"http", "https"}, std::move(sockets));
  WorkerRecord record = SampleRecord();
  const int channel = record.channel.get();
  absl::StatusOr<UniqueFd> state =
      WriteWatchdogState({"/usr/sbin/ddv_master", "--config=x"}, listeners,
                         {&record});
  ASSERT_TRUE(state.ok()) << state.status();
  // What execve must keep is no longer close-on-exec.
  EXPECT_EQ(fcntl(first, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(fcntl(channel, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(fcntl(state->get(), F_GETFD) & FD_CLOEXEC, 0);

  // The new image owns them: give it its own copies, as execve would keep
  // the numbers (the originals here stay with the old image's objects).
  absl::StatusOr<WatchdogState> read = ReadWatchdogState(state->Release());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->master_argv,
            (std::vector<std::string>{"/usr/sbin/ddv_master", "--config=x"}));
  ASSERT_EQ(read->listener_names, (std::vector<std::string>{"http", "https"}));
  ASSERT_EQ(read->listeners.size(), 2u);
  EXPECT_EQ(read->listeners[0].get(), first);
  EXPECT_NE(fcntl(first, F_GETFD) & FD_CLOEXEC, 0);  // set again
  ASSERT_EQ(read->workers.size(), 1u);
  EXPECT_EQ(read->workers[0].key(), "a#1");
  EXPECT_EQ(read->workers[0].channel.get(), channel);
  // Both sides think they own the same numbers in this one process: let
  // the read side keep them.
  for (UniqueFd& fd : read->listeners) fd.Release();
  read->workers[0].pidfd.Release();
  read->workers[0].channel.Release();
  read->workers[0].child_end.Release();
}

TEST(UpgradeStateTest, KeepsWhatSystemdWasTold) {
  for (bool flag : {false, true}) {
    KeptServiceState service;
    service.socket_activated = flag;
    service.ready_sent = true;
    service.reloading = flag;
    absl::StatusOr<UniqueFd> state =
        WriteWatchdogState({"/usr/sbin/ddv_master"}, ListenerSet(), {},
                           nullptr, service);
    ASSERT_TRUE(state.ok()) << state.status();
    absl::StatusOr<WatchdogState> read = ReadWatchdogState(state->Release());
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_EQ(read->service.socket_activated, flag);
    EXPECT_TRUE(read->service.ready_sent);
    EXPECT_EQ(read->service.reloading, flag);
  }
}

TEST(UpgradeStateTest, AStateWithoutServiceToldNothing) {
  // As an image from before systemd support writes it.
  const std::string text =
      "{\"master_argv\": [\"x\"], \"listeners\": [], \"workers\": [],"
      " \"service\": {\"ready_sent\": 1}}";
  UniqueFd memfd(memfd_create("state", 0));
  ASSERT_EQ(write(memfd.get(), text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  absl::StatusOr<WatchdogState> read = ReadWatchdogState(memfd.Release());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_FALSE(read->service.ready_sent);  // not a boolean: not trusted
  EXPECT_FALSE(read->service.socket_activated);
}

TEST(UpgradeStateTest, GarbageIsRefused) {
  UniqueFd memfd(memfd_create("state", 0));
  ASSERT_EQ(write(memfd.get(), "{\"master_argv\": 1}", 18), 18);
  absl::StatusOr<WatchdogState> read = ReadWatchdogState(memfd.Release());
  EXPECT_TRUE(absl::IsInvalidArgument(read.status())) << read.status();
}

}  // namespace
}  // namespace ddv::watchdog
