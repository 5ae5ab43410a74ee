// RenderProcessMetrics: as the Go and Python client libraries compute them
// (/proc/self/stat fields, /proc/stat's btime, /proc/self/fd).
#include "src/master/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "src/base/unique_fd.h"

namespace ddv {
namespace master {
namespace {

std::string ReadSmallFile(const char* path) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  std::string text;
  char buffer[4096];
  while (text.size() < 65536) {
    const ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

// Seconds since the epoch at which the machine booted (/proc/stat btime).
bool BootTime(double* seconds) {
  const std::string stat = ReadSmallFile("/proc/stat");
  for (absl::string_view line : absl::StrSplit(stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      int64_t value = 0;
      if (!absl::SimpleAtoi(line, &value)) return false;
      *seconds = static_cast<double>(value);
      return true;
    }
  }
  return false;
}

int64_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own fd
}

}  // namespace

void RenderProcessMetrics(PrometheusText* out) {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // /proc/self/stat: "pid (comm) state ppid ...": the command may hold
  // spaces and parentheses, so fields are counted after the last ')'.
  const std::string stat = ReadSmallFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  std::vector<absl::string_view> fields;
  if (paren != std::string::npos) {
    fields = absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
  }
  // proc(5) numbers fields from 1 with pid; fields[0] here is field 3.
  auto field = [&](int number, double* value) {
    const size_t i = static_cast<size_t>(number - 3);
    return i < fields.size() && absl::SimpleAtod(fields[i], value);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0, boot = 0;
  if (field(14, &utime) && field(15, &stime)) {
    out->Family("process_cpu_seconds_total", "counter",
                "user and system CPU time the master spent, in seconds");
    out->Sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
  }
  if (field(24, &rss)) {
    out->Family("process_resident_memory_bytes", "gauge",
                "the master's resident memory size in bytes");
    out->Sample("process_resident_memory_bytes", {},
                static_cast<int64_t>(rss * page));
  }
  if (field(23, &vsize)) {
    out->Family("process_virtual_memory_bytes", "gauge",
                "the master's virtual memory size in bytes");
    out->Sample("process_virtual_memory_bytes", {},
                static_cast<int64_t>(vsize));
  }
  const int64_t open_fds = CountOpenFds();
  if (open_fds >= 0) {
    out->Family("process_open_fds", "gauge",
                "file descriptors the master has open");
    out->Sample("process_open_fds", {}, open_fds);
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    out->Family("process_max_fds", "gauge",
                "the master's limit on open file descriptors");
    out->Sample("process_max_fds", {}, static_cast<int64_t>(limit.rlim_cur));
  }
  if (field(22, &start) && BootTime(&boot)) {
    out->Family("process_start_time_seconds", "gauge",
                "when the master process started, in seconds since the epoch");
    out->Sample("process_start_time_seconds", {}, boot + start / ticks);
  }
}

}  // namespace master
}  // namespace ddv
