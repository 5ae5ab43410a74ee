// SiteCaps: the counts behind max_pending and max_connections, event by
// event as the master feeds them.
#include "src/master/site_caps.h"

#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using Verdict = SiteCaps::Verdict;

SiteCaps::WorkerRef Ref(int worker, int site, uint32_t generation,
                        bool adopted = false) {
  return {worker, site, generation, adopted};
}

TEST(SiteCapsTest, MaxPendingCountsWhatTheMasterHolds) {
  SiteCaps caps;
  caps.Configure(0, /*max_connections=*/0, /*max_pending=*/2);
  EXPECT_EQ(caps.Admit(0), Verdict::kAdmit);
  EXPECT_EQ(caps.Admit(0), Verdict::kAdmit);
  EXPECT_EQ(caps.pending(0), 2u);
  EXPECT_EQ(caps.Admit(0), Verdict::kOverPending);
  EXPECT_EQ(caps.refused_pending(0), 1u);
  EXPECT_EQ(caps.pending(0), 2u);  // a refusal is not pending
  caps.RemovePending(0);
  EXPECT_EQ(caps.Admit(0), Verdict::kAdmit);
  // Another site is not touched by the first one's count.
  caps.Configure(1, 0, 2);
  EXPECT_EQ(caps.Admit(1), Verdict::kAdmit);
  EXPECT_EQ(caps.refused_pending(1), 0u);
}

TEST(SiteCapsTest, UnsetCapsRefuseNothing) {
  SiteCaps caps;
  caps.Configure(0, 0, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(caps.Admit(0), Verdict::kAdmit);
  // A site never configured is not capped either.
  EXPECT_EQ(caps.Admit(7), Verdict::kAdmit);
  EXPECT_EQ(caps.max_pending(7), 0u);
  EXPECT_EQ(caps.max_connections(7), 0u);
}

// max_connections: pending plus what its workers hold, as they report it,
// plus what was handed to them since that they have not taken.
TEST(SiteCapsTest, MaxConnectionsCountsReportedAndUnreadHandoffs) {
  SiteCaps caps;
  caps.Configure(0, /*max_connections=*/5, 0);
  const auto w0 = Ref(0, 0, 1);
  // Before a worker's first report, its handoffs are not counted: it may
  // be a program that never reports.
  caps.HandedOff(w0);
  EXPECT_EQ(caps.open(0), 0u);
  EXPECT_FALSE(caps.worker_reports(0));
  caps.Report(w0, /*taken=*/1, /*open=*/1);
  EXPECT_EQ(caps.open(0), 1u);
  EXPECT_TRUE(caps.worker_reports(0));
  // Two more handed, not yet taken: 3.
  caps.HandedOff(w0);
  caps.HandedOff(w0);
  EXPECT_EQ(caps.open(0), 3u);
  EXPECT_EQ(caps.worker_open(0), 3u);
  // It took them and closed one: 2 open, none unread.
  caps.Report(w0, 3, 2);
  EXPECT_EQ(caps.open(0), 2u);
  // 2 open + 3 pending = 5: the next is refused.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(caps.Admit(0), Verdict::kAdmit);
  EXPECT_EQ(caps.Admit(0), Verdict::kOverConnections);
  EXPECT_EQ(caps.refused_connections(0), 1u);
  EXPECT_EQ(caps.refused_pending(0), 0u);
}

TEST(SiteCapsTest, AStuckWorkerFillsItsSiteAndNoOther) {
  SiteCaps caps;
  caps.Configure(0, 10, 0);
  caps.Configure(1, 10, 0);
  caps.Report(Ref(0, 0, 1), 0, 0);
  caps.Report(Ref(1, 1, 1), 0, 0);
  // Site 0's worker stopped reading: everything handed to it counts.
  for (int i = 0; i < 10; ++i) caps.HandedOff(Ref(0, 0, 1));
  EXPECT_EQ(caps.open(0), 10u);
  EXPECT_EQ(caps.Admit(0), Verdict::kOverConnections);
  EXPECT_EQ(caps.Admit(1), Verdict::kAdmit);
}

TEST(SiteCapsTest, ReportWithoutOpenCountsOnlyUnread) {
  SiteCaps caps;
  caps.Configure(0, 10, 0);
  const auto w = Ref(0, 0, 1);
  for (int i = 0; i < 4; ++i) caps.HandedOff(w);
  caps.Report(w, 3, std::nullopt);  // a C worker that never says `open`
  EXPECT_EQ(caps.open(0), 1u);
}

TEST(SiteCapsTest, WorkersOfASiteAddUp) {
  SiteCaps caps;
  caps.Configure(0, 0, 0);
  for (int i = 0; i < 5; ++i) caps.HandedOff(Ref(0, 0, 1));
  caps.Report(Ref(0, 0, 1), 5, 5);
  for (int i = 0; i < 3; ++i) caps.HandedOff(Ref(1, 0, 1));
  caps.Report(Ref(1, 0, 1), 2, 1);  // one open, one unread
  EXPECT_EQ(caps.open(0), 7u);
  EXPECT_EQ(caps.worker_open(0), 5u);
  EXPECT_EQ(caps.worker_open(1), 2u);
}

TEST(SiteCapsTest, AnExitedProcessTakesItsConnectionsAlong) {
  SiteCaps caps;
  caps.Configure(0, 0, 0);
  for (int i = 0; i < 5; ++i) caps.HandedOff(Ref(0, 0, 1));
  caps.Report(Ref(0, 0, 1), 4, 4);
  EXPECT_EQ(caps.open(0), 5u);
  caps.WorkerGone(0);
  EXPECT_EQ(caps.open(0), 0u);
  EXPECT_FALSE(caps.worker_reports(0));
  // A frame it sent before dying, read after: ignored.
  caps.Report(Ref(0, 0, 1), 9, 9);
  EXPECT_EQ(caps.open(0), 0u);
  // Its successor (next generation) starts from nothing.
  caps.HandedOff(Ref(0, 0, 2));
  caps.Report(Ref(0, 0, 2), 0, 0);
  EXPECT_EQ(caps.open(0), 1u);
  // A restart without the exit seen (a new generation) replaces it too.
  caps.Report(Ref(0, 0, 3), 2, 2);
  EXPECT_EQ(caps.open(0), 2u);
  caps.WorkerGone(0);
  caps.WorkerGone(0);  // twice: once
  EXPECT_EQ(caps.open(0), 0u);
}

// An adopted worker (the master before this one handed it everything it
// took): its first report sets the baseline, nothing counts as unread.
TEST(SiteCapsTest, AnAdoptedWorkersFirstReportIsTheBaseline) {
  SiteCaps caps;
  caps.Configure(0, 0, 0);
  const auto adopted = Ref(0, 0, 1, /*adopted=*/true);
  caps.HandedOff(adopted);  // one from this master, taken by the report
  caps.Report(adopted, 1000, 3);
  EXPECT_EQ(caps.open(0), 3u);
  caps.HandedOff(adopted);
  EXPECT_EQ(caps.open(0), 4u);
  caps.Report(adopted, 1001, 4);
  EXPECT_EQ(caps.open(0), 4u);
}

TEST(SiteCapsTest, PendingNeverGoesNegative) {
  SiteCaps caps;
  caps.RemovePending(0);
  EXPECT_EQ(caps.pending(0), 0u);
  caps.AddPending(0);  // taken back from a dead worker, no check
  EXPECT_EQ(caps.pending(0), 1u);
}

}  // namespace
}  // namespace master
}  // namespace ddv
