// Modbus RTU for real, without serial hardware: socat links two pseudo-terminals, the
// simulator serves one, the driver reads the other. Two devices on one bus share one
// libmodbus context; the one that never answers does not starve the other.
#include <gtest/gtest.h>

#include <filesystem>

#include "modbus_fixture.h"

namespace lanegate::test {
namespace {

using std::chrono::milliseconds;

class Rtu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/usr/bin/socat"))
      GTEST_SKIP() << "socat is not installed (make deps)";
    socat_ = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/socat", "pty,raw,echo=0,link=" + dir_.file("A"),
                                 "pty,raw,echo=0,link=" + dir_.file("B")},
        dir_.file("socat"));
    ASSERT_TRUE(waitFor(
        [&] {
          return std::filesystem::exists(dir_.file("A")) && std::filesystem::exists(dir_.file("B"));
        },
        5s))
        << socat_->err();
  }

  std::unique_ptr<Driver> rtuDriver(const std::string& name, int unit, int timeoutMs) {
    DeviceSpec spec;
    spec.name = name;
    spec.type = "ims";
    spec.file = "test.yaml";
    spec.settings = YAML::Load("{name: " + name + ", type: ims, transport: rtu, device: '" +
                               dir_.file("B") + "', baud: 19200, unit_id: " + std::to_string(unit) +
                               ", profile: '" + kGenericProfile + "', poll_interval_ms: 10, " +
                               "response_timeout_ms: " + std::to_string(timeoutMs) + "}");
    return findDriverType("ims")->create(spec);
  }

  sim::ImsSimOptions simOnA() {
    sim::ImsSimOptions o;
    o.server.transport = "rtu";
    o.server.device = dir_.file("A");
    o.server.unitId = 1;
    o.every = milliseconds(50);
    o.points = 300;
    o.commandTime = milliseconds(50);
    o.sequence = {"clear", "heroin:700"};
    return o;
  }

  TempDir dir_;
  std::unique_ptr<Process> socat_;
};

TEST_F(Rtu, ReadsSamplesOverASerialLine) {
  ServedSim sim(simOnA());
  auto d = opened(rtuDriver("ims-rtu", 1, 1000));
  std::vector<TraceSample> samples;
  ASSERT_TRUE(waitFor(
      [&] {
        for (const auto& s : d->poll().samples) samples.push_back(traceOf(s));
        return samples.size() >= 2;
      },
      10s));
  for (const auto& t : samples) {
    EXPECT_EQ(t.points.size(), 300u);
    EXPECT_EQ(t.sampleSeq % 2, 0);
  }
  EXPECT_TRUE(d->command({"verify"}).ok);
  d->close();
}

TEST_F(Rtu, ASilentUnitOnTheBusDoesNotStopTheOther) {
  ServedSim sim(simOnA());
  DeviceThread good(rtuDriver("good", 1, 1000));
  DeviceThread silent(rtuDriver("silent", 2, 100));  // nobody answers unit 2
  ASSERT_TRUE(waitFor([&] { return good.seqs().size() >= 4; }, 20s)) << good.seqs().size();
  const auto seqs = good.seqs();
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_TRUE(silent.seqs().empty());
  EXPECT_TRUE(waitFor([&] { return silent.calls() >= 3; }, 5s)) << "the silent unit keeps retrying";
}

}  // namespace
}  // namespace lanegate::test
