#include "src/watchdog/held_gauge.h"

#include <sys/mman.h>
#include <unistd.h>

#include <utility>

#include "src/base/errno_status.h"

namespace ddv {
namespace watchdog {
namespace {

constexpr size_t kPage = 4096;

absl::StatusOr<std::atomic<uint64_t>*> MapPage(int fd) {
  void* page = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (page == MAP_FAILED) {
    return ErrnoStatus(errno, "mmap", "mapping the held-connections gauge");
  }
  return static_cast<std::atomic<uint64_t>*>(page);
}

}  // namespace

absl::StatusOr<HeldGauge> HeldGauge::Create() {
  UniqueFd fd(memfd_create("ddv-held-gauge", MFD_CLOEXEC));
  if (!fd) {
    return ErrnoStatus(errno, "memfd_create",
                       "making the held-connections gauge");
  }
  if (ftruncate(fd.get(), kPage) != 0) {
    return ErrnoStatus(errno, "ftruncate", "sizing the held-connections gauge");
  }
  return Map(std::move(fd));
}

absl::StatusOr<HeldGauge> HeldGauge::Map(UniqueFd fd) {
  absl::StatusOr<std::atomic<uint64_t>*> value = MapPage(fd.get());
  if (!value.ok()) return value.status();
  HeldGauge gauge;
  gauge.fd_ = std::move(fd);
  gauge.value_ = *value;
  return gauge;
}

HeldGauge::HeldGauge(HeldGauge&& other) noexcept
    : fd_(std::move(other.fd_)), value_(std::exchange(other.value_, nullptr)) {}

HeldGauge& HeldGauge::operator=(HeldGauge&& other) noexcept {
  if (this != &other) {
    if (value_ != nullptr) munmap(value_, kPage);
    fd_ = std::move(other.fd_);
    value_ = std::exchange(other.value_, nullptr);
  }
  return *this;
}

HeldGauge::~HeldGauge() {
  if (value_ != nullptr) munmap(value_, kPage);
}

}  // namespace watchdog
}  // namespace ddv
