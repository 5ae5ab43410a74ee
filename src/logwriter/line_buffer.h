// LineBuffer: what the log writer has read from one pipe and not yet passed
// on, so that only whole lines reach a file. Pure: no I/O.
#ifndef DDV_SRC_LOGWRITER_LINE_BUFFER_H_
#define DDV_SRC_LOGWRITER_LINE_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ddv {
namespace logwriter {

class LineBuffer {
 public:
  // `capacity` bounds the longest line kept whole (the writer uses 64 KiB).
  // The buffer starts at `initial` bytes and doubles up to it only while a
  // line does not fit: an idle pipe costs 4 KiB, not the capacity.
  explicit LineBuffer(size_t capacity, size_t initial = 4096);

  // Where the next read goes, and how many bytes fit there (never 0: a full
  // buffer is emptied by Commit).
  char* space() { return data_.data() + used_; }
  size_t space_size() const { return data_.size() - used_; }

  // `n` bytes were read into space(). Appends every complete line now held
  // to `out` and keeps the incomplete tail, growing the buffer when the
  // tail fills it. At the capacity, a buffer full of one line with no
  // newline is passed on whole with a '\n' added: a longer line is cut,
  // and the pipe keeps flowing. Returns the bytes appended.
  size_t Commit(size_t n, std::string* out);

  // End of the pipe: a partial last line is passed on with a '\n' added, so
  // the next writer's line starts on its own line. Returns the bytes
  // appended (0 when nothing was pending).
  size_t Flush(std::string* out);

  size_t pending() const { return used_; }
  // Lines cut at the capacity, ever.
  uint64_t lines_cut() const { return lines_cut_; }

 private:
  size_t capacity_;
  std::vector<char> data_;
  size_t used_ = 0;
  uint64_t lines_cut_ = 0;
};

}  // namespace logwriter
}  // namespace ddv

#endif  // DDV_SRC_LOGWRITER_LINE_BUFFER_H_
