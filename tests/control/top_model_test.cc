// ddvctl top's arithmetic and frame: rates from two status answers, what
// has no rate (first sample, another master, a counter that went down),
// and the frame cut to a terminal.
#include <string>

#include "gtest/gtest.h"
#include "src/control/top_model.h"
#include "src/control/top_render.h"

namespace ddv {
namespace control {
namespace {

// A status answer as the master writes it (master_status.cc), with the
// counts that change between samples as parameters.
std::string Status(int pid, int a_handed_off, int a0, int a1,
                   int a_unavailable, int a_restarts, int accepted,
                   int no_site, int outstanding) {
  return R"({"pid":)" + std::to_string(pid) +
         R"(,"uptime_seconds":3725,"config":"/etc/ddv/ddv.toml",)"
         R"("stopping":false,"accept_paused":false,"listeners":[],)"
         R"("sites":[{"id":"a","handed_off":)" +
         std::to_string(a_handed_off) + R"(,"unavailable":)" +
         std::to_string(a_unavailable) +
         R"(,"default":false,"failed":false,"workers":[)"
         R"({"index":0,"pid":101,"state":"running","ready":true,)"
         R"("restarts":)" + std::to_string(a_restarts) +
         R"(,"outstanding":)" + std::to_string(outstanding) +
         R"(,"unread_bytes":0,"handed_off":)" + std::to_string(a0) +
         R"(},{"index":1,"pid":102,"state":"running","ready":true,)"
         R"("restarts":0,"outstanding":0,"unread_bytes":0,"handed_off":)" +
         std::to_string(a1) +
         R"(}]},{"id":"b","handed_off":7,"unavailable":0,"default":true,)"
         R"("failed":false,"workers":[{"index":0,"pid":0,"state":"backoff",)"
         R"("ready":false,"restarts":3,"outstanding":0,"unread_bytes":0,)"
         R"("handed_off":7}]}],"counters":{"connections_accepted":)" +
         std::to_string(accepted) +
         R"(,"connections_handed_off":)" + std::to_string(a_handed_off + 7) +
         R"(,"no_site":)" + std::to_string(no_site) +
         R"(,"site_unavailable":)" + std::to_string(a_unavailable) + "}}";
}

StatusSample Sample(const std::string& json, absl::Duration at) {
  absl::StatusOr<StatusSample> sample =
      ParseStatusSample(json, absl::UnixEpoch() + at);
  EXPECT_TRUE(sample.ok()) << sample.status();
  return *sample;
}

TEST(TopModelTest, RatesPerSiteAndWorkerOverTheInterval) {
  StatusSample before =
      Sample(Status(100, 10, 4, 6, 1, 0, 20, 2, 0), absl::Seconds(10));
  StatusSample now =
      Sample(Status(100, 30, 14, 16, 3, 1, 44, 4, 5), absl::Seconds(12));
  TopView view = ComputeTopView(&before, now);
  EXPECT_EQ(view.pid, 100);
  EXPECT_EQ(view.interval, absl::Seconds(2));
  ASSERT_TRUE(view.accepted.has_value());
  EXPECT_DOUBLE_EQ(*view.accepted, 12.0);
  EXPECT_DOUBLE_EQ(*view.handed_off, 10.0);
  // no_site 2 -> 4 and site_unavailable 1 -> 3: 4 refusals in 2 s.
  EXPECT_DOUBLE_EQ(*view.refused, 2.0);
  ASSERT_EQ(view.sites.size(), 2u);
  const SiteRow& a = view.sites[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_DOUBLE_EQ(*a.connections, 10.0);
  EXPECT_DOUBLE_EQ(*a.unavailable, 1.0);
  EXPECT_EQ(a.outstanding, 5u);
  EXPECT_EQ(a.restarts, 1u);
  EXPECT_EQ(a.workers, 2);
  EXPECT_EQ(a.workers_ready, 2);
  ASSERT_EQ(a.worker_rows.size(), 2u);
  EXPECT_DOUBLE_EQ(*a.worker_rows[0].connections, 5.0);
  EXPECT_DOUBLE_EQ(*a.worker_rows[1].connections, 5.0);
  const SiteRow& b = view.sites[1];
  EXPECT_DOUBLE_EQ(*b.connections, 0.0);
  EXPECT_EQ(b.workers_ready, 0);  // in back-off: no process
  EXPECT_EQ(b.restarts, 3u);
}

TEST(TopModelTest, NoRatesWithoutAnEarlierSampleOfTheSameMaster) {
  StatusSample first =
      Sample(Status(100, 10, 4, 6, 1, 0, 20, 2, 0), absl::Seconds(10));
  TopView alone = ComputeTopView(nullptr, first);
  EXPECT_FALSE(alone.accepted.has_value());
  EXPECT_FALSE(alone.sites[0].connections.has_value());
  // Another master (the watchdog restarted it): its counters began at 0.
  StatusSample other =
      Sample(Status(200, 1, 1, 0, 0, 0, 1, 0, 0), absl::Seconds(11));
  TopView across = ComputeTopView(&first, other);
  EXPECT_FALSE(across.accepted.has_value());
  EXPECT_FALSE(across.sites[0].connections.has_value());
  EXPECT_FALSE(across.sites[0].worker_rows[0].connections.has_value());
}

TEST(TopModelTest, ACounterThatWentDownHasNoRate) {
  StatusSample before =
      Sample(Status(100, 10, 4, 6, 1, 0, 20, 2, 0), absl::Seconds(10));
  StatusSample now =
      Sample(Status(100, 3, 1, 2, 1, 0, 25, 2, 0), absl::Seconds(11));
  TopView view = ComputeTopView(&before, now);
  EXPECT_FALSE(view.sites[0].connections.has_value());
  EXPECT_FALSE(view.sites[0].worker_rows[0].connections.has_value());
  EXPECT_DOUBLE_EQ(*view.accepted, 5.0);
}

TEST(TopModelTest, FieldsAnOlderMasterLacksReadAsZero) {
  StatusSample sample = Sample(
      R"({"pid":5,"sites":[{"id":"a","workers":[{"index":0,"pid":9}]}]})",
      absl::Seconds(1));
  ASSERT_EQ(sample.sites.size(), 1u);
  EXPECT_EQ(sample.sites[0].handed_off, 0u);
  EXPECT_EQ(sample.sites[0].workers[0].handed_off, 0u);
  EXPECT_EQ(sample.sites[0].workers[0].pid, 9);
  EXPECT_FALSE(ParseStatusSample("not json", absl::Now()).ok());
  EXPECT_FALSE(ParseStatusSample("[1]", absl::Now()).ok());
}

TEST(TopRenderTest, FrameHasOneRowPerSiteAndWorker) {
  StatusSample before =
      Sample(Status(100, 10, 4, 6, 1, 0, 20, 2, 0), absl::Seconds(10));
  StatusSample now =
      Sample(Status(100, 30, 14, 16, 3, 1, 44, 4, 5), absl::Seconds(12));
  std::vector<std::string> lines =
      RenderTopFrame(ComputeTopView(&before, now), FrameOptions());
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_EQ(lines[0], "ddv top: master 100, up 1h02m, every 1s");
  EXPECT_EQ(lines[1],
            "connections/s: accepted 12.0, handed off 10.0, refused 2.0");
  EXPECT_EQ(lines[3], kSiteHeader);
  EXPECT_EQ(lines[4],
            "a                       2/2 up       10.0      5        0        "
            " 1    1.0");
  EXPECT_EQ(lines[5],
            "  #0               101  running       5.0      5        0        "
            " 1");
  EXPECT_EQ(lines[7],
            "b*                      0/1 up        0.0      0        0        "
            " 3    0.0");
  EXPECT_EQ(lines[8],
            "  #0                 -  backoff       0.0      0        0        "
            " 3");
  // Every column starts under its header.
  const std::string header = kSiteHeader;
  EXPECT_EQ(lines[4].size(), header.size());
}

TEST(TopRenderTest, CutToTheTerminal) {
  StatusSample now =
      Sample(Status(100, 30, 14, 16, 3, 1, 44, 4, 5), absl::Seconds(12));
  FrameOptions options;
  options.width = 40;
  options.height = 6;
  options.live = true;
  std::vector<std::string> lines =
      RenderTopFrame(ComputeTopView(nullptr, now), options);
  ASSERT_EQ(lines.size(), 6u);
  for (const std::string& line : lines) EXPECT_LE(line.size(), 40u);
  EXPECT_EQ(lines[1], "connections/s: accepted -, handed off -,");
  EXPECT_EQ(lines[5], "... 4 more rows (a taller terminal shows");
}

TEST(TopRenderTest, SaysWhyThereAreNoNumbers) {
  FrameOptions options;
  options.problem = "ddv_master is not running";
  std::vector<std::string> lines = RenderTopFrame(TopView(), options);
  EXPECT_EQ(lines[1], "no answer: ddv_master is not running");
}

}  // namespace
}  // namespace control
}  // namespace ddv
