// What a reload and update_server_conf change, decided without a master:
// site slots keep their indexes (removed sites stay as empty slots, new ones
// are appended), process counts, rolling restarts and certificate re-reads
// are flagged only when they apply; which listeners go on, take over a
// running socket or need a new one; what a worker may claim
// (claimable_hosts, may_claim_default, other sites' names and wildcards)
// and which claims a reload keeps.
#include "src/master/config_apply.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "src/base/ip_network.h"
#include "src/base/socket_address.h"

namespace ddv {
namespace master {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

config::SiteConfig Site(const std::string& id, int processes,
                        std::vector<std::string> hosts = {}) {
  config::SiteConfig site;
  site.id = id;
  site.command = {"/usr/bin/" + id};
  site.processes = processes;
  site.hosts = std::move(hosts);
  return site;
}

config::Config Running() {
  config::Config config;
  config.path = "/etc/ddv.toml";
  absl::StatusOr<SocketAddress> address = ParseSocketAddress("0.0.0.0:80");
  config::ListenerConfig http;
  http.name = "http";
  http.address = "0.0.0.0:80";
  http.addr = address->addr;
  http.addr_len = address->addr_len;
  config.listeners.push_back(http);
  config.sites = {Site("a", 2, {"a.example.com"}),
                  Site("b", 1, {"b.example.com"}), Site("c", 1)};
  return config;
}

std::vector<std::string> Ids(const config::Config& config) {
  std::vector<std::string> ids;
  for (const config::SiteConfig& site : config.sites) ids.push_back(site.id);
  return ids;
}

TEST(PlanReloadTest, SameConfigChangesNothing) {
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), Running());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(Ids(plan->next), ElementsAre("a", "b", "c"));
  for (const SiteChange& change : plan->sites) {
    EXPECT_FALSE(change.added || change.removed || change.new_spec ||
                 change.processes_changed || change.rolling_restart ||
                 change.reread_certificates);
  }
}

TEST(PlanReloadTest, RemovedSiteKeepsItsIndexAsAnEmptySlot) {
  config::Config loaded = Running();
  loaded.sites.erase(loaded.sites.begin() + 1);  // b
  loaded.sites.push_back(Site("d", 3, {"d.example.com"}));
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  ASSERT_TRUE(plan.ok()) << plan.status();
  // Connections in flight hold site indexes: a, b, c stay where they were.
  EXPECT_THAT(Ids(plan->next), ElementsAre("a", "b", "c", "d"));
  const config::SiteConfig& b = plan->next.sites[1];
  EXPECT_EQ(b.processes, 0);
  EXPECT_THAT(b.hosts, IsEmpty());
  EXPECT_FALSE(b.is_default);
  EXPECT_TRUE(plan->sites[1].removed);
  EXPECT_TRUE(plan->sites[1].processes_changed);
  EXPECT_FALSE(plan->sites[1].rolling_restart);
  EXPECT_TRUE(plan->sites[3].added);
  EXPECT_EQ(plan->next.sites[3].processes, 3);
  EXPECT_FALSE(plan->sites[0].removed || plan->sites[0].added);
}

TEST(PlanReloadTest, RemovedSiteCanComeBackUnderItsOldIndex) {
  config::Config without_b = Running();
  without_b.sites.erase(without_b.sites.begin() + 1);
  absl::StatusOr<ReloadPlan> first = PlanReload(Running(), without_b);
  ASSERT_TRUE(first.ok());
  // Reloading the same file again removes nothing more.
  absl::StatusOr<ReloadPlan> again = PlanReload(first->next, without_b);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->sites[1].removed);
  EXPECT_FALSE(again->sites[1].processes_changed);

  absl::StatusOr<ReloadPlan> back = PlanReload(first->next, Running());
  ASSERT_TRUE(back.ok());
  EXPECT_THAT(Ids(back->next), ElementsAre("a", "b", "c"));
  EXPECT_FALSE(back->sites[1].added) << "same slot, not a new one";
  EXPECT_TRUE(back->sites[1].processes_changed);
  EXPECT_EQ(back->next.sites[1].processes, 1);
  EXPECT_THAT(back->next.sites[1].hosts, ElementsAre("b.example.com"));
}

TEST(PlanReloadTest, ProcessCountAloneIsNoRestart) {
  config::Config loaded = Running();
  loaded.sites[0].processes = 5;
  loaded.sites[2].processes = 1;
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->sites[0].processes_changed);
  EXPECT_FALSE(plan->sites[0].new_spec);
  EXPECT_FALSE(plan->sites[0].rolling_restart);
  EXPECT_FALSE(plan->sites[2].processes_changed);
}

TEST(PlanReloadTest, WhatAWorkerStartsWithMeansARollingRestart) {
  using Edit = void (*)(config::SiteConfig&);
  const std::vector<std::pair<const char*, Edit>> edits = {
      {"command", [](config::SiteConfig& s) { s.command.push_back("-v"); }},
      {"env",
       [](config::SiteConfig& s) {
         s.env.push_back({"K", "v"});
       }},
      {"user", [](config::SiteConfig& s) { s.user = "www"; }},
      {"group", [](config::SiteConfig& s) { s.group = "www"; }},
      {"log_output", [](config::SiteConfig& s) { s.log_output = "/l"; }},
      {"log_error", [](config::SiteConfig& s) { s.log_error = "/l"; }},
      {"log_all", [](config::SiteConfig& s) { s.log_all = "/l"; }},
      {"tls_cert", [](config::SiteConfig& s) { s.tls_cert = {"/c"}; }},
      {"tls_key", [](config::SiteConfig& s) { s.tls_key = {"/k"}; }},
  };
  for (const auto& [what, edit] : edits) {
    config::Config loaded = Running();
    edit(loaded.sites[0]);
    absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
    ASSERT_TRUE(plan.ok()) << what;
    EXPECT_TRUE(plan->sites[0].new_spec) << what;
    EXPECT_TRUE(plan->sites[0].rolling_restart) << what;
    EXPECT_FALSE(plan->sites[0].reread_certificates) << what;
    EXPECT_FALSE(plan->sites[1].new_spec) << what;
  }
  // Hosts and defaults go through the route table: no restart.
  config::Config loaded = Running();
  loaded.sites[0].hosts.push_back("*.a.example.com");
  loaded.sites[2].is_default = true;
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->sites[0].rolling_restart);
  EXPECT_FALSE(plan->sites[2].rolling_restart);
  EXPECT_THAT(plan->next.sites[0].hosts,
              ElementsAre("a.example.com", "*.a.example.com"));
}

TEST(PlanReloadTest, UnchangedCertificatePathsAreReRead) {
  config::Config running = Running();
  running.sites[0].tls_cert = {"/etc/a.crt"};
  running.sites[0].tls_key = {"/etc/a.key"};
  absl::StatusOr<ReloadPlan> plan = PlanReload(running, running);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->sites[0].reread_certificates);
  EXPECT_FALSE(plan->sites[1].reread_certificates) << "b has no TLS";

  // A Node app has no SIGHUP handler: it is not signalled (it would die).
  config::Config node = running;
  node.sites[0].runtime = config::Runtime::kNode;
  plan = PlanReload(node, node);
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->sites[0].reread_certificates);
  EXPECT_FALSE(plan->sites[0].rolling_restart);

  // A removed TLS site has no workers left to tell.
  config::Config loaded = running;
  loaded.sites.erase(loaded.sites.begin());
  plan = PlanReload(running, loaded);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->sites[0].removed);
  EXPECT_FALSE(plan->sites[0].reread_certificates);
}

config::ListenerConfig Listener(const std::string& name,
                                const std::string& address,
                                config::Protocol protocol =
                                    config::Protocol::kHttp) {
  config::ListenerConfig listener;
  listener.name = name;
  listener.address = address;
  absl::StatusOr<SocketAddress> parsed = ParseSocketAddress(address);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  listener.addr = parsed->addr;
  listener.addr_len = parsed->addr_len;
  listener.protocol = protocol;
  return listener;
}

// (keeps, socket_from) of each loaded listener.
std::vector<std::pair<int, int>> Sources(const ListenerPlan& plan) {
  std::vector<std::pair<int, int>> out;
  for (const ListenerChange& c : plan.next) {
    out.emplace_back(c.keeps, c.socket_from);
  }
  return out;
}

using Pair = std::pair<int, int>;

TEST(PlanListenersTest, UnchangedListenersGoOnAndDefaultSiteIsRoutingOnly) {
  std::vector<config::ListenerConfig> running = {
      Listener("http", "0.0.0.0:80"),
      Listener("https", "0.0.0.0:443", config::Protocol::kTls)};
  std::vector<config::ListenerConfig> loaded = running;
  loaded[0].default_site = "c";
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(0, 0), Pair(1, 1)));
  EXPECT_THAT(plan.retired, IsEmpty());
  EXPECT_THAT(plan.closed, IsEmpty());
  EXPECT_FALSE(plan.sockets_change);
  EXPECT_EQ(plan.binds(), 0);
}

TEST(PlanListenersTest, AddedListenerIsBoundAndRemovedOneClosed) {
  std::vector<config::ListenerConfig> running = {
      Listener("http", "0.0.0.0:80"), Listener("old", "0.0.0.0:81")};
  std::vector<config::ListenerConfig> loaded = {
      Listener("http", "0.0.0.0:80"), Listener("new", "0.0.0.0:82")};
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(0, 0), Pair(-1, -1)));
  EXPECT_EQ(plan.binds(), 1);
  EXPECT_THAT(plan.retired, ElementsAre(1));
  EXPECT_THAT(plan.closed, ElementsAre(1));
  EXPECT_TRUE(plan.sockets_change);
}

TEST(PlanListenersTest, ReAddressedListenerGetsANewSocketAndIndex) {
  std::vector<config::ListenerConfig> running = {
      Listener("http", "0.0.0.0:80")};
  std::vector<config::ListenerConfig> loaded = {
      Listener("http", "0.0.0.0:8080")};
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, -1)));
  EXPECT_THAT(plan.retired, ElementsAre(0));
  EXPECT_THAT(plan.closed, ElementsAre(0));
  EXPECT_TRUE(plan.sockets_change);
}

// Connections already accepted keep the protocol and PROXY expectation
// they were accepted under (the old index); the backlog is the new one's.
TEST(PlanListenersTest, ProtocolOrProxyChangeKeepsTheSocketUnderANewIndex) {
  std::vector<config::ListenerConfig> running = {
      Listener("web", "0.0.0.0:80")};
  for (config::Protocol protocol :
       {config::Protocol::kTls, config::Protocol::kTcp}) {
    std::vector<config::ListenerConfig> loaded = {
        Listener("web", "0.0.0.0:80", protocol)};
    const ListenerPlan plan = PlanListeners(running, loaded);
    EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, 0)));
    EXPECT_EQ(plan.next[0].defer_accept_changes,
              protocol == config::Protocol::kTcp);
    EXPECT_THAT(plan.retired, ElementsAre(0));
    EXPECT_THAT(plan.closed, IsEmpty());
    EXPECT_FALSE(plan.sockets_change);  // same name, same socket
  }
  std::vector<config::ListenerConfig> loaded = running;
  loaded[0].proxy_protocol = true;
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, 0)));
  EXPECT_FALSE(plan.next[0].defer_accept_changes);
}

TEST(PlanListenersTest, RenamedOrSwappedAddressesMoveSocketsNotBinds) {
  std::vector<config::ListenerConfig> running = {
      Listener("a", "127.0.0.1:81"), Listener("b", "127.0.0.1:82")};
  std::vector<config::ListenerConfig> renamed = {
      Listener("z", "127.0.0.1:81"), Listener("b", "127.0.0.1:82")};
  ListenerPlan plan = PlanListeners(running, renamed);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, 0), Pair(1, 1)));
  EXPECT_TRUE(plan.sockets_change);
  EXPECT_THAT(plan.closed, IsEmpty());

  std::vector<config::ListenerConfig> swapped = {
      Listener("a", "127.0.0.1:82"), Listener("b", "127.0.0.1:81")};
  plan = PlanListeners(running, swapped);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, 1), Pair(-1, 0)));
  EXPECT_EQ(plan.binds(), 0);
  EXPECT_THAT(plan.retired, ElementsAre(0, 1));
  EXPECT_THAT(plan.closed, IsEmpty());

  std::vector<config::ListenerConfig> reordered = {running[1], running[0]};
  plan = PlanListeners(running, reordered);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(1, 1), Pair(0, 0)));
  EXPECT_TRUE(plan.sockets_change);  // the watchdog's order follows
  EXPECT_THAT(plan.retired, IsEmpty());
}

// A bound socket's IPV6_V6ONLY is fixed: a changed v6only is a new socket
// (bound beside the old one, which is drained and closed).
TEST(PlanListenersTest, ChangedV6OnlyIsANewSocketAndTheOldOneCloses) {
  std::vector<config::ListenerConfig> running = {
      Listener("web", "[::]:80"), Listener("other", "127.0.0.1:81")};
  std::vector<config::ListenerConfig> loaded = running;
  loaded[0].v6only = false;
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, -1), Pair(1, 1)));
  EXPECT_EQ(plan.binds(), 1);
  EXPECT_THAT(plan.retired, ElementsAre(0));
  EXPECT_THAT(plan.closed, ElementsAre(0));
  EXPECT_TRUE(plan.sockets_change);
}

// proxy_protocol_from applies to the next connections, like default_site.
TEST(PlanListenersTest, TrustedProxyNetworksAreNoNewIndex) {
  std::vector<config::ListenerConfig> running = {Listener("web", "[::]:80")};
  running[0].proxy_protocol = true;
  std::vector<config::ListenerConfig> loaded = running;
  loaded[0].proxy_protocol_from.push_back(*IpNetwork::Parse("10.0.0.0/8"));
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(0, 0)));
  EXPECT_FALSE(plan.sockets_change);
}

// A `tcp` listener is peeked once it expects PROXY: TCP_DEFER_ACCEPT follows.
TEST(PlanListenersTest, TcpListenerThatExpectsProxyIsPeeked) {
  std::vector<config::ListenerConfig> running = {
      Listener("db", "127.0.0.1:5432", config::Protocol::kTcp)};
  std::vector<config::ListenerConfig> loaded = running;
  loaded[0].proxy_protocol = true;
  ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(-1, 0)));
  EXPECT_TRUE(plan.next[0].defer_accept_changes);
  plan = PlanListeners(loaded, running);
  EXPECT_TRUE(plan.next[0].defer_accept_changes);
}

// Port 0 is "any free port": only the same listener's socket is its own.
TEST(PlanListenersTest, PortZeroSocketsGoOnlyWithTheirName) {
  std::vector<config::ListenerConfig> running = {
      Listener("a", "127.0.0.1:0"), Listener("b", "127.0.0.1:0")};
  std::vector<config::ListenerConfig> loaded = {
      Listener("b", "127.0.0.1:0"), Listener("c", "127.0.0.1:0")};
  const ListenerPlan plan = PlanListeners(running, loaded);
  EXPECT_THAT(Sources(plan), ElementsAre(Pair(1, 1), Pair(-1, -1)));
  EXPECT_THAT(plan.closed, ElementsAre(0));
}

TEST(PlanReloadTest, ListenerChangesArePlannedNotRefused) {
  config::Config loaded = Running();
  loaded.listeners.push_back(Listener("https", "0.0.0.0:443"));
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->listeners.binds(), 1);
  EXPECT_EQ(plan->next.listeners.size(), 2u);
}

TEST(PlanReloadTest, HandoffAndControlSocketChangesNeedARestart) {
  config::Config loaded = Running();
  loaded.master.handoff = config::HandoffMode::kPidfd;
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("handoff changed from \"scm_rights\" to \"pidfd\"; "
                        "restart ddv_master to apply that"));

  loaded = Running();
  loaded.master.control_socket = "/run/other/control.sock";
  plan = PlanReload(Running(), loaded);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("control_socket changed from "
                        "\"/run/ddv/control.sock\" to "
                        "\"/run/other/control.sock\"; restart ddv_master to "
                        "apply that"));
}

TEST(PlanReloadTest, PeekSettingsApplyLive) {
  config::Config loaded = Running();
  loaded.master.peek_timeout_ms = 750;
  loaded.master.max_peek_bytes = 4096;
  absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->next.master.peek_timeout_ms, 750);
  EXPECT_EQ(plan->next.master.max_peek_bytes, 4096);
}

TEST(PlanReloadTest, CommandLineOverridesSurviveAReload) {
  // ddv_master --handoff=pidfd --control_socket=/tmp/c.sock: the running
  // config has them; the file, loaded again at reload, does not.
  MasterOverrides overrides;
  overrides.control_socket = "/tmp/c.sock";
  overrides.handoff = config::HandoffMode::kPidfd;
  overrides.metrics_address = "127.0.0.1:9150";
  config::Config running = Running();
  ApplyOverrides(overrides, &running);
  EXPECT_EQ(running.master.control_socket, "/tmp/c.sock");
  EXPECT_EQ(running.master.metrics_address, "127.0.0.1:9150");
  EXPECT_EQ(running.master.handoff, config::HandoffMode::kPidfd);

  config::Config file = Running();
  file.sites[1].processes = 3;
  EXPECT_FALSE(PlanReload(running, file).ok()) << "the file alone differs";
  ApplyOverrides(overrides, &file);
  absl::StatusOr<ReloadPlan> plan = PlanReload(running, file);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->next.master.control_socket, "/tmp/c.sock");
  EXPECT_EQ(plan->next.master.handoff, config::HandoffMode::kPidfd);
  EXPECT_EQ(plan->next.master.metrics_address, "127.0.0.1:9150");
  EXPECT_TRUE(plan->sites[1].processes_changed);

  // No overrides: the file's values stand.
  config::Config untouched = Running();
  ApplyOverrides(MasterOverrides(), &untouched);
  EXPECT_EQ(untouched.master.control_socket, "/run/ddv/control.sock");
  EXPECT_EQ(untouched.master.handoff, config::HandoffMode::kScmRights);
  EXPECT_EQ(untouched.master.metrics_address, "");
}

// The policy tests' world: site "a" may claim below users.a.example.com
// and one extra name; "victim" owns a wildcard and names below another
// domain; "c" may claim the default; "b" may claim nothing.
config::Config Claimable() {
  config::Config config = Running();
  config.sites[0].claimable_hosts = {"*.users.a.example.com", "extra.test",
                                     "*.victim.com", "*.other.com",
                                     "shop.other.com"};
  config.sites[2].may_claim_default = true;
  config::SiteConfig victim = Site("victim", 1,
                                   {"*.victim.com", "www.other.com",
                                    "*.deep.other.com"});
  config.sites.push_back(victim);
  return config;
}

Claimant Who(int site, int worker = 0, uint32_t generation = 1) {
  return Claimant{site, worker, worker, generation};
}

absl::StatusOr<ServerConfUpdate> Update(const config::Config& running,
                                        int site, absl::string_view body,
                                        const std::vector<Claim>& claims = {}) {
  return ApplyServerConfUpdate(running, claims, Who(site), body);
}

std::vector<std::string> Hosts(const std::vector<Claim>& claims) {
  std::vector<std::string> hosts;
  for (const Claim& c : claims) hosts.push_back(c.host);
  return hosts;
}

TEST(ApplyServerConfUpdateTest, ClaimsAreNormalisedKeptApartAndRecordedOnce) {
  absl::StatusOr<ServerConfUpdate> next = Update(
      Claimable(), 0,
      R"({"add_hosts": ["X.Users.A.Example.com.", "*.deep.users.a.example.com",
                        "x.users.a.example.com", "EXTRA.test"]})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(Hosts(next->claims),
              ElementsAre("x.users.a.example.com", "*.deep.users.a.example.com",
                          "extra.test"));
  for (const Claim& claim : next->claims) {
    EXPECT_EQ(claim.site, 0);
    EXPECT_EQ(claim.worker, 0);
    EXPECT_EQ(claim.generation, 1u);
  }
  // The config stays the file's: claims are routed through WithClaims.
  EXPECT_THAT(next->config.sites[0].hosts, ElementsAre("a.example.com"));
  EXPECT_THAT(WithClaims(next->config, next->claims).sites[0].hosts,
              ElementsAre("a.example.com", "x.users.a.example.com",
                          "*.deep.users.a.example.com", "extra.test"));
  // The same again from the same process adds nothing; from a sibling, a
  // claim of its own (the host stays while either lives).
  absl::StatusOr<ServerConfUpdate> again =
      Update(next->config, 0, R"({"add_hosts": ["extra.test"]})",
             next->claims);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->claims.size(), 3u);
  absl::StatusOr<ServerConfUpdate> sibling = ApplyServerConfUpdate(
      next->config, next->claims, Who(0, 1), R"({"add_hosts": ["extra.test"]})");
  ASSERT_TRUE(sibling.ok());
  ASSERT_EQ(sibling->claims.size(), 4u);
  EXPECT_EQ(sibling->claims.back().worker, 1);
  EXPECT_THAT(WithClaims(sibling->config, sibling->claims).sites[0].hosts,
              ElementsAre("a.example.com", "x.users.a.example.com",
                          "*.deep.users.a.example.com", "extra.test"));
}

TEST(ApplyServerConfUpdateTest, ItsOwnHostsNeedNoClaimableHosts) {
  absl::StatusOr<ServerConfUpdate> next =
      Update(Running(), 0, R"({"add_hosts": ["A.example.com."]})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(next->claims, IsEmpty()) << "nothing to route differently";
}

TEST(ApplyServerConfUpdateTest, RefusesWhatClaimableHostsDoesNotMatch) {
  // b lists no claimable_hosts: it may claim nothing beyond its config.
  absl::StatusOr<ServerConfUpdate> next =
      Update(Claimable(), 1, R"({"add_hosts": ["new.b.example.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(next.status().message(),
            "add_hosts: \"new.b.example.com\" is not in site \"b\"'s "
            "claimable_hosts (it has none)");
  // A wildcard matches below itself, not its apex, and not wider.
  for (const char* host : {"users.a.example.com", "*.a.example.com",
                           "x.a.example.com", "extra.test.evil"}) {
    next = Update(Claimable(), 0,
                  absl::StrCat(R"({"add_hosts": [")", host, R"("]})"));
    EXPECT_EQ(next.status().code(), absl::StatusCode::kPermissionDenied)
        << host;
    EXPECT_THAT(next.status().message(), HasSubstr(host));
    EXPECT_THAT(next.status().message(),
                HasSubstr("(\"*.users.a.example.com\", \"extra.test\","));
  }
}

TEST(ApplyServerConfUpdateTest, RefusesAHostAnotherSiteServes) {
  config::Config running = Claimable();
  running.sites[0].claimable_hosts.push_back("b.example.com");
  absl::StatusOr<ServerConfUpdate> next =
      Update(running, 0, R"({"add_hosts": ["B.Example.com."]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(next.status().message(),
            "add_hosts: \"b.example.com\" is served by site \"b\"");
  // Another site's run-time claim counts as much as its config.
  running.sites[2].claimable_hosts = {"extra.test"};
  absl::StatusOr<ServerConfUpdate> c_claims =
      Update(running, 2, R"({"add_hosts": ["extra.test"]})");
  ASSERT_TRUE(c_claims.ok()) << c_claims.status();
  next = Update(c_claims->config, 0, R"({"add_hosts": ["extra.test"]})",
                c_claims->claims);
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(next.status().message(), HasSubstr("served by site \"c\""));
}

TEST(ApplyServerConfUpdateTest, RefusesAHostUnderAnotherSitesWildcard) {
  // victim serves *.victim.com: a claim on a name below it, at any depth,
  // or on a narrower wildcard, would take names from it.
  for (const char* host :
       {"x.victim.com", "a.b.victim.com", "*.x.victim.com"}) {
    absl::StatusOr<ServerConfUpdate> next = Update(
        Claimable(), 0, absl::StrCat(R"({"add_hosts": [")", host, R"("]})"));
    EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists) << host;
    EXPECT_EQ(next.status().message(),
              absl::StrCat("add_hosts: \"", host,
                           "\" falls under site \"victim\"'s \"*.victim.com\""));
  }
  // Equal wildcards are the same host.
  absl::StatusOr<ServerConfUpdate> next =
      Update(Claimable(), 0, R"({"add_hosts": ["*.victim.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(next.status().message(), HasSubstr("served by site \"victim\""));
  // The apex is not under the wildcard; but a needs it in claimable_hosts.
  next = Update(Claimable(), 0, R"({"add_hosts": ["victim.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(ApplyServerConfUpdateTest, RefusesAWildcardOverAnotherSitesHost) {
  absl::StatusOr<ServerConfUpdate> next =
      Update(Claimable(), 0, R"({"add_hosts": ["*.other.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(next.status().message(),
            "add_hosts: \"*.other.com\" would cover site \"victim\"'s "
            "\"www.other.com\"");
  // Over a narrower wildcard of another site too.
  config::Config running = Claimable();
  running.sites[3].hosts = {"*.deep.other.com"};
  next = Update(running, 0, R"({"add_hosts": ["*.other.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(next.status().message(),
              HasSubstr("would cover site \"victim\"'s \"*.deep.other.com\""));
  // *.com covers every site's .com names.
  running = Claimable();
  running.sites[0].claimable_hosts.push_back("*.com");
  next = Update(running, 0, R"({"add_hosts": ["*.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  // A name beside the other site's, not under or over it, is fine.
  next = Update(Claimable(), 0, R"({"add_hosts": ["shop.other.com"]})");
  EXPECT_TRUE(next.ok()) << next.status();
}

TEST(ApplyServerConfUpdateTest, AllOrNothing) {
  absl::StatusOr<ServerConfUpdate> next = Update(
      Claimable(), 0,
      R"({"add_hosts": ["x.users.a.example.com", "x.victim.com"], "processes": 4})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(next.status().message(), HasSubstr("\"x.victim.com\""));
}

TEST(ApplyServerConfUpdateTest, DefaultOnlyWithMayClaimDefault) {
  // b may not: refused whoever holds the default.
  absl::StatusOr<ServerConfUpdate> next =
      Update(Claimable(), 1, R"({"default": true})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(next.status().message(),
            "default: site \"b\" may not claim the default (may_claim_default "
            "is false)");
  // c may, while nobody else holds it.
  next = Update(Claimable(), 2, R"({"default": true})");
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_EQ(next->claims.size(), 1u);
  EXPECT_TRUE(next->claims[0].is_default());
  EXPECT_FALSE(next->config.sites[2].is_default) << "the config's stays";
  EXPECT_TRUE(WithClaims(next->config, next->claims).sites[2].is_default);
  // Now held by c's claim: a, allowed to claim it, is refused.
  config::Config with_a = next->config;
  with_a.sites[0].may_claim_default = true;
  absl::StatusOr<ServerConfUpdate> a =
      Update(with_a, 0, R"({"default": true})", next->claims);
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(a.status().message(), HasSubstr("site \"c\" is the default"));
  // false drops the caller's claim only.
  absl::StatusOr<ServerConfUpdate> release =
      Update(next->config, 2, R"({"default": false})", next->claims);
  ASSERT_TRUE(release.ok());
  EXPECT_THAT(release->claims, IsEmpty());
}

TEST(ApplyServerConfUpdateTest, DefaultFalseNeverUndoesTheConfigs) {
  config::Config running = Running();
  running.sites[1].is_default = true;
  // The seed's apps send defaultListen: false with every update.
  absl::StatusOr<ServerConfUpdate> next = Update(
      running, 1, R"({"default": false, "add_hosts": ["b.example.com"]})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(WithClaims(next->config, next->claims).sites[1].is_default);
  // And true on a site the config makes the default needs no permission.
  EXPECT_TRUE(Update(running, 1, R"({"default": true})").ok());
}

TEST(ApplyServerConfUpdateTest, ProcessesWithinTheConfigBounds) {
  absl::StatusOr<ServerConfUpdate> next =
      Update(Running(), 0, R"({"processes": 7})");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->config.sites[0].processes, 7);
  for (const char* body : {R"({"processes": 0})", R"({"processes": 1025})",
                           R"({"processes": "3"})"}) {
    EXPECT_EQ(Update(Running(), 0, body).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
}

TEST(ApplyServerConfUpdateTest, RefusesWhatItDoesNotKnowAndChangesNothing) {
  for (const char* body :
       {"not json", "[1]", R"({"hosts": ["x.example.com"]})",
        R"({"add_hosts": [3]})", R"({"add_hosts": ["bad host!"]})",
        R"({"add_hosts": ["*"]})", R"({"add_hosts": ["a.*.example.com"]})",
        R"({"add_hosts": ["x.users.a.example.com:80"]})",
        R"({"default": "yes"})"}) {
    absl::StatusOr<ServerConfUpdate> next = Update(Claimable(), 0, body);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
  EXPECT_EQ(Update(Running(), 9, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// After a reload, each claim is checked against the new file.
TEST(RecheckClaimsTest, KeepsWhatTheNewConfigAllowsAndSaysWhyForTheRest) {
  absl::StatusOr<ServerConfUpdate> a = Update(
      Claimable(), 0,
      R"({"add_hosts": ["x.users.a.example.com", "extra.test",
                        "shop.other.com"]})");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<ServerConfUpdate> c =
      Update(a->config, 2, R"({"default": true})", a->claims);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->claims.size(), 4u);

  // Same file: everything stays.
  std::vector<DroppedClaim> dropped;
  EXPECT_EQ(RecheckClaims(Claimable(), c->claims, &dropped).size(), 4u);
  EXPECT_THAT(dropped, IsEmpty());

  // The new file: a no longer lists extra.test; victim now serves
  // *.other.com (shop.other.com falls under it); b became the default.
  config::Config next = Claimable();
  next.sites[0].claimable_hosts = {"*.users.a.example.com", "*.other.com"};
  next.sites[3].hosts = {"*.other.com"};
  next.sites[1].is_default = true;
  std::vector<Claim> kept = RecheckClaims(next, c->claims, &dropped);
  EXPECT_THAT(Hosts(kept), ElementsAre("x.users.a.example.com"));
  ASSERT_EQ(dropped.size(), 3u);
  EXPECT_EQ(dropped[0].claim.host, "extra.test");
  EXPECT_EQ(dropped[0].why.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(dropped[1].claim.host, "shop.other.com");
  EXPECT_THAT(dropped[1].why.message(),
              HasSubstr("falls under site \"victim\"'s \"*.other.com\""));
  EXPECT_TRUE(dropped[2].claim.is_default());
  EXPECT_THAT(dropped[2].why.message(), HasSubstr("site \"b\" is the default"));
}

TEST(RecheckClaimsTest, ClaimsOfARemovedSiteGo) {
  absl::StatusOr<ServerConfUpdate> a =
      Update(Claimable(), 0, R"({"add_hosts": ["extra.test"]})");
  ASSERT_TRUE(a.ok());
  config::Config without_a = Claimable();
  without_a.sites.erase(without_a.sites.begin());
  absl::StatusOr<ReloadPlan> plan = PlanReload(Claimable(), without_a);
  ASSERT_TRUE(plan.ok());
  std::vector<DroppedClaim> dropped;
  EXPECT_THAT(RecheckClaims(plan->next, a->claims, &dropped), IsEmpty());
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].why.message(), "site \"a\" was removed");
}

}  // namespace
}  // namespace master
}  // namespace ddv
