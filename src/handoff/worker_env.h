// The environment contract between the master and its workers: the DDV_*
// variables a worker process is started with, and the fd its channel is at.
// One header on purpose: the master writes these names, the worker library
// and the TLS code read them, and a name spelled twice would drift apart.
// The table with each variable's meaning is docs/worker.md (and docs/tls.md
// for the TLS ones).
#ifndef DDV_SRC_HANDOFF_WORKER_ENV_H_
#define DDV_SRC_HANDOFF_WORKER_ENV_H_

namespace ddv {
namespace handoff {

// The fd number every worker process inherits its channel end at.
inline constexpr int kWorkerChannelFd = 3;

// Set for every worker.
inline constexpr char kEnvChannelFd[] = "DDV_CHANNEL_FD";
inline constexpr char kEnvSite[] = "DDV_SITE";
inline constexpr char kEnvWorkerIndex[] = "DDV_WORKER_INDEX";
inline constexpr char kEnvHandoff[] = "DDV_HANDOFF";
inline constexpr char kEnvMasterPid[] = "DDV_MASTER_PID";

// Set for Node.js workers (`runtime = "node"`, docs/node.md) instead of
// DDV_CHANNEL_FD and DDV_HANDOFF: "node", and the port of the site's first
// listener, for the app's server.listen(PORT).
inline constexpr char kEnvRuntime[] = "DDV_RUNTIME";
inline constexpr char kEnvPort[] = "PORT";

// The values DDV_HANDOFF takes.
inline constexpr char kHandoffScmRights[] = "scm_rights";
inline constexpr char kHandoffPidfd[] = "pidfd";

// Set for a site that terminates TLS (docs/tls.md): PEM paths joined by ':'
// (certificate i goes with key i), and 64 hex digits every process of the
// site shares so session tickets resume on any of them.
inline constexpr char kEnvTlsCert[] = "DDV_TLS_CERT";
inline constexpr char kEnvTlsKey[] = "DDV_TLS_KEY";
inline constexpr char kEnvTlsTicketSecret[] = "DDV_TLS_TICKET_SECRET";

}  // namespace handoff
}  // namespace ddv

#endif  // DDV_SRC_HANDOFF_WORKER_ENV_H_
