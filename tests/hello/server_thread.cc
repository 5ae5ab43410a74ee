// ServerThread: start, hand over, stop and join an in-process HttpServer.
#include "tests/hello/server_thread.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <future>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace hello {
namespace testing {

ServerThread::ServerThread(HttpServer::Options options,
                           std::function<void(HttpServer&)> setup) {
  std::promise<void> ready;
  std::future<void> ready_future = ready.get_future();
  thread_ = std::thread([this, options, setup, &ready] {
    absl::StatusOr<std::unique_ptr<HttpServer>> server =
        HttpServer::Create(options);
    if (!server.ok()) {
      ADD_FAILURE() << server.status();
      done_.store(true);
      ready.set_value();
      return;
    }
    server_ = std::move(*server);
    absl::Status listen = server_->Listen("127.0.0.1:0");
    EXPECT_TRUE(listen.ok()) << listen;
    port_ = server_->port();
    handoff_fd_.Reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    server_->RegisterExternalFd(handoff_fd_.get(), [this] { TakeHandoffs(); });
    if (setup) setup(*server_);
    ready.set_value();
    run_status_ = server_->Run();
    done_.store(true);
  });
  ready_future.wait();
}

void ServerThread::Hand(UniqueFd fd, ConnectionInfo info) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    handoffs_.emplace_back(std::move(fd), std::move(info));
  }
  uint64_t one = 1;
  ASSERT_EQ(write(handoff_fd_.get(), &one, sizeof(one)), 8);
}

bool ServerThread::StopAndJoin(absl::Duration limit) {
  if (!thread_.joinable()) return run_status_.ok();
  if (server_) server_->Stop();
  absl::Time deadline = absl::Now() + limit;
  // std::thread has no timed join: poll a flag the thread sets last.
  while (!done_.load() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  bool in_time = done_.load();
  if (!in_time) ADD_FAILURE() << "Run() did not return after Stop()";
  thread_.join();
  return in_time && run_status_.ok();
}

void ServerThread::TakeHandoffs() {
  uint64_t count;
  while (read(handoff_fd_.get(), &count, sizeof(count)) > 0) {
  }
  std::deque<std::pair<UniqueFd, ConnectionInfo>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(handoffs_);
  }
  for (auto& [fd, info] : batch) {
    server_->AddConnection(std::move(fd), std::move(info));
  }
}

}  // namespace testing
}  // namespace hello
}  // namespace ddv
