// The pieces of /metrics without a master: histograms, the text format,
// the labelled counters summed by name, the metrics server's slot rules.
#include <unistd.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/master/histogram.h"
#include "src/master/labeled_counters.h"
#include "src/master/metrics_server.h"
#include "src/master/prometheus_text.h"

namespace ddv {
namespace master {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(HistogramTest, CountsEachValueInTheFirstBucketThatHoldsIt) {
  Histogram h(PeekBytesBounds());
  h.Observe(1);        // <= 64
  h.Observe(64);       // <= 64: le is inclusive
  h.Observe(65);       // <= 128
  h.Observe(1 << 30);  // +Inf
  EXPECT_EQ(h.bucket(0), 2u);
  EXPECT_EQ(h.bucket(1), 1u);
  EXPECT_EQ(h.bucket(h.bounds().size()), 1u);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.sum(), 1 + 64 + 65 + (1 << 30));
}

TEST(HistogramTest, MergeAddsCountsAndSums) {
  Histogram a(LatencyBounds()), b(LatencyBounds());
  a.Observe(30000);  // 30 µs: <= 50 µs
  b.Observe(30000);
  b.Observe(2000000000);  // 2 s
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.bucket(1), 2u);
  EXPECT_EQ(a.sum(), 2000060000);
}

TEST(PrometheusTextTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  PrometheusText text;
  text.Family("x_total", "counter", "help with \\ and\nnewline");
  text.Sample("x_total", {{"listener", "we\"ird"}, {"site", ""}}, uint64_t{3});
  EXPECT_EQ(text.text(),
            "# HELP x_total help with \\\\ and\\nnewline\n"
            "# TYPE x_total counter\n"
            "x_total{listener=\"we\\\"ird\"} 3\n");
}

TEST(PrometheusTextTest, HistogramIsCumulativeWithInfSumAndCount) {
  Histogram h(PeekBytesBounds());
  h.Observe(100);
  h.Observe(100);
  h.Observe(5000);
  PrometheusText text;
  text.HistogramSamples("ddv_peek_bytes", {{"listener", "http"}}, h, 1);
  const std::string& t = text.text();
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_bucket{listener=\"http\",le=\"64\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_bucket{listener=\"http\",le=\"128\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_bucket{listener=\"http\",le=\"4096\"} 2\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_bucket{listener=\"http\",le=\"8192\"} 3\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_bucket{listener=\"http\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_sum{listener=\"http\"} 5200\n"));
  EXPECT_THAT(t, HasSubstr("ddv_peek_bytes_count{listener=\"http\"} 3\n"));
}

TEST(LabeledCountersTest, SlotsSharingANameAreSummed) {
  LabeledCounters c;
  // Slot 0 "http" retired by a reload that moved it; slot 2 is "http" now.
  c.listener(0).accepted = 5;
  c.CountOutcome(0, 0, Outcome::kRouted);
  c.CountOutcome(0, -1, Outcome::kNoSite);
  c.listener(1).accepted = 1;
  c.listener(2).accepted = 2;
  c.CountOutcome(2, 1, Outcome::kRouted);
  c.CountOutcome(2, 1, Outcome::kUnavailable);
  c.listener(2).handoff_latency.Observe(1000);
  ++c.site(1).handoff_retries;
  PrometheusText text;
  RenderLabeledCounters(c, {"http", "tls", "http"}, {"a", "b"}, {0, 3, 1},
                        &text);
  const std::string& t = text.text();
  EXPECT_THAT(t, HasSubstr("ddv_listener_accepted_total{listener=\"http\"} 7\n"));
  EXPECT_THAT(t, HasSubstr("ddv_listener_accepted_total{listener=\"tls\"} 1\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_connections_total{listener=\"http\",outcome=\"routed\"} 2\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_connections_total{listener=\"http\",outcome=\"no_site\"} 1\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_connections_total{listener=\"tls\",outcome=\"closed\"} 0\n"));
  EXPECT_THAT(t, HasSubstr("ddv_connections_pending{listener=\"tls\"} 3\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_handoff_latency_seconds_count{listener=\"http\"} 1\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_site_connections_total{site=\"a\",outcome=\"routed\"} 1\n"));
  EXPECT_THAT(t, HasSubstr(
      "ddv_site_connections_total{site=\"b\",outcome=\"unavailable\"} 1\n"));
  EXPECT_THAT(t, HasSubstr("ddv_site_handoff_retries_total{site=\"b\"} 1\n"));
  // One series per name, not per slot.
  EXPECT_THAT(t, Not(HasSubstr("ddv_listener_accepted_total{listener=\"http\"} 5")));
}

TEST(MetricsServerTest, EvictsTheOldestAndOnlyOneAtATime) {
  MetricsServer server;
  for (size_t i = 0; i < MetricsServer::kMaxClients; ++i) {
    EXPECT_EQ(server.FreeSlot(), static_cast<int>(i));
    ScrapeClient& c = server.client(i);
    c.fd = UniqueFd(dup(0));
    c.accepted_ns = 1000 - static_cast<int64_t>(i);  // the last is oldest
  }
  EXPECT_EQ(server.FreeSlot(), -1);
  EXPECT_EQ(server.open_clients(), MetricsServer::kMaxClients);
  const int oldest = static_cast<int>(MetricsServer::kMaxClients - 1);
  EXPECT_EQ(server.EvictionCandidate(), oldest);
  server.client(oldest).cut = true;
  // Its slot frees when its op completes: nobody else is cut meanwhile.
  EXPECT_EQ(server.EvictionCandidate(), -1);
  server.client(oldest).fd.Reset();
  server.client(oldest).inflight = 1;  // closed, its op not completed yet
  EXPECT_EQ(server.FreeSlot(), -1);
  server.client(oldest).inflight = 0;
  EXPECT_EQ(server.FreeSlot(), oldest);
}

TEST(MetricsServerTest, RendersEveryOutcome) {
  MetricsServer server;
  server.Count(ScrapeOutcome::kTimeout);
  server.Count(ScrapeOutcome::kTimeout);
  server.Count(ScrapeOutcomeForStatus(431));
  PrometheusText text;
  server.Render(&text);
  EXPECT_THAT(text.text(), HasSubstr(
      "ddv_metrics_connections_total{outcome=\"timeout\"} 2\n"));
  EXPECT_THAT(text.text(), HasSubstr(
      "ddv_metrics_connections_total{outcome=\"too_large\"} 1\n"));
  EXPECT_THAT(text.text(), HasSubstr(
      "ddv_metrics_connections_total{outcome=\"evicted\"} 0\n"));
  EXPECT_THAT(text.text(), HasSubstr("ddv_metrics_connections_open 0\n"));
}

}  // namespace
}  // namespace master
}  // namespace ddv
