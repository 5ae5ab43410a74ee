// RoutesFromConfig: names in the config (a listener's default_site, a site's
// listeners) become the route table's indexes, and the table built from a
// config routes as the config says.
#include "src/master/routes_from_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ddv {
namespace master {
namespace {

using ::testing::ElementsAre;

config::Config Demo() {
  config::Config config;
  for (const char* name : {"http", "https", "raw"}) {
    config::ListenerConfig listener;
    listener.name = name;
    config.listeners.push_back(listener);
  }
  config.listeners[0].default_site = "fallback";
  config.listeners[2].default_site = "b";
  config::SiteConfig a;
  a.id = "a";
  a.hosts = {"a.example.com", "*.a.example.com"};
  a.listeners = {"https", "http"};
  config::SiteConfig b;
  b.id = "b";
  b.hosts = {"b.example.com"};
  config::SiteConfig fallback;
  fallback.id = "fallback";
  fallback.listeners = {"http"};
  config::SiteConfig acme;
  acme.id = "acme";
  acme.hosts = {"a.example.com"};
  acme.alpn = {"acme-tls/1"};
  acme.listeners = {"https"};
  config.sites = {a, b, fallback, acme};
  return config;
}

TEST(RouteSpecFromConfigTest, NamesBecomeIndexes) {
  const route::RouteTableSpec spec = RouteSpecFromConfig(Demo());
  EXPECT_THAT(spec.listener_names, ElementsAre("http", "https", "raw"));
  EXPECT_THAT(spec.listener_default_site, ElementsAre(2, -1, 1));
  ASSERT_EQ(spec.sites.size(), 4u);
  EXPECT_EQ(spec.sites[0].id, "a");
  EXPECT_THAT(spec.sites[0].listeners, ElementsAre(1, 0));
  EXPECT_THAT(spec.sites[1].listeners, ElementsAre()) << "every listener";
  EXPECT_THAT(spec.sites[3].alpn, ElementsAre("acme-tls/1"));
}

TEST(RoutesFromConfigTest, RoutesAsTheConfigSays) {
  absl::StatusOr<std::shared_ptr<const route::RouteTable>> routes =
      RoutesFromConfig(Demo());
  ASSERT_TRUE(routes.ok()) << routes.status();
  const route::RouteTable& table = **routes;
  EXPECT_EQ(table.Lookup(0, "x.a.example.com", {}).site, 0);
  EXPECT_EQ(table.Lookup(0, "nobody.example.com", {}).site, 2);
  EXPECT_EQ(table.Lookup(1, "nobody.example.com", {}).site, -1);
  EXPECT_EQ(table.Lookup(2, "", {}).site, 1);
  const absl::string_view acme[] = {"acme-tls/1"};
  EXPECT_EQ(table.Lookup(1, "a.example.com", acme).site, 3);
  EXPECT_EQ(table.Lookup(1, "a.example.com", {}).site, 0);
}

}  // namespace
}  // namespace master
}  // namespace ddv
