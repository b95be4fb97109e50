// An IMS detector (the real lanegate-sim over Modbus TCP) through the daemon to the
// control room: a cocaine sample becomes an org.lanegate.trace.hit alert that validates.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

int simPort(Process& sim) {
  int port = 0;
  waitFor([&] {
    std::smatch m;
    const std::string out = sim.out();
    if (std::regex_search(out, m, std::regex("listening on 127\\.0\\.0\\.1:([0-9]+)"))) port = std::stoi(m[1]);
    return port != 0 || !sim.running();
  }, 15s);
  return port;
}

TEST(TraceIT, SimulatedCocaineSampleArrivesAsAValidTraceHit) {
  TempDir dir;
  Broker broker(dir);
  Process sim({LANEGATE_SIM_BIN, "ims", "--port", "0", "--every-ms", "300", "--sequence", "clear,cocaine:900",
               "--library", LANEGATE_SOURCE_DIR "/config/ims/substances.yaml"},
              dir.file("sim"));
  const int port = simPort(sim);
  ASSERT_NE(port, 0) << sim.err();
  Process watch({LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json",
                 "--count", "1"},
                dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s)) << watch.err();
  const std::string devices = "ims_library: " LANEGATE_SOURCE_DIR "/config/ims/substances.yaml\n"
                              "devices:\n  - name: ims-1\n    type: ims\n    host: 127.0.0.1\n    port: " +
                              std::to_string(port) + "\n    poll_interval_ms: 100\n    profile: " LANEGATE_SOURCE_DIR
                              "/config/profiles/ims-generic-v1.yaml\n";
  Daemon d(dir, configText(dir, broker.uri(), devices));
  ASSERT_EQ(watch.wait(30s), 0) << d.process().err();
  const auto alert = nlohmann::json::parse(watch.out().substr(0, watch.out().find('\n')));
  EXPECT_EQ(alert["type"], "org.lanegate.trace.hit");
  EXPECT_EQ(alert["source"], "lanegate://it/lane-1/ims-1");
  EXPECT_EQ(alert["data"]["verdict"], "hit");
  EXPECT_NE(alert["data"]["substances"].dump().find("cocaine"), std::string::npos) << alert["data"]["substances"];
  writeFile(dir.file("alert.json"), alert.dump());
  const auto v = run({LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py", "--schemas",
                      LANEGATE_SOURCE_DIR "/config/schemas", "alert", dir.file("alert.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  // The device's health reaches its retained status topic.
  EXPECT_TRUE(waitFor([&] {
    return retained(broker, "lanegate/v1/it/lane-1/devices/ims-1/status", 1s).find("\"ok\"") != std::string::npos;
  }, 15s));
}

}  // namespace
}  // namespace lanegate::test
