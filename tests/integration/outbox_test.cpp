// The delivery guarantee end to end: a real mosquitto, the real daemon, SIGKILL, and
// subscribers that are independent peers (mosquitto_sub with a persistent session).
#include <gtest/gtest.h>

#include <iostream>

#include <csignal>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// Persistence, so the control room's session and its queue survive the broker's
// restart; a queue limit far above the 1,000 default (beyond it mosquitto silently
// drops QoS 1 messages for a subscriber that is away).
const std::string kDurableBroker =
    "persistence true\nmax_queued_messages 100000\nmax_inflight_messages 20\n";

std::string persistenceLine(const TempDir& dir) {
  return "persistence_location " + dir.path() + "/\n";
}

// Registers the control room's persistent session (MQTT 3.1.1, clean session off).
void registerControlRoom(const Broker& b, const std::string& clientId) {
  auto r = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-c", "-i",
                clientId, "-q", "1", "-t", kAlertsTopic, "-E"});
  ASSERT_EQ(r.code, 0) << r.err;
}

// Everything queued for the control room's session, in arrival order.
std::vector<nlohmann::json> drainControlRoom(const Broker& b, const std::string& clientId,
                                             int seconds) {
  auto r = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-c", "-i",
                clientId, "-q", "1", "-t", kAlertsTopic, "-W", std::to_string(seconds)},
               std::chrono::seconds(seconds + 10));
  std::vector<nlohmann::json> out;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Seq numbers, with later duplicates of an id removed, must rise.
void expectSeqOrderApartFromDuplicates(const std::vector<nlohmann::json>& got) {
  std::set<std::string> seen;
  std::uint64_t last = 0;
  for (const auto& e : got) {
    if (!seen.insert(e["id"].get<std::string>()).second) continue;
    const auto seq = e["seq"].get<std::uint64_t>();
    EXPECT_GT(seq, last) << "out of order: " << e.dump();
    last = seq;
  }
}

TEST(OutboxIT, BrokerOutageLosesNothing) {
  TempDir dir;
  Broker broker(dir, kDurableBroker + persistenceLine(dir));
  registerControlRoom(broker, "cr-outage");
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();

  broker.stop();
  ASSERT_TRUE(waitFor([&] { return !d.brokerConnected(); }, 15s));
  const auto r = d.ctl({"test-alert", "--count", "1000"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto accepted = printedIds(r.out);
  ASSERT_EQ(accepted.size(), 1000u);
  EXPECT_EQ(d.outbox()["pending"], 1000);

  broker.start();
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("pending", -1) == 0; }, 60s))
      << d.outbox().dump();
  const auto got = drainControlRoom(broker, "cr-outage", 5);
  std::set<std::string> ids;
  for (const auto& e : got) ids.insert(e["id"].get<std::string>());
  for (const auto& id : accepted) EXPECT_TRUE(ids.count(id)) << "lost " << id;
  expectSeqOrderApartFromDuplicates(got);
}

TEST(OutboxIT, SigkillTwentyTimesLosesNoAcceptedAlert) {
  TempDir dir;
  Broker broker(dir, kDurableBroker + persistenceLine(dir));
  registerControlRoom(broker, "cr-crash");
  Daemon d(dir, configText(dir, broker.uri()));
  std::mt19937 rng(20261127);  // fixed: the same kill moments on every run
  std::uniform_int_distribution<int> killAfterMs(0, 300);
  std::vector<std::string> accepted;
  for (int round = 0; round < 20; ++round) {
    ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s))
        << "round " << round << ": " << d.process().err();
    // More alerts than one group commit takes (512), so accepting spans several commits.
    Process alerts(
        {LANEGATECTL_BIN, "-s", d.socketFor("test-alert"), "test-alert", "--count", "5000"},
        dir.file("alerts-" + std::to_string(round)));
    ASSERT_TRUE(
        waitFor([&] { return !printedIds(alerts.out()).empty() || !alerts.running(); }, 30s));
    // A kill at a random moment while alerts are being accepted is the point of the test.
    std::this_thread::sleep_for(std::chrono::milliseconds(killAfterMs(rng)));
    d.process().signal(SIGKILL);
    ASSERT_TRUE(d.process().wait(10s));
    ASSERT_TRUE(alerts.wait(10s));
    const auto ids = printedIds(alerts.out());
    accepted.insert(accepted.end(), ids.begin(), ids.end());
    d.start();
  }
  ASSERT_GT(accepted.size(), 0u);
  ASSERT_TRUE(
      waitFor([&] { return d.brokerConnected() && d.outbox().value("pending", -1) == 0; }, 60s))
      << d.outbox().dump();
  const auto got = drainControlRoom(broker, "cr-crash", 5);
  std::set<std::string> ids;
  for (const auto& e : got) ids.insert(e["id"].get<std::string>());
  std::size_t lost = 0;
  for (const auto& id : accepted) lost += !ids.count(id);
  EXPECT_EQ(lost, 0u) << "of " << accepted.size() << " alerts that test-alert printed";
  RecordProperty("accepted_across_kills", static_cast<int>(accepted.size()));
  std::cout << "accepted across 20 kills: " << accepted.size() << ", received " << got.size()
            << " messages (duplicates included)\n";
  expectSeqOrderApartFromDuplicates(got);
}

TEST(OutboxIT, ControlRoomAcksMarkAlertsAcked) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri()));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--count", "3"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s));
  ASSERT_EQ(d.ctl({"test-alert", "--count", "3"}).code, 0);
  EXPECT_TRUE(waitFor([&] { return d.outbox().value("acked", -1) == 3; }, 15s))
      << d.outbox().dump();
  EXPECT_EQ(d.outbox()["published"], 0);
}

TEST(OutboxIT, WatchGetsWhatWasPublishedWhileItWasAway) {
  TempDir dir;
  Broker broker(dir, kDurableBroker + persistenceLine(dir));
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s));
  const std::vector<std::string> watchArgs{LANEGATECTL_BIN, "watch",       "-b",     broker.uri(),
                                           "--site",        "it",          "--lane", "lane-1",
                                           "--json",        "--client-id", "cr-away"};
  {
    auto args = watchArgs;
    args.insert(args.end(), {"--count", "1"});
    Process first(args, dir.file("watch-1"));
    ASSERT_TRUE(waitFor([&] { return first.err().find("watching") != std::string::npos; }, 15s))
        << first.err();
    ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
    ASSERT_EQ(first.wait(15s), 0);
  }
  // The watcher is gone; these wait for it in its session at the broker.
  const auto r = d.ctl({"test-alert", "--count", "3"});
  ASSERT_EQ(r.code, 0);
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("pending", -1) == 0; }, 15s));
  auto args = watchArgs;
  args.insert(args.end(), {"--count", "3"});
  Process back(args, dir.file("watch-2"));
  ASSERT_EQ(back.wait(20s), 0) << back.err();
  std::set<std::string> got;
  std::istringstream in(back.out());
  for (std::string line; std::getline(in, line);)
    got.insert(nlohmann::json::parse(line)["id"].get<std::string>());
  const auto sent = printedIds(r.out);
  EXPECT_EQ(got, std::set<std::string>(sent.begin(), sent.end()));
  EXPECT_NE(back.err().find("resumed session"), std::string::npos) << back.err();
}

TEST(OutboxIT, DamagedOutboxAtStartIsReportedOnTheStatus) {
  TempDir dir;
  Broker broker(dir);
  std::filesystem::create_directories(dir.file("state"));
  writeFile(dir.file("state/outbox.db"), std::string(8192, 'Z'));
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return statusIs(broker, "online"); }, 15s)) << d.process().err();
  const auto s = nlohmann::json::parse(retained(broker, kStatusTopic));
  ASSERT_EQ(s["faults"].size(), 1u) << s.dump();
  EXPECT_EQ(s["faults"][0]["kind"], "outbox_recovered");
  EXPECT_NE(s["faults"][0]["detail"].get<std::string>().find("moved aside"), std::string::npos);
  EXPECT_EQ(d.ctl({"test-alert"}).code, 0) << "a fresh outbox works";
}

const std::string kAcksTopic = "lanegate/v1/it/lane-1/acks";

// Publishes `payload` on the lane's acks topic at QoS 1, as a control room (or anyone
// the broker lets publish there) would.
void publishAck(const Broker& b, const std::string& payload) {
  const auto r = run({MOSQUITTO_PUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-q",
                      "1", "-t", kAcksTopic, "-m", payload});
  ASSERT_EQ(r.code, 0) << r.err;
}

std::string ackJson(const std::string& id, const std::string& token) {
  return nlohmann::json{{"id", id}, {"ack_token", token}, {"by", "it"}}.dump();
}

// The lane's count of ignored acks (status --json), or -1.
long long acksRejected(const Daemon& d) {
  const auto s = d.status();
  return s.is_object() && s.contains("acks_rejected") ? s["acks_rejected"].get<long long>() : -1;
}

// The alerts a `watch --json` printed.
std::vector<nlohmann::json> alertsPrinted(const Process& watch) {
  std::vector<nlohmann::json> out;
  std::istringstream in(watch.out());
  for (std::string line; std::getline(in, line);)
    if (auto j = nlohmann::json::parse(line, nullptr, false); j.is_object()) out.push_back(j);
  return out;
}

// Acceptance 2 (issue 13): an ack counts only when it names a published alert by its
// exact id and carries that alert's ack_token; anything else changes nothing, is counted
// on the status, and the daemon keeps running.
TEST(OutboxIT, AckCountsOnlyWithTheExactIdAndTokenOfAPublishedAlert) {
  TempDir dir;
  Broker broker(dir);
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--json", "--no-ack"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert", "--count", "2"}).code, 0);
  ASSERT_TRUE(waitFor(
      [&] { return alertsPrinted(watch).size() == 2 && d.outbox().value("published", -1) == 2; },
      15s))
      << watch.out() << d.outbox().dump();
  const auto alerts = alertsPrinted(watch);
  const auto tokenOf = [](const nlohmann::json& a) {
    return a.value("/data/ack_token"_json_pointer, std::string());
  };
  const std::string id0 = alerts[0].value("id", ""), token0 = tokenOf(alerts[0]),
                    token1 = tokenOf(alerts[1]);
  ASSERT_EQ(token0.size(), 32u);
  ASSERT_NE(token0, token1);

  publishAck(broker, R"({"id":"xray"})");  // the old wildcard
  publishAck(broker, ackJson("xray", token0));
  publishAck(broker, ackJson(id0.substr(0, 8), token0));   // a prefix of the id
  publishAck(broker, ackJson(id0, token1));                // another alert's token
  publishAck(broker, nlohmann::json{{"id", id0}}.dump());  // no token
  publishAck(broker, ackJson(id0, std::string(32, 'a')));  // a made-up token
  publishAck(broker, ackJson("no-such-alert", token0));    // an unknown id
  publishAck(broker, "{\"id\":\"\xff\xfe\",\"ack_token\":\"" + token0 + "\"}");  // not UTF-8
  publishAck(broker, "[1,2,3]");                                                 // not an object
  ASSERT_TRUE(waitFor([&] { return acksRejected(d) == 9; }, 15s))
      << d.status().dump() << d.process().err();
  EXPECT_EQ(d.outbox()["acked"], 0) << "no forged or careless ack acknowledged anything";
  EXPECT_EQ(d.outbox()["published"], 2);
  EXPECT_NE(d.process().err().find("ignored an ack"), std::string::npos);

  publishAck(broker, ackJson(id0, token0));
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("acked", -1) == 1; }, 15s))
      << d.outbox().dump();
  EXPECT_EQ(d.outbox()["published"], 1) << "exactly one alert acknowledged";
  EXPECT_EQ(acksRejected(d), 9);
  EXPECT_TRUE(d.process().running());
}

// An alert the broker has not taken (its publish is refused by the broker's ACL) stays
// pending; an ack for it, even with its real token (read from the outbox), changes nothing:
// the ack waits (in memory) until the alert's publication is recorded, which never comes.
TEST(OutboxIT, AckForAPendingAlertChangesNothing) {
  TempDir dir;
  writeFile(dir.file("acl"),
            "topic read lanegate/v1/it/lane-1/alerts\n"
            "topic readwrite lanegate/v1/it/lane-1/acks\n"
            "topic readwrite lanegate/v1/it/lane-1/status\n");
  Broker broker(dir, "acl_file " + dir.file("acl") + "\n");
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  ASSERT_TRUE(waitFor(
      [&] { return d.process().err().find("not delivered yet") != std::string::npos; }, 15s))
      << "the broker refused the alert: " << d.process().err();
  ASSERT_EQ(d.outbox()["pending"], 1);
  const auto row = run({"/usr/bin/sqlite3", dir.file("state/outbox.db"),
                        "SELECT id || ' ' || ack_token FROM records"});
  ASSERT_EQ(row.code, 0) << row.err;
  const auto space = row.out.find(' ');
  ASSERT_NE(space, std::string::npos) << row.out;
  const std::string id = row.out.substr(0, space), token = row.out.substr(space + 1, 32);
  publishAck(broker, ackJson(id, token));
  ASSERT_TRUE(waitFor(
      [&] {
        return d.process().err().find("waits until the alert is published again") !=
               std::string::npos;
      },
      15s))
      << d.status().dump() << d.process().err();
  EXPECT_EQ(d.outbox()["acked"], 0);
  EXPECT_EQ(d.outbox()["pending"], 1) << "still to be sent";
  // With a wrong token it is ignored outright.
  publishAck(broker, ackJson(id, std::string(32, '0')));
  ASSERT_TRUE(waitFor([&] { return acksRejected(d) == 1; }, 15s))
      << d.status().dump() << d.process().err();
  EXPECT_NE(d.process().err().find("has not been published yet"), std::string::npos);
  EXPECT_EQ(d.outbox()["acked"], 0);
}

// Contract 5: a persistent session. An ack the control room sends while the daemon is
// away waits in the daemon's session at the broker and is applied when it is back.
TEST(OutboxIT, AckSentWhileTheDaemonIsAwayIsAppliedWhenItReturns) {
  TempDir dir;
  Broker broker(dir, kDurableBroker + persistenceLine(dir));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--json", "--no-ack", "--count", "1"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  ASSERT_EQ(watch.wait(15s), 0) << watch.err();
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("published", -1) == 1; }, 15s));
  const auto alert = alertsPrinted(watch).at(0);

  d.process().signal(SIGTERM);
  ASSERT_EQ(d.process().wait(10s), 0);
  // The broker too goes down and up (persistence on): the session outlives both.
  broker.stop();
  broker.start();
  publishAck(broker, ackJson(alert.value("id", ""),
                             alert.value("/data/ack_token"_json_pointer, std::string())));

  d.start();
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  EXPECT_TRUE(waitFor([&] { return d.outbox().value("acked", -1) == 1; }, 15s))
      << "the ack sent while the daemon was away was lost: " << d.outbox().dump();
  EXPECT_EQ(d.outbox()["published"], 0);
}

// The daemon can stop (or be killed) after the control room received an alert but before
// its PUBACK was recorded; the outbox then holds it as pending and sends it again after the
// restart. An ack the control room sent meanwhile arrives first, right at the reconnect: it
// waits for the new publication instead of being dropped (found by tests/reliability/faults).
TEST(OutboxIT, AckForAnAlertWhosePublicationWasNotRecordedIsApplied) {
  TempDir dir;
  Broker broker(dir, kDurableBroker + persistenceLine(dir));
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1",
                 "--json", "--no-ack", "--count", "1"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  Daemon d(dir, configText(dir, broker.uri()));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  ASSERT_EQ(d.ctl({"test-alert"}).code, 0);
  ASSERT_EQ(watch.wait(15s), 0) << watch.err();
  ASSERT_TRUE(waitFor([&] { return d.outbox().value("published", -1) == 1; }, 15s));
  const auto alert = alertsPrinted(watch).at(0);
  d.process().signal(SIGTERM);
  ASSERT_EQ(d.process().wait(10s), 0);
  // What a SIGKILL between the PUBACK and its commit leaves: the alert still pending.
  const auto undo = run({"/usr/bin/sqlite3", dir.file("state/outbox.db"),
                         "UPDATE records SET state=0, published_ms=NULL"});
  ASSERT_EQ(undo.code, 0) << undo.err;
  publishAck(broker, ackJson(alert.value("id", ""),
                             alert.value("/data/ack_token"_json_pointer, std::string())));

  d.start();
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  EXPECT_TRUE(waitFor([&] { return d.outbox().value("acked", -1) == 1; }, 15s))
      << "the ack that came before the alert was sent again was lost: " << d.outbox().dump()
      << d.process().err();
  EXPECT_EQ(d.outbox()["pending"], 0);
  EXPECT_EQ(d.outbox()["acks_rejected"], 0);
}

// A trace hit has no file to wait in: one the outbox refuses (here: less free disk than
// the floor) is kept, offered again with backoff, and reported on the lane status.
TEST(OutboxIT, RefusedTraceHitIsRetriedAndReported) {
  TempDir dir;
  Broker broker(dir);
  SimProcess sim({"ims", "--every-ms", "300", "--sequence", "cocaine:900", "--once", "--library",
                  LANEGATE_SOURCE_DIR "/config/ims/substances.yaml"},
                 dir.file("sim"));
  ASSERT_NE(sim.port, 0);
  Daemon d(dir,
           configText(dir, broker.uri(), kImsLibrary + "devices:\n" + imsEntry("ims-1", sim.port)) +
               "outbox:\n  min_free_bytes: 1125899906842624\n");  // 1 PiB: no disk has it
  auto fault = [&] {
    const auto s = d.status();
    if (!s.is_object() || !s.contains("faults")) return std::string();
    for (const auto& f : s["faults"])
      if (f.value("kind", "") == "trace_hits_not_accepted") return f.value("detail", "");
    return std::string();
  };
  ASSERT_TRUE(waitFor([&] { return !fault().empty(); }, 30s))
      << d.status().dump() << d.process().err();
  EXPECT_EQ(fault().rfind("1 trace hit(s) wait", 0), 0u) << fault();
  EXPECT_TRUE(waitFor(
      [&] { return d.process().err().find("NOT accepted (attempt 2)") != std::string::npos; }, 15s))
      << "offered again: " << d.process().err();
  EXPECT_TRUE(d.process().running());
}

}  // namespace
}  // namespace lanegate::test
