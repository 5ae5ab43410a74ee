// LineBuffer: whole lines out, the incomplete tail kept for the next read.
#include "src/logwriter/line_buffer.h"

#include <algorithm>
#include <cstring>

namespace ddv {
namespace logwriter {

LineBuffer::LineBuffer(size_t capacity, size_t initial)
    : capacity_(capacity > 0 ? capacity : 1),
      data_(std::min(capacity_, initial > 0 ? initial : 1)) {}

size_t LineBuffer::Commit(size_t n, std::string* out) {
  if (n > space_size()) n = space_size();
  // Only the new bytes can hold the newline that completes the tail.
  const size_t searched_from = used_;
  used_ += n;
  const char* start = data_.data();
  const void* last = nullptr;
  for (size_t i = used_; i > searched_from; --i) {
    if (start[i - 1] == '\n') {
      last = start + i - 1;
      break;
    }
  }
  if (last == nullptr) {
    if (used_ < data_.size()) return 0;
    if (data_.size() < capacity_) {
      data_.resize(std::min(capacity_, data_.size() * 2));
      return 0;
    }
    // Full and no newline: cut here rather than stall the pipe.
    out->append(start, used_);
    out->push_back('\n');
    const size_t appended = used_ + 1;
    used_ = 0;
    ++lines_cut_;
    return appended;
  }
  const size_t whole = static_cast<const char*>(last) - start + 1;
  out->append(start, whole);
  used_ -= whole;
  if (used_ > 0) std::memmove(data_.data(), start + whole, used_);
  return whole;
}

size_t LineBuffer::Flush(std::string* out) {
  if (used_ == 0) return 0;
  out->append(data_.data(), used_);
  out->push_back('\n');
  const size_t appended = used_ + 1;
  used_ = 0;
  return appended;
}

}  // namespace logwriter
}  // namespace ddv
