// The terminal ddvctl top draws on, held in RAII: raw keys (no echo, no
// line buffering; Ctrl-C still signals), the alternate screen, no cursor.
// Everything is put back by the destructor, on a stop (SIGTSTP) until the
// process continues, and so on every way out but SIGKILL: SIGINT, SIGTERM
// and SIGHUP are taken through a signalfd and end the wait like `q` does.
// Plain ANSI/VT100 sequences (docs/ctl.md says why not ncurses).
#ifndef DDV_SRC_CONTROL_TOP_TERMINAL_H_
#define DDV_SRC_CONTROL_TOP_TERMINAL_H_

#include <termios.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace control {

class TopTerminal {
 public:
  // Fails when standard input or output is not a terminal.
  static absl::StatusOr<std::unique_ptr<TopTerminal>> Open();
  ~TopTerminal();
  TopTerminal(const TopTerminal&) = delete;
  TopTerminal& operator=(const TopTerminal&) = delete;

  // Draws `lines` from the top left, each cut by the caller to width(),
  // clearing what the last frame left beyond them.
  void Draw(const std::vector<std::string>& lines);
  int width() const { return width_; }
  int height() const { return height_; }

  enum class Event {
    kTimeout,  // `timeout` passed: time for the next sample
    kRefresh,  // space: sample now
    kResized,  // SIGWINCH: width() and height() changed; draw again
    kQuit,     // q, Q, or SIGINT
    kSignal,   // SIGTERM or SIGHUP: quit; signal() says which
  };
  // Waits for a key or a signal, at most `timeout`.
  Event Wait(absl::Duration timeout);
  int signal() const { return signal_; }

 private:
  TopTerminal() = default;
  void Enter();
  void Leave();
  void ReadSize();
  // SIGTSTP (Ctrl-Z): give the terminal back, stop, take it again.
  void Suspend();
  void Write(const std::string& bytes);

  termios saved_{};
  bool entered_ = false;
  UniqueFd signal_fd_;
  sigset_t old_mask_{};
  int width_ = 80;
  int height_ = 24;
  int signal_ = 0;
};

}  // namespace control
}  // namespace ddv

#endif  // DDV_SRC_CONTROL_TOP_TERMINAL_H_
