// RenderTopFrame (see top_render.h).
#include "src/control/top_render.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ddv {
namespace control {
namespace {

std::string FormatRate(const Rate& rate) {
  if (!rate.has_value()) return "-";
  if (*rate >= 100000) return absl::StrFormat("%.0fk", *rate / 1000);
  if (*rate >= 100) return absl::StrFormat("%.0f", *rate);
  return absl::StrFormat("%.1f", *rate);
}

std::string FormatUptime(int64_t seconds) {
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) {
    return absl::StrFormat("%dm%02ds", seconds / 60, seconds % 60);
  }
  if (seconds < 86400) {
    return absl::StrFormat("%dh%02dm", seconds / 3600, (seconds / 60) % 60);
  }
  return absl::StrFormat("%dd%02dh", seconds / 86400, (seconds / 3600) % 24);
}

// One row of the table, kSiteHeader's columns.
std::string Row(const std::string& name, const std::string& pid,
                const std::string& state, const std::string& connections,
                uint64_t outstanding, uint64_t unread, uint64_t restarts,
                const std::string& unavailable) {
  // Long site ids are cut so the columns stay put.
  return absl::StrFormat("%-14s %7s  %-9s %7s %6d %8d %9d %6s",
                         name.substr(0, 14), pid,
                         state.substr(0, 9), connections, outstanding, unread,
                         restarts, unavailable);
}

}  // namespace

std::vector<std::string> RenderTopFrame(const TopView& view,
                                        const FrameOptions& options) {
  std::vector<std::string> lines;
  std::string title = absl::StrCat(
      "ddv top: master ", view.pid, ", up ", FormatUptime(view.uptime_seconds),
      view.stopping ? " (stopping)" : "", ", every ",
      absl::FormatDuration(options.refresh));
  if (options.live) absl::StrAppend(&title, "  [q: quit, space: refresh]");
  lines.push_back(title);
  if (!options.problem.empty()) {
    lines.push_back(absl::StrCat("no answer: ", options.problem));
  } else {
    lines.push_back(absl::StrCat(
        "connections/s: accepted ", FormatRate(view.accepted),
        ", handed off ", FormatRate(view.handed_off), ", refused ",
        FormatRate(view.refused),
        view.accept_paused ? "; ACCEPTS PAUSED (at --max_connections)" : ""));
  }
  lines.push_back("");
  lines.push_back(kSiteHeader);
  for (const SiteRow& site : view.sites) {
    std::string name = site.id;
    if (site.is_default) name += "*";
    const std::string state =
        site.failed ? "FAILED"
                    : absl::StrCat(site.workers_ready, "/", site.workers,
                                   " up");
    lines.push_back(Row(name, "", state, FormatRate(site.connections),
                        site.outstanding, site.unread_bytes, site.restarts,
                        FormatRate(site.unavailable)));
    for (const WorkerRow& worker : site.worker_rows) {
      lines.push_back(Row(absl::StrCat("  #", worker.index),
                          worker.pid == 0 ? "-" : absl::StrCat(worker.pid),
                          worker.state, FormatRate(worker.connections),
                          worker.outstanding, worker.unread_bytes,
                          worker.restarts, ""));
    }
  }
  if (options.height > 0 && lines.size() > static_cast<size_t>(options.height)) {
    const size_t keep = options.height > 1 ? options.height - 1 : 0;
    const size_t hidden = lines.size() - keep;
    lines.resize(keep);
    lines.push_back(absl::StrCat("... ", hidden,
                                 " more rows (a taller terminal shows them)"));
    if (lines.size() > static_cast<size_t>(options.height)) {
      lines.resize(options.height);
    }
  }
  if (options.width > 0) {
    for (std::string& line : lines) {
      if (line.size() > static_cast<size_t>(options.width)) {
        line.resize(options.width);
      }
    }
  }
  // Trailing blanks help no one (and make --once output awkward to read).
  for (std::string& line : lines) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
  }
  return lines;
}

}  // namespace control
}  // namespace ddv
