// HeldGauge: one shared counter through which the master tells the
// watchdog, every loop turn, how many connections it holds (accepted, not
// yet handed off). When a master dies, that is what died with it: the
// watchdog logs and counts it, and tells the next master
// (ddv_connections_lost_in_master_crashes_total; docs/lifecycle.md).
// A memfd page, mapped shared by both; the master's side is one relaxed
// store per loop turn.
#ifndef DDV_SRC_WATCHDOG_HELD_GAUGE_H_
#define DDV_SRC_WATCHDOG_HELD_GAUGE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/statusor.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace watchdog {

class HeldGauge {
 public:
  // A new page (the watchdog's side).
  static absl::StatusOr<HeldGauge> Create();
  // Maps the page `fd` names (the master's side, fd from the link).
  static absl::StatusOr<HeldGauge> Map(UniqueFd fd);

  HeldGauge() = default;
  HeldGauge(HeldGauge&& other) noexcept;
  HeldGauge& operator=(HeldGauge&& other) noexcept;
  ~HeldGauge();

  void Set(uint64_t held) {
    if (value_ != nullptr) value_->store(held, std::memory_order_relaxed);
  }
  uint64_t Get() const {
    return value_ != nullptr ? value_->load(std::memory_order_relaxed) : 0;
  }
  int fd() const { return fd_.get(); }
  bool valid() const { return value_ != nullptr; }

 private:
  UniqueFd fd_;
  std::atomic<uint64_t>* value_ = nullptr;
};

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_HELD_GAUGE_H_
