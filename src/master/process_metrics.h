// The standard process_* metrics of the Prometheus client libraries, for
// the master process itself: CPU seconds, resident and virtual memory, open
// and maximum fds, start time. Read from /proc at each scrape (a few
// syscalls per scrape, none per connection).
#ifndef DDV_SRC_MASTER_PROCESS_METRICS_H_
#define DDV_SRC_MASTER_PROCESS_METRICS_H_

#include "src/master/prometheus_text.h"

namespace ddv {
namespace master {

// Appends process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds. A value that cannot be read is left out.
void RenderProcessMetrics(PrometheusText* out);

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_PROCESS_METRICS_H_
