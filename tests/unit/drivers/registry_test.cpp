// The registry and the driver lifecycle, through the mock driver.
#include "drivers/registry.h"

#include <gtest/gtest.h>

namespace lanegate {
namespace {

DeviceSpec specFrom(const std::string& yaml) {
  DeviceSpec s;
  s.settings = YAML::Load(yaml);
  s.name = s.settings["name"].as<std::string>();
  s.type = s.settings["type"].as<std::string>();
  s.file = "t.yaml";
  return s;
}

TEST(Registry, FindsKnownTypesOnly) {
  ASSERT_NE(findDriverType("mock"), nullptr);
  EXPECT_EQ(findDriverType("mock")->type, "mock");
  EXPECT_EQ(findDriverType("laser"), nullptr);
  EXPECT_FALSE(driverTypes().empty());
}

TEST(MockDriver, LifecycleReportsHealth) {
  auto d = findDriverType("mock")->create(specFrom("{name: m, type: mock, poll_interval_ms: 50, temperature_k: 380}"));
  EXPECT_EQ(d->pollInterval(), std::chrono::milliseconds(50));
  EXPECT_EQ(d->poll().action, DriverAction::retry) << "polling before open must not succeed";
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const auto r = d->poll();
  EXPECT_EQ(r.action, DriverAction::ok);
  EXPECT_EQ(r.health.state, "ok");
  EXPECT_DOUBLE_EQ(r.health.readings.at("temperature_k"), 380.0);
  EXPECT_TRUE(d->command({"clear_fault"}).ok);
  EXPECT_FALSE(d->command({"launch"}).ok);
  d->close();
  EXPECT_EQ(d->poll().action, DriverAction::retry);
}

TEST(MockDriver, FailuresTellTheCallerToRetry) {
  std::string err;
  auto openFails = findDriverType("mock")->create(specFrom("{name: m, type: mock, fail: open}"));
  EXPECT_EQ(openFails->open(err), DriverAction::retry);
  EXPECT_FALSE(err.empty());
  auto pollFails = findDriverType("mock")->create(specFrom("{name: m, type: mock, fail: poll}"));
  ASSERT_EQ(pollFails->open(err), DriverAction::ok);
  const auto r = pollFails->poll();
  EXPECT_EQ(r.action, DriverAction::retry);
  EXPECT_EQ(r.health.state, "fault");
  EXPECT_EQ(r.health.faults, 1u);
}

TEST(SettingsReader, ValidatesThroughTheRegistry) {
  ConfigErrors errors;
  const YAML::Node n = YAML::Load("name: m\ntype: mock\npoll_interval_ms: 5\n");
  SettingsReader r("t.yaml", n, "device 'm'", errors);
  r.allow("name");
  r.allow("type");
  findDriverType("mock")->validate(r);
  r.finish();
  EXPECT_EQ(errors.str(), "t.yaml:3: device 'm': 'poll_interval_ms' must be between 10 and 3600000, got 5\n");
}

TEST(SettingsReader, BooleansAndNumbers) {
  ConfigErrors errors;
  const YAML::Node n = YAML::Load("a: yes\nb: maybe\nc: 1.5e2\nd: 1.5x\n");
  SettingsReader r("t.yaml", n, "m", errors);
  EXPECT_TRUE(r.boolean("a", false));
  r.boolean("b", false);
  EXPECT_DOUBLE_EQ(r.number("c", 0.0, 0.0, 1000.0), 150.0);
  r.number("d", 0.0, 0.0, 1000.0);
  EXPECT_TRUE(r.boolean("absent", true));
  r.finish();
  EXPECT_EQ(errors.str(),
            "t.yaml:2: m: 'b' must be true or false, got 'maybe'\n"
            "t.yaml:4: m: 'd' must be a number, got '1.5x'\n");
}

}  // namespace
}  // namespace lanegate
