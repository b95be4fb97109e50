#include "daemon/events.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

namespace lanegate {
namespace {

Config testConfig() {
  Config c;
  c.site = "pnv";
  c.lane = "l1";
  return c;
}

TEST(Events, TopicFollowsContract5) {
  EXPECT_EQ(laneTopic(testConfig(), "alerts"), "lanegate/v1/pnv/l1/alerts");
}

TEST(Events, IdsAreUuidV4AndDistinct) {
  std::set<std::string> ids;
  const std::regex uuid("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  for (int i = 0; i < 1000; ++i) {
    const auto id = newEventId();
    EXPECT_TRUE(std::regex_match(id, uuid)) << id;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), 1000u);
}

// The envelope itself is lane/payloads.h's (tests/unit/lane/payloads_test.cpp).
TEST(Events, TestAlertIsFromTheDaemonOfThisLane) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::milliseconds(1'700'000'000'123));
  const auto e = nlohmann::json::parse(makeTestAlert(
      identityOf(testConfig()), RenderInfo{42, "abc", "00ff00ff00ff00ff00ff00ff00ff00ff"}, t));
  EXPECT_EQ(e["id"], "abc");
  EXPECT_EQ(e["seq"], 42);
  EXPECT_EQ(e["time"], "2023-11-14T22:13:20.123Z") << "when it was asked for";
  EXPECT_EQ(e["dataschema"], "https://lanegate.org/schemas/v1/test-alert-data.schema.json");
  EXPECT_EQ(e["data"]["ack_token"], "00ff00ff00ff00ff00ff00ff00ff00ff");
  EXPECT_FALSE(e.contains("subject"));
  EXPECT_EQ(e["type"], "org.lanegate.test");
  EXPECT_EQ(e["source"], "lanegate://pnv/l1/lanegated");
  EXPECT_EQ(e["data"]["site"], "pnv");
  EXPECT_EQ(e["data"]["lane"], "l1");
}

}  // namespace
}  // namespace lanegate
