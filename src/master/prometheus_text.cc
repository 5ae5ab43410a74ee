// PrometheusText: text format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
#include "src/master/prometheus_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ddv {
namespace master {

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void PrometheusText::Family(absl::string_view name, absl::string_view type,
                            absl::string_view help) {
  // HELP text escapes only backslash and newline.
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  absl::StrAppend(&out_, "# HELP ", name, " ", escaped, "\n# TYPE ", name, " ",
                  type, "\n");
}

void PrometheusText::Name(absl::string_view name, Labels labels,
                          absl::string_view extra_label,
                          absl::string_view extra_value) {
  out_.append(name.data(), name.size());
  bool open = false;
  auto label = [&](absl::string_view key, absl::string_view value) {
    if (value.empty()) return;
    absl::StrAppend(&out_, open ? "," : "{", key, "=\"",
                    EscapeLabelValue(value), "\"");
    open = true;
  };
  for (const auto& [key, value] : labels) label(key, value);
  if (!extra_label.empty()) label(extra_label, extra_value);
  if (open) out_ += '}';
  out_ += ' ';
}

void PrometheusText::Sample(absl::string_view name, Labels labels,
                            uint64_t value) {
  Name(name, labels);
  absl::StrAppend(&out_, value, "\n");
}

void PrometheusText::Sample(absl::string_view name, Labels labels,
                            int64_t value) {
  Name(name, labels);
  absl::StrAppend(&out_, value, "\n");
}

void PrometheusText::Sample(absl::string_view name, Labels labels,
                            double value) {
  Name(name, labels);
  absl::StrAppend(&out_, absl::StrFormat("%.15g", value), "\n");
}

void PrometheusText::HistogramSamples(absl::string_view name, Labels labels,
                                      const Histogram& histogram,
                                      double scale) {
  const std::string bucket = absl::StrCat(name, "_bucket");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < histogram.bounds().size(); ++i) {
    cumulative += histogram.bucket(i);
    Name(bucket, labels, "le", histogram.bounds()[i].le);
    absl::StrAppend(&out_, cumulative, "\n");
  }
  Name(bucket, labels, "le", "+Inf");
  absl::StrAppend(&out_, histogram.count(), "\n");
  Name(absl::StrCat(name, "_sum"), labels);
  absl::StrAppend(&out_, absl::StrFormat("%.15g", histogram.sum() * scale),
                  "\n");
  Name(absl::StrCat(name, "_count"), labels);
  absl::StrAppend(&out_, histogram.count(), "\n");
}

void PrometheusText::Raw(absl::string_view text) {
  out_.append(text.data(), text.size());
}

}  // namespace master
}  // namespace ddv
