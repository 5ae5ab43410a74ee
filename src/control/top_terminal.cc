// TopTerminal (see top_terminal.h).
#include "src/control/top_terminal.h"

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "src/base/errno_status.h"

namespace ddv {
namespace control {
namespace {

// xterm's (and every emulator's since): the alternate screen keeps the
// shell's screen to come back to; ?25 hides and shows the cursor.
constexpr char kEnterScreen[] = "\x1b[?1049h\x1b[?25l";
constexpr char kLeaveScreen[] = "\x1b[?25h\x1b[?1049l";
constexpr char kHome[] = "\x1b[H";
constexpr char kClearToEol[] = "\x1b[K";
constexpr char kClearBelow[] = "\x1b[J";

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP};

}  // namespace

absl::StatusOr<std::unique_ptr<TopTerminal>> TopTerminal::Open() {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
    return absl::FailedPreconditionError(
        "top needs a terminal on standard input and output; --once prints "
        "one frame to standard output instead");
  }
  std::unique_ptr<TopTerminal> terminal(new TopTerminal());
  if (tcgetattr(STDIN_FILENO, &terminal->saved_) != 0) {
    return ErrnoStatus(errno, "tcgetattr", "reading the terminal's mode");
  }
  // Signals arrive on the signalfd, never through a handler: the loop
  // restores the terminal itself, outside any signal context.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : kSignals) sigaddset(&mask, sig);
  if (sigprocmask(SIG_BLOCK, &mask, &terminal->old_mask_) != 0) {
    return ErrnoStatus(errno, "sigprocmask", "blocking top's signals");
  }
  terminal->signal_fd_.Reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!terminal->signal_fd_) {
    absl::Status status = ErrnoStatus(errno, "signalfd", "taking signals");
    sigprocmask(SIG_SETMASK, &terminal->old_mask_, nullptr);
    return status;
  }
  terminal->ReadSize();
  terminal->Enter();
  return terminal;
}

TopTerminal::~TopTerminal() {
  Leave();
  signal_fd_.Reset();
  sigprocmask(SIG_SETMASK, &old_mask_, nullptr);
}

void TopTerminal::Enter() {
  termios raw = saved_;
  // No line buffering and no echo; ISIG stays, so Ctrl-C and Ctrl-Z still
  // send their signals (to our signalfd).
  raw.c_lflag &= ~(ICANON | ECHO);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
  Write(kEnterScreen);
  entered_ = true;
}

void TopTerminal::Leave() {
  if (!entered_) return;
  Write(kLeaveScreen);
  tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  entered_ = false;
}

void TopTerminal::ReadSize() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 &&
      size.ws_row > 0) {
    width_ = size.ws_col;
    height_ = size.ws_row;
  }
}

void TopTerminal::Suspend() {
  Leave();
  // SIGSTOP cannot be blocked; the shell's `fg` sends SIGCONT.
  kill(getpid(), SIGSTOP);
  ReadSize();
  Enter();
}

void TopTerminal::Write(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(STDOUT_FILENO, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal is gone (EIO): nothing to draw on
    done += n;
  }
}

void TopTerminal::Draw(const std::vector<std::string>& lines) {
  std::string frame = kHome;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::StrAppend(&frame, lines[i], kClearToEol);
    // No newline after the last row: on the bottom line it would scroll.
    if (i + 1 < lines.size()) frame += "\r\n";
  }
  frame += kClearBelow;
  Write(frame);
}

TopTerminal::Event TopTerminal::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return Event::kTimeout;
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0},
                     {signal_fd_.get(), POLLIN, 0}};
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    const int n = poll(fds, 2, ms);
    if (n < 0 && errno != EINTR) return Event::kQuit;
    if (n <= 0) continue;
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (read(signal_fd_.get(), &info, sizeof(info)) ==
             static_cast<ssize_t>(sizeof(info))) {
        switch (info.ssi_signo) {
          case SIGWINCH:
            ReadSize();
            return Event::kResized;
          case SIGTSTP:
            Suspend();
            return Event::kResized;  // draw the whole frame again
          case SIGINT:
            return Event::kQuit;
          default:
            signal_ = static_cast<int>(info.ssi_signo);
            return Event::kSignal;
        }
      }
    }
    if (fds[0].revents & (POLLHUP | POLLERR)) {
      signal_ = SIGHUP;  // the terminal went away
      return Event::kSignal;
    }
    if (fds[0].revents & POLLIN) {
      char keys[64];
      const ssize_t got = read(STDIN_FILENO, keys, sizeof(keys));
      if (got == 0) {
        signal_ = SIGHUP;
        return Event::kSignal;
      }
      for (ssize_t i = 0; i < got; ++i) {
        if (keys[i] == 'q' || keys[i] == 'Q') return Event::kQuit;
        if (keys[i] == ' ') return Event::kRefresh;
      }
    }
  }
}

}  // namespace control
}  // namespace ddv
