// RunTop and RunTopOnce (see top.h): sample, compute, render, wait.
#include "src/control/top.h"

#include <cstdio>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "src/control/control_client.h"
#include "src/control/top_model.h"
#include "src/control/top_render.h"
#include "src/control/top_terminal.h"

namespace ddv {
namespace control {
namespace {

absl::StatusOr<StatusSample> TakeSample(const TopOptions& options) {
  absl::StatusOr<std::string> reply =
      SendControlCommand(options.control_socket, "status", options.timeout);
  const absl::Time taken = absl::Now();
  if (!reply.ok()) return reply.status();
  return ParseStatusSample(*reply, taken);
}

int PrintFailure(const absl::Status& status) {
  std::fprintf(stderr, "ddvctl: %s\n", std::string(status.message()).c_str());
  return ExitCodeFor(status);
}

}  // namespace

int RunTopOnce(const TopOptions& options) {
  absl::StatusOr<StatusSample> before = TakeSample(options);
  if (!before.ok()) return PrintFailure(before.status());
  absl::SleepFor(options.interval);
  absl::StatusOr<StatusSample> now = TakeSample(options);
  if (!now.ok()) return PrintFailure(now.status());
  FrameOptions frame;
  frame.refresh = options.interval;
  const TopView view = ComputeTopView(&*before, *now);
  for (const std::string& line : RenderTopFrame(view, frame)) {
    std::printf("%s\n", line.c_str());
  }
  return kExitOk;
}

int RunTop(const TopOptions& options) {
  absl::StatusOr<std::unique_ptr<TopTerminal>> opened = TopTerminal::Open();
  if (!opened.ok()) return PrintFailure(opened.status());
  std::unique_ptr<TopTerminal> terminal = *std::move(opened);
  std::optional<StatusSample> last;
  TopView view;
  std::string problem;
  bool sample_now = true;
  absl::Time next_sample = absl::Now();
  while (true) {
    if (sample_now) {
      absl::StatusOr<StatusSample> sample = TakeSample(options);
      if (sample.ok()) {
        view = ComputeTopView(last ? &*last : nullptr, *sample);
        last = *std::move(sample);
        problem.clear();
      } else {
        // Keep the last numbers' shape, say why there are no new ones, and
        // compute no rate across the gap.
        problem = std::string(sample.status().message());
        last.reset();
      }
      next_sample = absl::Now() + options.interval;
      sample_now = false;
    }
    FrameOptions frame;
    frame.width = terminal->width();
    frame.height = terminal->height();
    frame.refresh = options.interval;
    frame.live = true;
    frame.problem = problem;
    terminal->Draw(RenderTopFrame(view, frame));
    switch (terminal->Wait(next_sample - absl::Now())) {
      case TopTerminal::Event::kTimeout:
      case TopTerminal::Event::kRefresh:
        sample_now = true;
        break;
      case TopTerminal::Event::kResized:
        break;  // draw again at the new size, same numbers
      case TopTerminal::Event::kQuit:
        return kExitOk;
      case TopTerminal::Event::kSignal:
        return 128 + terminal->signal();
    }
  }
}

}  // namespace control
}  // namespace ddv
