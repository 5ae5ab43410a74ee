// What a reload and update_server_conf change, decided without a master:
// site slots keep their indexes (removed sites stay as empty slots, new ones
// are appended), process counts, rolling restarts and certificate re-reads
// are flagged only when they apply, and listener changes are refused.
#include "src/master/config_apply.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

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
  config::ListenerConfig http;
  http.name = "http";
  http.address = "0.0.0.0:80";
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

  // A removed TLS site has no workers left to tell.
  config::Config loaded = running;
  loaded.sites.erase(loaded.sites.begin());
  plan = PlanReload(running, loaded);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->sites[0].removed);
  EXPECT_FALSE(plan->sites[0].reread_certificates);
}

TEST(PlanReloadTest, ListenerChangesNeedARestart) {
  config::Config added = Running();
  added.listeners.push_back(added.listeners[0]);
  added.listeners.back().name = "https";
  EXPECT_EQ(PlanReload(Running(), added).status().code(),
            absl::StatusCode::kFailedPrecondition);

  using Edit = void (*)(config::ListenerConfig&);
  for (Edit edit : std::vector<Edit>{
           [](config::ListenerConfig& l) { l.name = "web"; },
           [](config::ListenerConfig& l) { l.address = "0.0.0.0:8080"; },
           [](config::ListenerConfig& l) {
             l.protocol = config::Protocol::kTls;
           },
           [](config::ListenerConfig& l) { l.proxy_protocol = true; }}) {
    config::Config loaded = Running();
    edit(loaded.listeners[0]);
    absl::StatusOr<ReloadPlan> plan = PlanReload(Running(), loaded);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(plan.status().message(), HasSubstr("restart ddv_master"));
  }
  // The default site is no listener change.
  config::Config loaded = Running();
  loaded.listeners[0].default_site = "c";
  EXPECT_TRUE(PlanReload(Running(), loaded).ok());
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
  config::Config running = Running();
  ApplyOverrides(overrides, &running);
  EXPECT_EQ(running.master.control_socket, "/tmp/c.sock");
  EXPECT_EQ(running.master.handoff, config::HandoffMode::kPidfd);

  config::Config file = Running();
  file.sites[1].processes = 3;
  EXPECT_FALSE(PlanReload(running, file).ok()) << "the file alone differs";
  ApplyOverrides(overrides, &file);
  absl::StatusOr<ReloadPlan> plan = PlanReload(running, file);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->next.master.control_socket, "/tmp/c.sock");
  EXPECT_EQ(plan->next.master.handoff, config::HandoffMode::kPidfd);
  EXPECT_TRUE(plan->sites[1].processes_changed);

  // No overrides: the file's values stand.
  config::Config untouched = Running();
  ApplyOverrides(MasterOverrides(), &untouched);
  EXPECT_EQ(untouched.master.control_socket, "/run/ddv/control.sock");
  EXPECT_EQ(untouched.master.handoff, config::HandoffMode::kScmRights);
}

TEST(ApplyServerConfUpdateTest, AddsNormalisedHostsOnce) {
  absl::StatusOr<config::Config> next = ApplyServerConfUpdate(
      Running(), 2,
      R"({"add_hosts": ["C.Example.com.", "*.c.example.com", "c.example.com"]})");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(next->sites[2].hosts,
              ElementsAre("c.example.com", "*.c.example.com"));
  EXPECT_THAT(next->sites[0].hosts, ElementsAre("a.example.com"));
}

TEST(ApplyServerConfUpdateTest, RefusesAHostOfAnotherSite) {
  absl::StatusOr<config::Config> next = ApplyServerConfUpdate(
      Running(), 2, R"({"add_hosts": ["A.example.com"]})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(next.status().message(), HasSubstr("served by site \"a\""));
  // Its own host again is fine.
  EXPECT_TRUE(
      ApplyServerConfUpdate(Running(), 0, R"({"add_hosts": ["a.example.com"]})")
          .ok());
}

TEST(ApplyServerConfUpdateTest, DefaultOnlyWhenNobodyElseHoldsIt) {
  absl::StatusOr<config::Config> next =
      ApplyServerConfUpdate(Running(), 1, R"({"default": true})");
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->sites[1].is_default);
  next = ApplyServerConfUpdate(*next, 2, R"({"default": true})");
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(next.status().message(), HasSubstr("site \"b\""));
}

TEST(ApplyServerConfUpdateTest, ProcessesWithinTheConfigBounds) {
  absl::StatusOr<config::Config> next =
      ApplyServerConfUpdate(Running(), 0, R"({"processes": 7})");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->sites[0].processes, 7);
  for (const char* body : {R"({"processes": 0})", R"({"processes": 1025})",
                           R"({"processes": "3"})"}) {
    EXPECT_EQ(ApplyServerConfUpdate(Running(), 0, body).status().code(),
              absl::StatusCode::kInvalidArgument)
        << body;
  }
}

TEST(ApplyServerConfUpdateTest, RefusesWhatItDoesNotKnowAndChangesNothing) {
  for (const char* body :
       {"not json", "[1]", R"({"hosts": ["x.example.com"]})",
        R"({"add_hosts": [3]})", R"({"add_hosts": ["bad host!"]})",
        R"({"default": "yes"})"}) {
    absl::StatusOr<config::Config> next =
        ApplyServerConfUpdate(Running(), 0, body);
    EXPECT_EQ(next.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
  EXPECT_EQ(ApplyServerConfUpdate(Running(), 9, "{}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace master
}  // namespace ddv
