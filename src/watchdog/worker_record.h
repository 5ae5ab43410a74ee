// WorkerRecord: what the watchdog keeps of one running worker so that the
// next master can adopt it (docs/lifecycle.md). The master sends one when it
// starts a worker process and updates it when the worker is ready; the
// watchdog hands every record it holds to each new master.
//
// The fds are what keeps the worker alive across a master's death: the
// watchdog's copies of both ends of the worker slot's channel (the worker
// sees EOF, and exits, only when no process holds the master's end) and a
// pidfd naming the process (a pid alone could be reused).
#ifndef DDV_SRC_WATCHDOG_WORKER_RECORD_H_
#define DDV_SRC_WATCHDOG_WORKER_RECORD_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "src/base/unique_fd.h"
#include "src/watchdog/link.h"

namespace ddv {
namespace watchdog {

struct WorkerRecord {
  std::string site;
  int index = 0;
  pid_t pid = 0;
  bool node = false;  // a Node cluster channel (SOCK_STREAM), not ddv wire
  // Hash of what the process was started with (command, env, user, logs),
  // without what changes with every master (its pid): a mismatch on
  // adoption means the config changed, and the worker is restarted.
  std::string spec_fingerprint;
  // The handoff wire version (src/handoff/wire.h) the process speaks. A
  // record without one comes from a build before records carried it, whose
  // workers speak version 1. A master does not adopt a ddv worker of
  // another version: it could not read that worker's frames, nor the worker
  // its; the worker is asked to drain and exit, and a new one starts.
  int wire_version = 1;
  std::string ticket_secret;  // the site's TLS ticket secret, kept across
  bool ready = false;         // said hello (ddv) or listens (Node)
  // Asked to finish and exit (kShutdown, Node's disconnect): the next
  // master must not give it connections, only its drain deadline.
  bool draining = false;
  // Node only, valid when ready: what the app listens on and whether it
  // loaded the ddv-worker package.
  std::string node_server_key;
  bool node_speaks_ddv = false;
  // The update_server_conf bodies the master accepted from this process
  // (claimed hosts, the default, a process count): the next master
  // replays them, since an adopted worker does not ask again.
  std::vector<std::string> conf_updates;
  UniqueFd pidfd;
  UniqueFd channel;    // the master's end
  UniqueFd child_end;  // the end every process of the slot inherits

  std::string key() const;  // "site#index"
};

// {"op": "worker", ...} with fds [pidfd, channel, child_end].
nlohmann::json EncodeWorkerRecord(const WorkerRecord& record);
std::vector<int> WorkerRecordFds(const WorkerRecord& record);
absl::StatusOr<WorkerRecord> DecodeWorkerRecord(LinkMessage message);

// {"op": "ready", "key", "pid", ...}: what changes while the process runs
// (readiness, what a Node app listens on, accepted conf updates).
nlohmann::json EncodeWorkerReady(const WorkerRecord& record);
// Applies a "ready" message to `record` if it names the same process.
bool ApplyWorkerReady(const nlohmann::json& body, WorkerRecord* record);

}  // namespace watchdog
}  // namespace ddv

#endif  // DDV_SRC_WATCHDOG_WORKER_RECORD_H_
