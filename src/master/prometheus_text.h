// PrometheusText: writes the Prometheus text exposition format 0.0.4 (what
// /metrics and `ddvctl metrics` answer). Each family gets its HELP and TYPE
// lines once, before its samples; label values are escaped as the format
// requires (backslash, double quote, newline), since listener names are
// whatever the config says.
#ifndef DDV_SRC_MASTER_PROMETHEUS_TEXT_H_
#define DDV_SRC_MASTER_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "src/master/histogram.h"

namespace ddv {
namespace master {

// A sample's labels, in order: {{"listener", "http"}, {"outcome", "routed"}}.
// A label with an empty value is left out (Prometheus treats the two alike).
using Labels =
    std::initializer_list<std::pair<absl::string_view, absl::string_view>>;

class PrometheusText {
 public:
  // Starts a family: `# HELP name help` and `# TYPE name type` (type is
  // "counter", "gauge" or "histogram").
  void Family(absl::string_view name, absl::string_view type,
              absl::string_view help);
  void Sample(absl::string_view name, Labels labels, uint64_t value);
  void Sample(absl::string_view name, Labels labels, int64_t value);
  // Written with 15 significant digits (CPU seconds, start time, sums).
  void Sample(absl::string_view name, Labels labels, double value);
  // `name`_bucket{..., le=...} cumulative, then _sum and _count. The sum is
  // the observed integers times `scale` (1e-9 for nanoseconds shown as
  // seconds, 1 for bytes).
  void HistogramSamples(absl::string_view name, Labels labels,
                        const Histogram& histogram, double scale);
  // Text already in the format (the flat counters).
  void Raw(absl::string_view text);

  const std::string& text() const { return out_; }
  std::string Take() { return std::move(out_); }

 private:
  void Name(absl::string_view name, Labels labels,
            absl::string_view extra_label = {},
            absl::string_view extra_value = {});
  std::string out_;
};

// A label value as the format wants it between double quotes.
std::string EscapeLabelValue(absl::string_view value);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_PROMETHEUS_TEXT_H_
