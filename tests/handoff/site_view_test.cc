// Site view parts: a view survives encode + reassembly whole, however small
// the parts; parts out of order, of another version or with a bad pattern
// are refused, and a part 0 always starts over (a new master).
#include "src/handoff/site_view.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ddv {
namespace handoff {
namespace {

using nlohmann::json;

SiteView BigView(int hosts_per_listener) {
  SiteView view;
  view.master = "1234-abcdef";
  view.version = 7;
  view.strict = true;
  for (uint32_t l = 0; l < 3; ++l) {
    SiteViewListener listener;
    listener.index = l * 2;
    listener.address = l == 2 ? absl::StrCat("[::]:", 8080 + l)
                              : absl::StrCat("127.0.0.1:", 8080 + l);
    listener.retired = l == 1;
    listener.v6only = l == 2;
    listener.hosts.is_default = l == 2;
    for (int h = 0; h < hosts_per_listener; ++h) {
      listener.hosts.own.push_back(absl::StrCat("own", h, ".l", l, ".test"));
      listener.hosts.others.push_back(absl::StrCat("*.o", h, ".test"));
    }
    view.listeners.push_back(listener);
  }
  return view;
}

std::optional<SiteView> Reassemble(const std::vector<json>& parts) {
  SiteViewAssembler assembler;
  std::optional<SiteView> whole;
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::StatusOr<std::optional<SiteView>> got = assembler.Add(parts[i]);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return std::nullopt;
    EXPECT_EQ(got->has_value(), i + 1 == parts.size()) << "part " << i;
    if (got->has_value()) whole = **got;
  }
  return whole;
}

TEST(SiteViewTest, OnePartRoundTrip) {
  SiteView view = BigView(3);
  std::vector<json> parts = EncodeSiteView(view);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0]["last"], true);
  std::optional<SiteView> back = Reassemble(parts);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, view);
}

TEST(SiteViewTest, ManySmallPartsRoundTrip) {
  SiteView view = BigView(400);
  for (size_t budget : {size_t{1024}, size_t{4096}, size_t{30000}}) {
    std::vector<json> parts = EncodeSiteView(view, budget);
    EXPECT_GT(parts.size(), 1u) << budget;
    for (const json& part : parts) {
      EXPECT_LE(part.dump().size(), budget);
    }
    std::optional<SiteView> back = Reassemble(parts);
    ASSERT_TRUE(back.has_value()) << budget;
    EXPECT_EQ(*back, view) << budget;
  }
}

TEST(SiteViewTest, DefaultBudgetFitsAFrame) {
  // 20000 names per listener: about 1 MiB of view.
  SiteView view = BigView(20000);
  std::vector<json> parts = EncodeSiteView(view);
  EXPECT_GT(parts.size(), 5u);
  for (const json& part : parts) {
    EXPECT_LE(part.dump().size(), kMaxSiteViewPartBytes);
  }
  EXPECT_EQ(*Reassemble(parts), view);
}

TEST(SiteViewTest, EmptyViewIsOnePart) {
  SiteView view;
  view.master = "m";
  view.version = 1;
  view.strict = false;
  std::vector<json> parts = EncodeSiteView(view);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(*Reassemble(parts), view);
}

TEST(SiteViewTest, OutOfOrderAndMixedVersionsAreRefused) {
  SiteView view = BigView(400);
  std::vector<json> parts = EncodeSiteView(view, 4096);
  ASSERT_GT(parts.size(), 3u);
  {
    SiteViewAssembler assembler;
    ASSERT_TRUE(assembler.Add(parts[0]).ok());
    absl::StatusOr<std::optional<SiteView>> skipped = assembler.Add(parts[2]);
    EXPECT_FALSE(skipped.ok());
    EXPECT_NE(skipped.status().message().find("out of order"),
              std::string::npos);
    // Nothing more is taken until a part 0.
    EXPECT_FALSE(assembler.Add(parts[3]).ok());
  }
  {
    SiteViewAssembler assembler;
    ASSERT_TRUE(assembler.Add(parts[0]).ok());
    json other = parts[1];
    other["version"] = 8;
    EXPECT_FALSE(assembler.Add(other).ok());
  }
  {
    SiteViewAssembler assembler;
    ASSERT_TRUE(assembler.Add(parts[0]).ok());
    json other = parts[1];
    other["master"] = "another";
    EXPECT_FALSE(assembler.Add(other).ok());
  }
  {
    // A part 0 drops an unfinished view: a new master starts over.
    SiteViewAssembler assembler;
    ASSERT_TRUE(assembler.Add(parts[0]).ok());
    ASSERT_TRUE(assembler.Add(parts[1]).ok());
    std::optional<SiteView> whole;
    for (const json& part : parts) {
      absl::StatusOr<std::optional<SiteView>> got = assembler.Add(part);
      ASSERT_TRUE(got.ok()) << got.status();
      if (got->has_value()) whole = **got;
    }
    ASSERT_TRUE(whole.has_value());
    EXPECT_EQ(*whole, view);
  }
  {
    SiteViewAssembler assembler;
    EXPECT_FALSE(assembler.Add(parts[1]).ok());  // no part 0 yet
  }
}

TEST(SiteViewTest, MalformedPartsAreRefused) {
  json good = EncodeSiteView(BigView(2))[0];
  std::vector<std::pair<std::string, json>> bad;
  auto with = [&](const std::string& name, auto edit) {
    json part = good;
    edit(part);
    bad.emplace_back(name, part);
  };
  with("not an object", [](json& p) { p = json::array(); });
  with("no part", [](json& p) { p.erase("part"); });
  with("version a string", [](json& p) { p["version"] = "7"; });
  with("no master", [](json& p) { p.erase("master"); });
  with("empty master", [](json& p) { p["master"] = ""; });
  with("master a number", [](json& p) { p["master"] = 5; });
  with("negative version", [](json& p) { p["version"] = -1; });
  with("no last", [](json& p) { p.erase("last"); });
  with("strict a number", [](json& p) { p["strict"] = 1; });
  with("listeners an object", [](json& p) { p["listeners"] = json::object(); });
  with("listener without index",
       [](json& p) { p["listeners"][0].erase("index"); });
  with("index too big",
       [](json& p) { p["listeners"][0]["index"] = 1ull << 33; });
  with("address a number", [](json& p) { p["listeners"][0]["address"] = 1; });
  with("own not strings", [](json& p) { p["listeners"][0]["own"] = {1, 2}; });
  with("others missing", [](json& p) { p["listeners"][0].erase("others"); });
  with("pattern not normal",
       [](json& p) { p["listeners"][0]["own"][0] = "A.test"; });
  with("pattern with a port",
       [](json& p) { p["listeners"][0]["others"][0] = "a.test:80"; });
  with("bare star", [](json& p) { p["listeners"][0]["others"][0] = "*"; });
  with("v6only a string",
       [](json& p) { p["listeners"][0]["v6only"] = "true"; });
  with("report interval 0", [](json& p) { p["connections_report_ms"] = 0; });
  with("report interval over a minute",
       [](json& p) { p["connections_report_ms"] = 60001; });
  with("report interval a string",
       [](json& p) { p["connections_report_ms"] = "10"; });
  for (const auto& [name, part] : bad) {
    SiteViewAssembler assembler;
    absl::StatusOr<std::optional<SiteView>> got = assembler.Add(part);
    EXPECT_FALSE(got.ok()) << name;
    EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << name;
  }
  // The good one still goes through.
  SiteViewAssembler assembler;
  absl::StatusOr<std::optional<SiteView>> got = assembler.Add(good);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->has_value());
}

// An older master's view has no v6only: still a view, its listeners dual
// stack (false) as they were taken to be.
TEST(SiteViewTest, ViewWithoutV6onlyIsDecoded) {
  SiteView view = BigView(1);
  json part = EncodeSiteView(view)[0];
  ASSERT_EQ(part["listeners"][2]["v6only"], true);
  for (json& listener : part["listeners"]) listener.erase("v6only");
  SiteViewAssembler assembler;
  absl::StatusOr<std::optional<SiteView>> got = assembler.Add(part);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  for (SiteViewListener& listener : view.listeners) listener.v6only = false;
  EXPECT_EQ(**got, view);
}

// The report interval travels; an older master's view has none (10 ms, as
// workers reported before views said).
TEST(SiteViewTest, ReportIntervalTravelsAndDefaults) {
  SiteView view = BigView(1);
  view.connections_report_ms = 1000;
  std::vector<json> parts = EncodeSiteView(view);
  EXPECT_EQ(parts[0]["connections_report_ms"], 1000);
  std::optional<SiteView> back = Reassemble(parts);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->connections_report_ms, 1000u);
  parts[0].erase("connections_report_ms");
  back = Reassemble(parts);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->connections_report_ms, kDefaultConnectionsReportMs);
}

}  // namespace
}  // namespace handoff
}  // namespace ddv
