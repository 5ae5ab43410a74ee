// ParseConfig / LoadConfigFile: every field parsed, every refusal with its
// exact FILE:LINE:COL message.
#include "src/config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace config {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// A complete config using every key; "/bin/sh" stands in for a worker
// binary because command[0] must exist.
constexpr char kFull[] = R"(# every key
[master]
control_socket = "/tmp/ddv-test/control.sock"
peek_timeout_ms = 2500
max_peek_bytes = 4096
handoff = "pidfd"
control_socket_mode = "0660"
control_socket_group = "root"
metrics_address = "127.0.0.1:9150"

[[listener]]
name = "http"
address = "0.0.0.0:80"
protocol = "http"
default_site = "fallback"
access_log = "/var/log/ddv/access.log"
access_log_format = "logfmt"
access_log_sample = 0.25

[[listener]]
name = "https"
address = "[::]:443"
protocol = "tls"
proxy_protocol = true
proxy_protocol_from = ["10.0.0.0/8", "::1", "::ffff:192.0.2.0/120"]
v6only = false

[[listener]]
name = "db"
address = "127.0.0.1:5432"
protocol = "tcp"

[[site]]
id = "a"
command = ["/bin/sh", "-c", "exec sleep 1"]
processes = 2
hosts = ["A.Example.com", "*.a.example.com."]
listeners = ["http", "https"]
log_output = "/var/log/ddv/a.out"
log_error = "/var/log/ddv/a.err"
log_all = "/var/log/ddv/a.log"
log_max_bytes = 10485760
log_keep = 3
env = { APP_ENV = "production", B = "2" }
user = "root"
group = "root"
tls_cert = ["/etc/ddv/a.pem", "/etc/ddv/a-ec.pem"]
tls_key = ["/etc/ddv/a.key", "/etc/ddv/a-ec.key"]
claimable_hosts = ["*.Users.A.example.com.", "b.example.net"]
may_claim_default = true
strict_host = false

[[site]]
id = "acme"
command = ["true"]
hosts = ["a.example.com"]
listeners = ["https"]
alpn = ["acme-tls/1"]
tls_cert = "/etc/ddv/acme.pem"
tls_key = "/etc/ddv/acme.key"

[[site]]
id = "fallback"
command = ["/bin/sh"]
default = true
)";

TEST(ParseConfigTest, ParsesEveryKey) {
  absl::StatusOr<Config> parsed = ParseConfig(kFull, "full.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const Config& c = *parsed;
  EXPECT_EQ(c.path, "full.toml");
  EXPECT_EQ(c.master.control_socket, "/tmp/ddv-test/control.sock");
  EXPECT_EQ(c.master.peek_timeout_ms, 2500);
  EXPECT_EQ(c.master.max_peek_bytes, 4096);
  EXPECT_EQ(c.master.handoff, HandoffMode::kPidfd);
  EXPECT_EQ(c.master.control_socket_mode, 0660u);
  EXPECT_EQ(c.master.control_socket_group, "root");
  EXPECT_EQ(c.master.control_socket_gid, 0u);
  EXPECT_EQ(c.master.metrics_address, "127.0.0.1:9150");

  ASSERT_EQ(c.listeners.size(), 3u);
  const ListenerConfig& http = c.listeners[0];
  EXPECT_EQ(http.name, "http");
  EXPECT_EQ(http.address, "0.0.0.0:80");
  ASSERT_EQ(http.addr.ss_family, AF_INET);
  EXPECT_EQ(http.addr_len, sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(&http.addr);
  EXPECT_EQ(ntohs(sin->sin_port), 80);
  EXPECT_EQ(sin->sin_addr.s_addr, htonl(INADDR_ANY));
  EXPECT_EQ(http.protocol, Protocol::kHttp);
  EXPECT_EQ(http.default_site, "fallback");
  EXPECT_FALSE(http.proxy_protocol);
  EXPECT_EQ(http.access_log, "/var/log/ddv/access.log");
  EXPECT_EQ(http.access_log_format, AccessLogFormat::kLogfmt);
  EXPECT_EQ(http.access_log_sample, 0.25);
  EXPECT_TRUE(http.proxy_protocol_from.empty());
  EXPECT_TRUE(http.v6only);
  EXPECT_EQ(http.line, 11);

  const ListenerConfig& https = c.listeners[1];
  EXPECT_EQ(https.name, "https");
  ASSERT_EQ(https.addr.ss_family, AF_INET6);
  EXPECT_EQ(https.addr_len, sizeof(sockaddr_in6));
  EXPECT_EQ(
      ntohs(reinterpret_cast<const sockaddr_in6*>(&https.addr)->sin6_port),
      443);
  EXPECT_EQ(https.protocol, Protocol::kTls);
  EXPECT_TRUE(https.default_site.empty());
  EXPECT_TRUE(https.proxy_protocol);
  ASSERT_EQ(https.proxy_protocol_from.size(), 3u);
  EXPECT_EQ(https.proxy_protocol_from[0].ToString(), "10.0.0.0/8");
  EXPECT_EQ(https.proxy_protocol_from[1].ToString(), "::1/128");
  EXPECT_EQ(https.proxy_protocol_from[2].ToString(), "192.0.2.0/24");
  EXPECT_FALSE(https.v6only);
  EXPECT_TRUE(IsPeeked(https));
  EXPECT_EQ(https.line, 20);
  EXPECT_EQ(c.listeners[2].protocol, Protocol::kTcp);
  EXPECT_FALSE(IsPeeked(c.listeners[2]));

  ASSERT_EQ(c.sites.size(), 3u);
  const SiteConfig& a = c.sites[0];
  EXPECT_EQ(a.id, "a");
  EXPECT_THAT(a.command, ElementsAre("/bin/sh", "-c", "exec sleep 1"));
  EXPECT_EQ(a.processes, 2);
  EXPECT_THAT(a.hosts, ElementsAre("a.example.com", "*.a.example.com"));
  EXPECT_THAT(a.listeners, ElementsAre("http", "https"));
  EXPECT_FALSE(a.is_default);
  EXPECT_EQ(a.log_output, "/var/log/ddv/a.out");
  EXPECT_EQ(a.log_error, "/var/log/ddv/a.err");
  EXPECT_EQ(a.log_all, "/var/log/ddv/a.log");
  EXPECT_EQ(a.log_max_bytes, 10485760u);
  EXPECT_EQ(a.log_keep, 3u);
  EXPECT_THAT(a.env,
              ElementsAre(Pair("APP_ENV", "production"), Pair("B", "2")));
  EXPECT_EQ(a.user, "root");
  EXPECT_EQ(a.group, "root");
  EXPECT_TRUE(a.alpn.empty());
  EXPECT_THAT(a.tls_cert, ElementsAre("/etc/ddv/a.pem", "/etc/ddv/a-ec.pem"));
  EXPECT_THAT(a.tls_key, ElementsAre("/etc/ddv/a.key", "/etc/ddv/a-ec.key"));
  EXPECT_EQ(a.line, 33);
  // Normal form, as in hosts.
  EXPECT_THAT(a.claimable_hosts,
              ElementsAre("*.users.a.example.com", "b.example.net"));
  EXPECT_TRUE(a.may_claim_default);
  EXPECT_FALSE(a.strict_host);

  const SiteConfig& acme = c.sites[1];
  // A bare name is resolved in PATH at load.
  ASSERT_EQ(acme.command.size(), 1u);
  EXPECT_EQ(acme.command[0].substr(acme.command[0].rfind('/')), "/true");
  EXPECT_THAT(acme.alpn, ElementsAre("acme-tls/1"));
  EXPECT_THAT(acme.tls_cert, ElementsAre("/etc/ddv/acme.pem"));
  EXPECT_THAT(acme.tls_key, ElementsAre("/etc/ddv/acme.key"));

  const SiteConfig& fallback = c.sites[2];
  EXPECT_TRUE(fallback.is_default);
  EXPECT_EQ(fallback.processes, 1);
  EXPECT_TRUE(fallback.hosts.empty());
  EXPECT_TRUE(fallback.listeners.empty());
}

TEST(ParseConfigTest, FillsDefaults) {
  absl::StatusOr<Config> parsed = ParseConfig(R"(
[[listener]]
name = "http"
address = "127.0.0.1:0"
protocol = "http"

[[site]]
id = "a"
command = ["/bin/sh"]
)",
                                              "min.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->master.control_socket, "/run/ddv/control.sock");
  EXPECT_EQ(parsed->master.peek_timeout_ms, 5000);
  EXPECT_EQ(parsed->master.max_peek_bytes, 16384);
  EXPECT_EQ(parsed->master.handoff, HandoffMode::kScmRights);
  EXPECT_EQ(parsed->master.control_socket_mode, 0600u);
  EXPECT_EQ(parsed->master.control_socket_group, "");
  const SiteConfig& a = parsed->sites[0];
  EXPECT_TRUE(a.claimable_hosts.empty());
  EXPECT_FALSE(a.may_claim_default);
  EXPECT_TRUE(a.strict_host);  // 421 for other sites' hosts by default
  EXPECT_EQ(a.processes, 1);
  EXPECT_FALSE(a.is_default);
  EXPECT_TRUE(a.hosts.empty() && a.listeners.empty() && a.env.empty() &&
              a.alpn.empty() && a.tls_cert.empty() && a.user.empty() &&
              a.group.empty() && a.log_output.empty());
  EXPECT_EQ(a.log_max_bytes, 0u);  // no rotation unless asked
  EXPECT_FALSE(parsed->listeners[0].proxy_protocol);
  EXPECT_EQ(parsed->master.metrics_address, "");  // not served
  EXPECT_EQ(parsed->listeners[0].access_log, "");  // not written
  EXPECT_EQ(parsed->listeners[0].access_log_format, AccessLogFormat::kJson);
  EXPECT_EQ(parsed->listeners[0].access_log_sample, 1.0);
  EXPECT_TRUE(parsed->listeners[0].proxy_protocol_from.empty());
  EXPECT_TRUE(parsed->listeners[0].v6only);
  // Isolation: nothing set (the master's limits, "/", no cgroup values, no
  // caps).
  EXPECT_TRUE(a.limits.empty());
  EXPECT_EQ(a.cwd, "");
  EXPECT_EQ(a.memory_max, 0u);
  EXPECT_EQ(a.cpu_weight, 0u);
  EXPECT_EQ(a.max_connections, 0u);
  EXPECT_EQ(a.max_pending, 0u);
}

TEST(ParseConfigTest, ParsesIsolationKeys) {
  absl::StatusOr<Config> parsed = ParseConfig(R"(
[[listener]]
name = "http"
address = "127.0.0.1:0"
protocol = "http"

[[site]]
id = "a"
command = ["/bin/sh"]
limits = { memlock_bytes = "64M", nofile = 4096, core = 0, nproc = 256, as_bytes = "unlimited" }
cwd = "/tmp"
memory_max = "512M"
cpu_weight = 200
max_connections = 1000
max_pending = 100

[[site]]
id = "b"
command = ["/bin/sh"]
memory_max = 2097152
)",
                                              "iso.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const SiteConfig& a = parsed->sites[0];
  // In kind order, whatever the file's.
  EXPECT_THAT(a.limits,
              ElementsAre(Pair(ResourceKind::kNofile, 4096u),
                          Pair(ResourceKind::kNproc, 256u),
                          Pair(ResourceKind::kCore, 0u),
                          Pair(ResourceKind::kAsBytes, kUnlimited),
                          Pair(ResourceKind::kMemlockBytes, 64u << 20)));
  EXPECT_EQ(a.cwd, "/tmp");
  EXPECT_EQ(a.memory_max, uint64_t{512} << 20);
  EXPECT_EQ(a.cpu_weight, 200u);
  EXPECT_EQ(a.max_connections, 1000u);
  EXPECT_EQ(a.max_pending, 100u);
  EXPECT_EQ(parsed->sites[1].memory_max, 2097152u);
  EXPECT_EQ(ResourceKindName(ResourceKind::kMemlockBytes), "memlock_bytes");
  EXPECT_THAT(DescribeConfig(*parsed),
              ::testing::HasSubstr(
                  ", nofile 4096, nproc 256, core 0, as_bytes unlimited, "
                  "memlock_bytes 67108864, cwd /tmp, memory_max 536870912, "
                  "cpu_weight 200, max_connections 1000, max_pending 100\n"));
}

// memory_max (and the byte-valued limits) take digits with an optional K,
// M, G or T suffix, powers of 1024 as systemd's MemoryMax=.
TEST(ParseConfigTest, MemoryMaxSizes) {
  auto memory_max = [](const std::string& value) -> absl::StatusOr<uint64_t> {
    absl::StatusOr<Config> parsed = ParseConfig(
        "[[listener]]\nname = \"h\"\naddress = \"127.0.0.1:0\"\n"
        "protocol = \"http\"\n[[site]]\nid = \"a\"\n"
        "command = [\"/bin/sh\"]\nmemory_max = " + value + "\n",
        "m.toml");
    if (!parsed.ok()) return parsed.status();
    return parsed->sites[0].memory_max;
  };
  EXPECT_EQ(*memory_max("\"1048576\""), 1048576u);
  EXPECT_EQ(*memory_max("\"1024K\""), 1048576u);
  EXPECT_EQ(*memory_max("\"512m\""), uint64_t{512} << 20);
  EXPECT_EQ(*memory_max("\"2G\""), uint64_t{2} << 30);
  EXPECT_EQ(*memory_max("\"3T\""), uint64_t{3} << 40);
  for (const char* bad : {"\"\"", "\"M\"", "\"1.5G\"", "\"12MB\"", "\" 5M\"",
                          "\"0x100000\"", "\"99999999999999999999\"",
                          "\"5000000T\"", "\"1023K\""}) {
    EXPECT_FALSE(memory_max(bad).ok()) << bad;
  }
}

TEST(ParseConfigTest, TcpWithProxyIsPeekedAndAnyAddressIsSaid) {
  absl::StatusOr<Config> parsed = ParseConfig(R"(
[[listener]]
name = "db"
address = "[::1]:5432"
protocol = "tcp"
proxy_protocol = true

[[site]]
id = "a"
command = ["/bin/sh"]
default = true
)",
                                              "t.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(IsPeeked(parsed->listeners[0]));
  EXPECT_TRUE(parsed->listeners[0].v6only);
  EXPECT_NE(DescribeConfig(*parsed).find(
                "  listener db: [::1]:5432 tcp, proxy_protocol from any "
                "address (no proxy_protocol_from), IPv6 only\n"),
            std::string::npos)
      << DescribeConfig(*parsed);
}

std::string WithCommand(const std::string& command) {
  return R"(
[[listener]]
name = "http"
address = "127.0.0.1:0"
protocol = "http"

[[site]]
id = "a"
command = [)" + command + "]\n";
}

// Workers are exec'ed without a PATH search, so a bare name is resolved at
// load: "sh" becomes the absolute path PATH gives.
TEST(ParseConfigTest, ResolvesBareCommandInPath) {
  absl::StatusOr<Config> parsed = ParseConfig(WithCommand(R"("sh", "-c")"),
                                              "t.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  const std::string& program = parsed->sites[0].command[0];
  EXPECT_EQ(program.front(), '/');
  EXPECT_EQ(program.substr(program.rfind('/')), "/sh");
  EXPECT_EQ(parsed->sites[0].command[1], "-c");
}

TEST(ParseConfigTest, RejectsUnknownBareCommandAndRelativePath) {
  absl::StatusOr<Config> missing =
      ParseConfig(WithCommand(R"("no-such-ddv-program")"), "t.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "t.toml:9:12: command[0] \"no-such-ddv-program\" was not found "
            "in PATH");
  absl::StatusOr<Config> relative =
      ParseConfig(WithCommand(R"("bin/ddv_hello")"), "t.toml");
  ASSERT_FALSE(relative.ok());
  EXPECT_NE(relative.status().message().find(
                "must be an absolute path or a bare name found in PATH"),
            absl::string_view::npos)
      << relative.status();
}

TEST(ParseConfigTest, DescribeConfigSummarises) {
  absl::StatusOr<Config> parsed = ParseConfig(kFull, "full.toml");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(DescribeConfig(*parsed),
            "config full.toml: 3 listeners, 3 sites; handoff pidfd, control "
            "socket /tmp/ddv-test/control.sock mode 0660 group root; "
            "metrics on 127.0.0.1:9150\n"
            "  listener http: 0.0.0.0:80 http, default_site fallback, "
            "access_log /var/log/ddv/access.log (logfmt, sample 0.25)\n"
            "  listener https: [::]:443 tls, proxy_protocol from 10.0.0.0/8 "
            "::1/128 192.0.2.0/24, IPv6 and IPv4\n"
            "  listener db: 127.0.0.1:5432 tcp\n"
            "  site a: 2 processes, listeners http https, hosts "
            "a.example.com *.a.example.com, claimable "
            "*.users.a.example.com b.example.net, may claim default, any "
            "host (strict_host off)\n"
            "  site acme: 1 process, listeners https, hosts a.example.com, "
            "alpn acme-tls/1\n"
            "  site fallback: 1 process, listeners all, hosts none, "
            "default\n");
}

TEST(ParseConfigTest, NamesProtocolsAndHandoffModes) {
  EXPECT_EQ(ProtocolName(Protocol::kHttp), "http");
  EXPECT_EQ(ProtocolName(Protocol::kTls), "tls");
  EXPECT_EQ(ProtocolName(Protocol::kTcp), "tcp");
  EXPECT_EQ(HandoffModeName(HandoffMode::kScmRights), "scm_rights");
  EXPECT_EQ(HandoffModeName(HandoffMode::kPidfd), "pidfd");
}

// Configs that must load: the corner cases of the cross checks.
struct ValidCase {
  const char* name;
  const char* toml;
};

class ParseConfigValidTest : public testing::TestWithParam<ValidCase> {};

TEST_P(ParseConfigValidTest, Loads) {
  absl::StatusOr<Config> parsed = ParseConfig(GetParam().toml, "t.toml");
  EXPECT_TRUE(parsed.ok()) << parsed.status();
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseConfigValidTest,
    testing::Values(ValidCase{"SameHostOnDisjointListeners", R"(
[[listener]]
name = "one"
address = "127.0.0.1:8001"
protocol = "http"
[[listener]]
name = "two"
address = "127.0.0.1:8002"
protocol = "http"
[[site]]
id = "a"
command = ["/bin/sh"]
hosts = ["x.example"]
listeners = ["one"]
[[site]]
id = "b"
command = ["/bin/sh"]
hosts = ["x.example"]
listeners = ["two"]
)"},
                    ValidCase{"SameHostDifferentAlpn", R"(
[[listener]]
name = "tls"
address = "127.0.0.1:8443"
protocol = "tls"
[[site]]
id = "a"
command = ["/bin/sh"]
hosts = ["x.example"]
[[site]]
id = "acme"
command = ["/bin/sh"]
hosts = ["x.example"]
alpn = ["acme-tls/1"]
)"},
                    ValidCase{"TcpListenerServedByDefaultSite", R"(
[[listener]]
name = "db"
address = "127.0.0.1:5432"
protocol = "tcp"
[[site]]
id = "pg"
command = ["/bin/sh"]
default = true
)"},
                    ValidCase{"TwoListenersOnPortZero", R"(
[[listener]]
name = "one"
address = "127.0.0.1:0"
protocol = "http"
[[listener]]
name = "two"
address = "127.0.0.1:0"
protocol = "tls"
[[site]]
id = "a"
command = ["/bin/sh"]
)"},
                    ValidCase{"WildcardAndApexAreDifferentHosts", R"(
[[listener]]
name = "http"
address = "127.0.0.1:80"
protocol = "http"
[[site]]
id = "a"
command = ["/bin/sh"]
hosts = ["example.com"]
[[site]]
id = "b"
command = ["/bin/sh"]
hosts = ["*.example.com"]
)"},
                    ValidCase{"InlineTablesAndSubTables", R"(
listener = [{ name = "http", address = "127.0.0.1:80", protocol = "http" }]
[[site]]
id = "a.b_c-1"
command = ["/bin/sh"]
[site.env]
X = "1"
)"}),
    [](const testing::TestParamInfo<ValidCase>& info) {
      return std::string(info.param.name);
    });

TEST(LoadConfigFileTest, LoadsAFile) {
  absl::StatusOr<Config> loaded =
      LoadConfigFile("tests/config/testdata/valid.toml");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->path, "tests/config/testdata/valid.toml");
  ASSERT_EQ(loaded->sites.size(), 3u);
  EXPECT_EQ(loaded->sites[0].id, "a");
}

TEST(LoadConfigFileTest, NamesThePathAsGiven) {
  absl::StatusOr<Config> loaded =
      LoadConfigFile("./tests/config/testdata/bad_processes.toml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().message(),
            "./tests/config/testdata/bad_processes.toml:9:13: processes must "
            "be between 1 and 1024, got 0");
}

TEST(LoadConfigFileTest, MissingFileIsNotFound) {
  absl::StatusOr<Config> loaded =
      LoadConfigFile("tests/config/testdata/no-such.toml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loaded.status().message(),
            "open() failed while reading config "
            "\"tests/config/testdata/no-such.toml\": No such file or "
            "directory (errno 2)");
}

}  // namespace
}  // namespace config
}  // namespace ddv
