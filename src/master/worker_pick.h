// PickLeastLoaded: the balance policy, apart from the processes it balances
// so it can be tested without any. A site's workers are scanned from a
// rotating start; the one with the least it has not taken yet wins, workers
// that have not said hello sort after every one that has, and the first
// found among equals wins, so ties rotate round robin.
#ifndef DDV_SRC_MASTER_WORKER_PICK_H_
#define DDV_SRC_MASTER_WORKER_PICK_H_

#include <cstddef>
#include <cstdint>
#include <optional>

namespace ddv {
namespace master {

// What the pick needs to know about one worker that may take a connection.
struct PickLoad {
  bool ready = false;  // said hello since its last start
  uint64_t load = 0;   // connections (and bytes / 64) it has not taken yet
};

// `describe(k)` gives worker k of the site (0 <= k < n) as a PickLoad, or
// std::nullopt when it may not take connections now (dead, retired, asked
// to shut down, channel full, excluded). Returns the k picked, or -1 when
// none may. `start` is the round-robin cursor: the caller advances it on
// every pick. A template so the hot path neither allocates nor calls
// through a std::function.
template <typename Describe>
int PickLeastLoaded(size_t n, uint32_t start, Describe&& describe) {
  int best = -1;
  uint64_t best_key = UINT64_MAX;
  for (size_t i = 0; i < n; ++i) {
    const size_t k = (start + i) % n;
    const std::optional<PickLoad> candidate = describe(k);
    if (!candidate) continue;
    // Not ready sorts after every ready worker whatever its load.
    const uint64_t key =
        (candidate->ready ? 0 : (1ull << 40)) + candidate->load;
    if (key < best_key) {
      best_key = key;
      best = static_cast<int>(k);
    }
  }
  return best;
}

}  // namespace master
}  // namespace ddv

#endif  // DDV_SRC_MASTER_WORKER_PICK_H_
