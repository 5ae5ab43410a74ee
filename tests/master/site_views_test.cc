// BuildSiteViews: every listener slot with routes, in the master's
// numbering, with what each site needs there (a tcp listener gives its
// default site everything, a retired one keeps its old table's answer), and
// SiteViewBook: versions move only for sites whose view changed, and a
// worker process gets each version once.
#include "src/master/site_views.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/master/routes_from_config.h"

namespace ddv {
namespace master {
namespace {

using Strings = std::vector<std::string>;

config::Config TwoSites(Strings a_hosts) {
  config::Config config;
  for (auto [name, protocol] :
       {std::pair{"http", config::Protocol::kHttp},
        std::pair{"https", config::Protocol::kTls},
        std::pair{"raw", config::Protocol::kTcp}}) {
    config::ListenerConfig listener;
    listener.name = name;
    listener.protocol = protocol;
    config.listeners.push_back(listener);
  }
  config.listeners[0].default_site = "d";
  config.listeners[2].default_site = "a";
  config::SiteConfig a;
  a.id = "a";
  a.hosts = a_hosts;
  config::SiteConfig b;
  b.id = "b";
  b.hosts = {"b.test"};
  b.strict_host = false;
  config::SiteConfig d;
  d.id = "d";
  d.listeners = {"http"};
  config.sites = {a, b, d};
  return config;
}

TEST(SiteViewsTest, ViewsPerSiteAndListener) {
  config::Config old_config = TwoSites({"a.test"});
  config::Config config = TwoSites({"*.test"});
  auto old_routes = RoutesFromConfig(old_config);
  auto routes = RoutesFromConfig(config);
  ASSERT_TRUE(old_routes.ok() && routes.ok());
  std::vector<ListenerRoutes> slots = {
      {0, "127.0.0.1:80", false, config::Protocol::kHttp, routes->get(), 0},
      {1, "127.0.0.1:443", false, config::Protocol::kTls, routes->get(), 1},
      {2, "[::]:9", false, config::Protocol::kTcp, routes->get(), 2, true},
      // A listener a reload replaced: its connections keep its old table.
      {3, "127.0.0.1:81", true, config::Protocol::kHttp, old_routes->get(), 0},
      // One whose routes were released: nothing routes there any more.
      {4, "127.0.0.1:82", true, config::Protocol::kHttp, nullptr, 0},
  };
  std::vector<handoff::SiteView> views = BuildSiteViews(config, slots);
  ASSERT_EQ(views.size(), 3u);

  const handoff::SiteView& a = views[0];
  EXPECT_TRUE(a.strict);
  ASSERT_EQ(a.listeners.size(), 4u);
  EXPECT_EQ(a.listeners[0].index, 0u);
  EXPECT_EQ(a.listeners[0].address, "127.0.0.1:80");
  EXPECT_FALSE(a.listeners[0].retired);
  EXPECT_FALSE(a.listeners[0].hosts.is_default);
  EXPECT_EQ(a.listeners[0].hosts.own, Strings{"*.test"});
  EXPECT_EQ(a.listeners[0].hosts.others, Strings{"b.test"});
  // raw: nothing is peeked, a gets every connection.
  EXPECT_EQ(a.listeners[2].index, 2u);
  EXPECT_TRUE(a.listeners[2].v6only);
  EXPECT_FALSE(a.listeners[0].v6only);
  EXPECT_TRUE(a.listeners[2].hosts.is_default);
  EXPECT_TRUE(a.listeners[2].hosts.own.empty());
  EXPECT_TRUE(a.listeners[2].hosts.others.empty());
  EXPECT_EQ(a.listeners[3].index, 3u);
  EXPECT_TRUE(a.listeners[3].retired);
  EXPECT_EQ(a.listeners[3].hosts.own, Strings{"a.test"});
  EXPECT_TRUE(a.listeners[3].hosts.others.empty());

  EXPECT_FALSE(views[1].strict);  // b: strict_host = false
  EXPECT_FALSE(views[1].listeners[2].hosts.is_default);

  // d, http's default: told of every other name there; on https it has
  // nothing (it does not serve it), so everything there is misdirected.
  const handoff::SiteView& d = views[2];
  EXPECT_TRUE(d.listeners[0].hosts.is_default);
  EXPECT_EQ(d.listeners[0].hosts.others, (Strings{"*.test", "b.test"}));
  EXPECT_FALSE(d.listeners[1].hosts.is_default);
  EXPECT_TRUE(d.listeners[1].hosts.own.empty());

  // No site has max_connections: reports once a second.
  for (const handoff::SiteView& view : views) {
    EXPECT_EQ(view.connections_report_ms, kUncappedConnectionsReportMs);
  }
  // With it, the master counts them: every 10 ms.
  config.sites[1].max_connections = 100;
  views = BuildSiteViews(config, slots);
  EXPECT_EQ(views[0].connections_report_ms, kUncappedConnectionsReportMs);
  EXPECT_EQ(views[1].connections_report_ms,
            handoff::kDefaultConnectionsReportMs);
}

TEST(SiteViewsTest, BookVersionsAndSends) {
  auto routes = RoutesFromConfig(TwoSites({"a.test"}));
  ASSERT_TRUE(routes.ok());
  std::vector<ListenerRoutes> slots = {
      {0, "127.0.0.1:80", false, config::Protocol::kHttp, routes->get(), 0}};
  SiteViewBook book;
  ASSERT_TRUE(book.Update(BuildSiteViews(TwoSites({"a.test"}), slots)));
  ASSERT_EQ(book.sites(), 3);
  const uint64_t a1 = book.view(0).version, b1 = book.view(1).version;
  EXPECT_NE(a1, 0u);
  EXPECT_NE(a1, b1);
  ASSERT_EQ(book.parts(0).size(), 1u);
  EXPECT_NE(book.parts(0)[0].find("\"a.test\""), std::string::npos);

  EXPECT_TRUE(book.NeedsSend(5, 1, 0));
  book.MarkSent(5, 1, 0);
  EXPECT_FALSE(book.NeedsSend(5, 1, 0));
  EXPECT_TRUE(book.NeedsSend(5, 2, 0));  // a new process in the slot
  EXPECT_TRUE(book.NeedsSend(3, 1, 0));  // another worker
  EXPECT_FALSE(book.NeedsSend(5, 1, 9));  // no such site

  // The same views again: nothing changes, nobody needs a send.
  EXPECT_FALSE(book.Update(BuildSiteViews(TwoSites({"a.test"}), slots)));
  EXPECT_EQ(book.view(0).version, a1);
  EXPECT_FALSE(book.NeedsSend(5, 1, 0));

  // a's hosts change: only a's version moves.
  auto wider = RoutesFromConfig(TwoSites({"*.test"}));
  ASSERT_TRUE(wider.ok());
  slots[0].routes = wider->get();
  EXPECT_TRUE(book.Update(BuildSiteViews(TwoSites({"*.test"}), slots)));
  EXPECT_GT(book.view(0).version, a1);
  EXPECT_EQ(book.view(1).version, b1);
  EXPECT_TRUE(book.NeedsSend(5, 1, 0));
}

}  // namespace
}  // namespace master
}  // namespace ddv
