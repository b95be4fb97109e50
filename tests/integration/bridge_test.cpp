// The centre behind a bridge (issue 16, acceptance 3): two site brokers (mosquitto) bridge
// lanegate/v1/{site}/# out to a centre broker and acks and shelves in, with the bridge
// config docs/integration.md gives. One lane per site; 500 alerts while one site broker is
// stopped and restarted; a persistent subscriber at the centre gets every alert the
// outboxes published; the alerts' retained states reach the centre; acks made at the
// centre reach the lanes, and the lanes' acked states come back.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// Persistence and a queue far above mosquitto's 1,000 default on every broker: the site
// queues for the bridge while the centre is unreachable, the centre for the subscriber.
std::string durable(const TempDir& dir) {
  return "persistence true\npersistence_location " + dir.path() +
         "/\nmax_queued_messages 100000\nautosave_interval 1\n";
}

// A site broker's bridge to the centre, as docs/integration.md gives it.
std::string bridge(const std::string& site, int centrePort) {
  return "connection centre-" + site + "\naddress 127.0.0.1:" + std::to_string(centrePort) +
         "\nbridge_protocol_version mqttv50\ncleansession false\nclientid bridge-" + site +
         "\nrestart_timeout 1\n"
         "topic lanegate/v1/" +
         site +
         "/# out 1\n"
         "topic lanegate/v1/" +
         site +
         "/+/acks in 1\n"
         "topic lanegate/v1/" +
         site + "/+/shelves in 1\n";
}

std::string laneConfig(const TempDir& dir, const Broker& b, const std::string& site) {
  auto text = configText(dir, b.uri());
  text.replace(text.find("site: it"), 8, "site: " + site);
  return text;
}

// Alerts (by id) a subscriber printed, one JSON object a line.
std::map<std::string, nlohmann::json> alertsSeen(const std::string& out) {
  std::map<std::string, nlohmann::json> seen;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (auto j = nlohmann::json::parse(line, nullptr, false); j.is_object() && j.contains("id"))
      seen[j["id"].get<std::string>()] = j;
  return seen;
}

TEST(BridgeIT, TwoSitesThroughACentreLoseNothingAcrossASiteBrokerRestartAndAcksComeBack) {
  TempDir dc, da, db;
  Broker centre(dc, durable(dc));
  // The centre's persistent subscriber (a console or a recorder), there from the start.
  Process sub(
      {MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(centre.port()), "-V", "mqttv5",
       "-c", "-i", "centre-recorder", "-x", "86400", "-q", "1", "-t", "lanegate/v1/+/+/alerts"},
      dc.file("recorder"));
  Broker siteA(da, durable(da) + bridge("sa", centre.port()));
  Broker siteB(db, durable(db) + bridge("sb", centre.port()));
  Daemon laneA(da, laneConfig(da, siteA, "sa"));
  Daemon laneB(db, laneConfig(db, siteB, "sb"));
  ASSERT_TRUE(waitFor([&] { return laneA.brokerConnected() && laneB.brokerConnected(); }, 15s));
  // Both lanes' retained status reached the centre through the bridges.
  ASSERT_TRUE(waitFor(
      [&] {
        return !retained(centre, "lanegate/v1/sa/lane-1/status", 1s).empty() &&
               !retained(centre, "lanegate/v1/sb/lane-1/status", 1s).empty();
      },
      20s));

  // 500 alerts: lane B 250 at once; lane A 250 in three parts, its site broker stopped
  // after the first and started again after the second.
  std::vector<std::string> accepted;
  auto fire = [&](Daemon& d, int n) {
    const auto r = d.ctl({"test-alert", "--count", std::to_string(n)});
    ASSERT_EQ(r.code, 0) << r.err;
    const auto ids = printedIds(r.out);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(n));
    accepted.insert(accepted.end(), ids.begin(), ids.end());
  };
  Process streamB(
      {LANEGATECTL_BIN, "-s", laneB.socketFor("test-alert"), "test-alert", "--count", "250"},
      db.file("stream"));
  fire(laneA, 100);
  siteA.stop();
  fire(laneA, 100);  // accepted into lane A's outbox while its broker is down
  ASSERT_EQ(streamB.wait(60s), 0) << streamB.err();
  const auto idsB = printedIds(streamB.out());
  ASSERT_EQ(idsB.size(), 250u);
  accepted.insert(accepted.end(), idsB.begin(), idsB.end());
  ASSERT_TRUE(siteA.start()) << "site A's broker did not start again on port " << siteA.port()
                             << ": " << readFile(da.file("mosquitto.err"));
  fire(laneA, 50);
  ASSERT_EQ(accepted.size(), 500u);

  // Nothing lost: what the outboxes published is what the centre's subscriber got.
  ASSERT_TRUE(waitFor(
      [&] {
        const auto a = laneA.outbox(), b = laneB.outbox();
        return a.value("pending", -1) == 0 && a.value("published", -1) == 250 &&
               b.value("pending", -1) == 0 && b.value("published", -1) == 250;
      },
      90s))
      << "lane A: " << laneA.postMortem() << "\nlane B: " << laneB.postMortem();
  ASSERT_TRUE(waitFor([&] { return alertsSeen(sub.out()).size() >= 500; }, 60s))
      << alertsSeen(sub.out()).size() << " alerts at the centre";
  const auto seen = alertsSeen(sub.out());
  std::size_t lost = 0;
  for (const auto& id : accepted) lost += !seen.count(id);
  EXPECT_EQ(lost, 0u) << "of 500 alerts accepted by the two lanes";
  EXPECT_EQ(seen.size(), 500u) << "and nothing else";
  std::set<std::string> sources;
  for (const auto& [id, e] : seen) sources.insert(e["source"].get<std::string>());
  EXPECT_EQ(sources, (std::set<std::string>{"lanegate://sa/lane-1/lanegated",
                                            "lanegate://sb/lane-1/lanegated"}));

  // A console at the centre acks one alert of each lane; the lanes apply the acks and
  // their acked states come back to the centre.
  for (const auto& [site, id] :
       {std::pair{std::string("sa"), accepted[0]}, std::pair{std::string("sb"), idsB[0]}}) {
    const auto& e = seen.at(id);
    const nlohmann::json ack{{"id", e["id"]},
                             {"ack_token", e["data"]["ack_token"]},
                             {"by", "centre-operator"},
                             {"disposition", "referred"}};
    const auto r = run({MOSQUITTO_PUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(centre.port()),
                        "-q", "1", "-t", "lanegate/v1/" + site + "/lane-1/acks", "-m", ack.dump()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_TRUE(waitFor(
      [&] {
        return laneA.outbox().value("acked", -1) == 1 && laneB.outbox().value("acked", -1) == 1;
      },
      20s))
      << "acks from the centre did not reach the lanes: " << laneA.outbox().dump()
      << laneB.outbox().dump();
  const std::string stateA = "lanegate/v1/sa/lane-1/alerts/" + accepted[0] + "/state";
  EXPECT_TRUE(waitFor(
      [&] { return retained(centre, stateA, 1s).find("\"referred\"") != std::string::npos; }, 20s))
      << retained(centre, stateA, 1s);
  const std::string openB = "lanegate/v1/sb/lane-1/alerts/" + idsB[100] + "/state";
  EXPECT_NE(retained(centre, openB, 1s).find("\"open\""), std::string::npos)
      << "the centre holds the open alerts' states: a console there sees them";
}

}  // namespace
}  // namespace lanegate::test
