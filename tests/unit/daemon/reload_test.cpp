// A reload applies log_level, ims_library, devices and outbox.ack_timeout_s, and names
// every other key that changed as needing a restart: no key is ignored in silence.
#include "daemon/reload.h"

#include <gtest/gtest.h>

namespace lanegate {
namespace {

Config parsed(const std::string& text) {
  auto c = parseConfig(text, "/etc/lanegate/lanegate.yaml");
  EXPECT_TRUE(c) << (c ? "" : c.error().str());
  return c ? *c : Config{};
}

const std::string kBase =
    "site: s1\nlane: l1\nbroker:\n  uri: tcp://127.0.0.1:1883\n"
    "devices:\n  - name: m1\n    type: mock\n";

TEST(Reload, NothingChangedNothingToSay) {
  const ReloadPlan p = planReload(parsed(kBase), parsed(kBase));
  EXPECT_TRUE(p.applied.empty());
  EXPECT_TRUE(p.restartOnly.empty());
}

TEST(Reload, AppliesWhatItCanAndNamesTheRest) {
  const Config running = parsed(kBase);
  const Config fresh = parsed(
      "site: s2\nlane: l1\nlog_level: debug\nims_library: /srv/lib.yaml\n"
      "broker:\n  uri: tcp://127.0.0.1:1884\n  keepalive_s: 60\n"
      "outbox:\n  ack_timeout_s: 60\n  max_bytes: 2097152\n"
      "devices:\n  - name: m1\n    type: mock\n    poll_interval_ms: 50\n");
  const ReloadPlan p = planReload(running, fresh);
  EXPECT_EQ(p.applied, (std::vector<std::string>{"log_level", "ims_library", "devices",
                                                 "outbox.ack_timeout_s"}));
  // client_id defaults to lanegate-{site}-{lane}: it changes with the site.
  EXPECT_EQ(p.restartOnly, (std::vector<std::string>{"site", "broker.uri", "broker.client_id",
                                                     "broker.keepalive_s", "outbox.max_bytes"}));
  EXPECT_EQ(p.next.logLevel, "debug");
  EXPECT_EQ(p.next.imsLibrary, "/srv/lib.yaml");
  EXPECT_EQ(p.next.outbox.ackTimeoutS, 60.0);
  ASSERT_EQ(p.next.devices.size(), 1u);
  EXPECT_EQ(p.next.devices[0].settings["poll_interval_ms"].as<int>(), 50);
  // What needs a restart keeps its running value.
  EXPECT_EQ(p.next.site, "s1");
  EXPECT_EQ(p.next.broker.uri, "tcp://127.0.0.1:1883");
  EXPECT_EQ(p.next.broker.keepAliveS, 30);
  EXPECT_EQ(p.next.outbox.maxBytes, running.outbox.maxBytes);
}

TEST(Reload, TheSocketsTakeEffectOnlyOnRestart) {
  const ReloadPlan p = planReload(
      parsed(kBase), parsed(kBase + "control_socket: /srv/c.sock\ncontrol_max_connections: 4\n"
                                    "control_idle_timeout_s: 5\n"));
  EXPECT_EQ(p.restartOnly,
            (std::vector<std::string>{"control_socket", "admin_socket", "control_max_connections",
                                      "control_idle_timeout_s"}));
  EXPECT_EQ(p.next.controlSocket, "/run/lanegate/control.sock");
  EXPECT_EQ(p.next.adminSocket, "/run/lanegate/admin.sock");
}

}  // namespace
}  // namespace lanegate
