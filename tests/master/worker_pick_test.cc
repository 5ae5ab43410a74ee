// PickLeastLoaded: the least loaded worker wins, one that has not said hello
// only when nobody else may take it, ties rotate with the cursor, and
// workers that may not take connections are never picked.
#include "src/master/worker_pick.h"

#include <map>
#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

// nullopt: may not take connections.
using Site = std::vector<std::optional<PickLoad>>;

int Pick(const Site& site, uint32_t start) {
  return PickLeastLoaded(site.size(), start, [&](size_t k) { return site[k]; });
}

TEST(WorkerPickTest, NoWorkersOrNoneEligible) {
  EXPECT_EQ(Pick({}, 0), -1);
  EXPECT_EQ(Pick({std::nullopt, std::nullopt}, 5), -1);
}

TEST(WorkerPickTest, LeastLoadedWinsWhereverTheScanStarts) {
  const Site site = {PickLoad{true, 5}, PickLoad{true, 2}, PickLoad{true, 9}};
  for (uint32_t start = 0; start < 6; ++start) {
    EXPECT_EQ(Pick(site, start), 1) << "start " << start;
  }
}

TEST(WorkerPickTest, NotReadySortsAfterAnyReadyWorker) {
  const Site site = {PickLoad{false, 0}, PickLoad{true, 1000000}};
  EXPECT_EQ(Pick(site, 0), 1);
  // ...but is picked when it is all there is.
  EXPECT_EQ(Pick({PickLoad{false, 3}, std::nullopt}, 0), 0);
  // Among workers not ready, load still decides.
  EXPECT_EQ(Pick({PickLoad{false, 3}, PickLoad{false, 1}}, 0), 1);
}

TEST(WorkerPickTest, IneligibleWorkersAreSkippedEvenWhenIdle) {
  const Site site = {std::nullopt, PickLoad{true, 7}, std::nullopt};
  for (uint32_t start = 0; start < 3; ++start) {
    EXPECT_EQ(Pick(site, start), 1);
  }
}

TEST(WorkerPickTest, TiesRotateWithTheCursor) {
  const Site site = {PickLoad{true, 4}, PickLoad{true, 4}, PickLoad{true, 4}};
  std::map<int, int> picks;
  for (uint32_t start = 0; start < 30; ++start) {
    const int k = Pick(site, start);
    EXPECT_EQ(k, static_cast<int>(start % 3));
    ++picks[k];
  }
  EXPECT_EQ(picks[0], 10);
  EXPECT_EQ(picks[1], 10);
  EXPECT_EQ(picks[2], 10);
}

TEST(WorkerPickTest, AsksAboutEachWorkerOncePerPick) {
  std::vector<int> asked(4, 0);
  PickLeastLoaded(4, 2, [&](size_t k) -> std::optional<PickLoad> {
    ++asked[k];
    return PickLoad{true, k};
  });
  EXPECT_EQ(asked, std::vector<int>({1, 1, 1, 1}));
}

}  // namespace
}  // namespace master
}  // namespace ddv
