"""Names every module shares: paths, workloads, targets, the run context."""
import os
import sys

PACKAGE = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.dirname(PACKAGE)  # benchmarks/load
REPO = os.path.dirname(os.path.dirname(HERE))
TEMPLATES = os.path.join(HERE, "templates")

HOST = "a.localhost"
ALL_PATHS = ["direct", "ddv", "haproxy-http", "haproxy-tcp", "nginx",
             "nginx-direct", "nginx-stream", "sniproxy"]
# Same set-up as `ddv`, binaries from --baseline_bin_dir.
BASELINE = "ddv-before"
# Same set-up as `ddv` plus a JSON access log on the listener
# (docs/metrics.md): what logging every connection costs the master. Not in
# the default paths; ask for it with --paths.
ACCESSLOG = "ddv-accesslog"
# Same set-up as `ddv` with --shards=2 (docs/shards.md): two master loops on
# the server CPU. Only when named.
SHARDS2 = "ddv-shards2"
INSTALL_HINT = ("apt-get install -y haproxy nginx-light libnginx-mod-stream "
                "sniproxy")
SECTION = "## Load: through the master vs direct"
TLS_SECTION = "### TLS handshakes: through the master vs direct (tls-new)"
TARGETS = {"keep-alive": 0.98, "new-conn": 0.85, "tls-new": 0.95,
           "floor": 1.1}
# Workloads: name in the table, then the spellings --workloads accepts.
WORKLOADS = ["keep-alive", "new-conn", "tls-new", "download", "idle",
             "idle-held", "slow",
             "latency", "tls-latency"]
WORKLOAD_ALIASES = {"keepalive": "keep-alive", "keep-alive": "keep-alive",
                    "newconn": "new-conn", "new-conn": "new-conn",
                    "tls-new": "tls-new", "tls": "tls-new",
                    "download": "download", "idle": "idle", "slow": "slow",
                    "idle-held": "idle-held",
                    "latency": "latency", "tls-latency": "tls-latency",
                    "tls-rate": "tls-latency"}
DEFAULT_WORKLOADS = "keepalive,newconn,tls-new"
HTTP_WORKLOADS = ("keep-alive", "new-conn")
# Full TLS handshakes: as many as the client makes (tls-new), and at a fixed
# --tls_latency_rate (tls-latency, tls_client.c's RATE). One TLS server serves both.
TLS_WORKLOADS = ("tls-new", "tls-latency")
# The load shapes (ddvbench/shapes.py): each an HTTP workload with its own
# table. idle and slow are measured against the same path's new-conn.
SHAPES = ("download", "idle", "idle-held", "slow", "latency")
# The shapes held beside a new-conn run, and judged against it.
HELD = ("idle", "idle-held", "slow")
ALL_HTTP = HTTP_WORKLOADS + SHAPES
# What an HTTP server other than ddv serves.
PROXY_HTTP = tuple(w for w in ALL_HTTP if w != "idle-held")
DOWNLOAD_PATH = "/bytes/1048576"
# Which workloads each path serves.
# idle-held only on ddv: it raises ddv's peek_timeout_ms for the hold.
NOT_DDV_WORKLOADS = [w for w in WORKLOADS if w != "idle-held"]
PATH_WORKLOADS = {
    "direct": NOT_DDV_WORKLOADS, "ddv": WORKLOADS, BASELINE: WORKLOADS,
    ACCESSLOG: WORKLOADS, SHARDS2: WORKLOADS,
    "haproxy-tcp": NOT_DDV_WORKLOADS, "sniproxy": NOT_DDV_WORKLOADS,
    "haproxy-http": PROXY_HTTP, "nginx": PROXY_HTTP,
    "nginx-direct": HTTP_WORKLOADS, "nginx-stream": TLS_WORKLOADS,
}
# The tool a path needs beyond ddv's own binaries.
NEEDS = {"haproxy-http": "haproxy", "haproxy-tcp": "haproxy",
         "nginx": "nginx", "nginx-direct": "nginx", "nginx-stream": "nginx",
         "sniproxy": "sniproxy"}
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")
USEC_PER_TICK = 1e6 / CLK_TCK


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Build:
    """One build of ddv: where its ddv_master and ddv_hello are."""

    def __init__(self, bin_dir):
        self.bin_dir = os.path.abspath(bin_dir)
        self.master = os.path.join(self.bin_dir, "src", "ddv_master")
        self.hello = os.path.join(self.bin_dir, "src", "ddv_hello")

    def missing(self):
        return [b for b in (self.master, self.hello)
                if not os.access(b, os.X_OK)]


class Ctx:
    """The run: args, tools, builds (ddv path -> Build), the temporary
    directory, the processes started (pyddv.procs.Procs), the certificate."""

    def __init__(self, args):
        self.args = args
        self.paths = []
        self.workloads = []
        self.tools = {}
        self.builds = {}
        self.dir = None
        self.cleanup_dirs = []
        self.procs = None
        self.cert = self.key = None
        self.tls_client = None
        self.conn_shapes = None
        self.hello_body = None

    @property
    def hello(self):
        """The ddv_hello every non-ddv path runs (the build under test)."""
        return self.builds["ddv"].hello
