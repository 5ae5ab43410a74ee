// RenderCounters: Prometheus text format 0.0.4.
#include "src/master/counters.h"

#include "absl/strings/str_cat.h"

namespace ddv {
namespace master {

std::string RenderCounters(const Counters& counters) {
  std::string out;
#define DDV_RENDER_COUNTER(name, help)                                  \
  absl::StrAppend(&out, "# HELP ddv_" #name "_total " help "\n",        \
                  "# TYPE ddv_" #name "_total counter\n", "ddv_" #name \
                  "_total ",                                            \
                  counters.name, "\n");
  DDV_MASTER_COUNTERS(DDV_RENDER_COUNTER)
#undef DDV_RENDER_COUNTER
  return out;
}

}  // namespace master
}  // namespace ddv
