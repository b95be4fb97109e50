// Contract 5 v1.1, the retained per-alert state (issue 16): a console opened later finds
// every open alert with its image at the broker; the first ack wins and later ones are
// notes; an alert that leaves the outbox has its image and state cleared. Real mosquitto,
// the real daemon, a real X-ray bundle, acks from mosquitto_pub as a console would send.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// The retained payload on `topic` exactly as published (no newline added), or "".
std::string retainedBytes(const Broker& b, const std::string& topic) {
  const auto r = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-t",
                      topic, "-C", "1", "-W", "1", "--retained-only", "-N"},
                     6s);
  return r.code == 0 ? r.out : "";
}

void publishAck(const Broker& b, const nlohmann::json& ack) {
  const auto r = run({MOSQUITTO_PUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(b.port()), "-q",
                      "1", "-t", "lanegate/v1/it/lane-1/acks", "-m", ack.dump()});
  ASSERT_EQ(r.code, 0) << r.err;
}

std::string sha256Of(const TempDir& dir, const std::string& bytes) {
  writeFile(dir.file("image.bin"), bytes);
  const auto r = run({"/usr/bin/sha256sum", dir.file("image.bin")});
  return r.out.substr(0, 64);
}

TEST(AlertStateIT, LateConsoleSeesOpenAlertWithImageThenAckedWithNotesThenCleared) {
  TempDir dir;
  const std::string gen = phantoms(dir, 12, 606);
  const auto flagged = flaggedScans(gen, 1);
  ASSERT_EQ(flagged.size(), 1u);
  const std::string inbox = dir.file("inbox");
  std::filesystem::create_directories(inbox);
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri(),
                           "outbox:\n  acked_retention_s: 4\ndevices:\n" +
                               xrayEntry(inbox, freeLoopbackPort())));
  copyBundle(gen, flagged[0], inbox);
  const std::string id = "xray:it:lane-1:xray-1:" + flagged[0];
  const std::string stateTopic = kAlertsTopic + "/" + id + "/state";

  // Nobody subscribed while the alert went out: the retained topics hold it all.
  ASSERT_TRUE(waitFor([&] { return !retainedBytes(broker, stateTopic).empty(); }, 90s))
      << d.process().err();
  auto state = nlohmann::json::parse(retainedBytes(broker, stateTopic));
  EXPECT_EQ(state["state"], "open");
  EXPECT_EQ(state["alert"]["id"], id);
  expectValid(dir, "alert-state", state.dump());
  const auto image = state["alert"]["data"]["image"];
  ASSERT_TRUE(image.is_object()) << state.dump();
  const std::string jpeg = retainedBytes(broker, image["topic"]);
  EXPECT_EQ(jpeg.size(), image["bytes"].get<std::size_t>()) << "the overlay is retained";
  EXPECT_EQ(sha256Of(dir, jpeg), image["sha256"]);
  const std::string token = state["alert"]["data"]["ack_token"];

  publishAck(broker, {{"id", id}, {"ack_token", token}, {"by", "op-1"}, {"disposition", "seized"}});
  publishAck(broker,
             {{"id", id}, {"ack_token", token}, {"by", "op-2"}, {"disposition", "referred"}});
  publishAck(broker,
             {{"id", id}, {"ack_token", token}, {"by", "op-3"}, {"disposition", "inspect"}});
  ASSERT_TRUE(waitFor(
      [&] {
        auto s = nlohmann::json::parse(retainedBytes(broker, stateTopic), nullptr, false);
        return s.is_object() && s["state"] == "acked" &&
               s.value("notes", nlohmann::json()).size() == 1;
      },
      15s))
      << retainedBytes(broker, stateTopic) << d.process().err();
  state = nlohmann::json::parse(retainedBytes(broker, stateTopic));
  EXPECT_EQ(state["by"], "op-1") << "the first ack wins";
  EXPECT_EQ(state["disposition"], "seized");
  EXPECT_EQ(state["notes"][0]["by"], "op-2");
  EXPECT_EQ(state["notes"][0]["disposition"], "referred");
  expectValid(dir, "alert-state", state.dump());
  EXPECT_EQ(d.status()["acks_rejected"], 1) << "a disposition outside the four is refused";
  EXPECT_NE(d.process().err().find("\"disposition\" is not one of"), std::string::npos);
  EXPECT_EQ(retainedBytes(broker, image["topic"]).size(), jpeg.size())
      << "an acked alert keeps its image until it closes";
  EXPECT_EQ(d.outbox()["acked"], 2) << "the alert and its image";

  // acked_retention_s later the alert leaves the outbox, and the broker forgets it.
  EXPECT_TRUE(waitFor(
      [&] {
        return retainedBytes(broker, stateTopic).empty() &&
               retainedBytes(broker, image["topic"]).empty();
      },
      30s))
      << d.outbox().dump() << d.process().err();
  EXPECT_EQ(d.outbox()["acked"], 0);
  EXPECT_TRUE(d.process().running());
}

}  // namespace
}  // namespace lanegate::test
