// What both Modbus drivers (ims, xray) get from one base (drivers/modbus_device.h), tested
// once for each: against hand-driven libmodbus servers, a stalled device times out and asks
// for a reconnect, exception replies and garbage are faults, a device of another layout is
// out of service, nothing listening means retry; against the simulators (both IMS
// profiles), commands run to their result, fail or time out.
#include "drivers/modbus_device.h"

#include <gtest/gtest.h>

#include "modbus_fixture.h"

namespace lanegate::test {
namespace {

/// A simulator of a device type, serving.
struct Simulated {
  std::shared_ptr<void> served;  ///< keeps it serving
  int port = 0;
};

/// One driver type, a device of it saying "all is well", and its simulator.
struct DeviceType {
  std::string name;
  std::string profileName;
  std::function<std::unique_ptr<Driver>(int port, const std::string& extra)> driver;
  std::function<void(sim::ModbusServer&)> healthy;
  std::vector<std::string> commands;  ///< what it takes
  std::string what;                   ///< how command messages name it
  /// Its simulator, whose commands take `commandTime` and fail when asked to.
  std::function<Simulated(std::chrono::milliseconds commandTime, bool fail, const TempDir& dir)>
      simulate;
};

template <typename Served, typename Options>
Simulated simulated(Options o) {
  auto served = std::make_shared<Served>(std::move(o));
  return {served, served->port()};
}

sim::ImsSimOptions imsSim(const std::string& profile, std::chrono::milliseconds commandTime,
                          bool fail) {
  sim::ImsSimOptions o;
  o.profilePath = profile;
  o.every = std::chrono::milliseconds(60'000);
  o.commandTime = commandTime;
  o.failCommands = fail;
  return o;
}

std::vector<DeviceType> deviceTypes() {
  std::vector<DeviceType> types{
      {"ims",
       "ims-generic-v1",
       [](int port, const std::string& extra) { return imsDriver("ims-1", port, extra); },
       [](sim::ModbusServer& s) {
         auto lock = s.lock();
         writeSample(s, 2, 10, 1);
       },
       {"verify", "calibrate", "clear_fault"},
       "device",
       [](std::chrono::milliseconds t, bool fail, const TempDir&) {
         return simulated<ServedSim>(imsSim(kGenericProfile, t, fail));
       }},
      {"xray",
       "xray-generic-v1",
       [](int port, const std::string& extra) {
         return registryDriver(
             "name: xray-1, type: xray, host: 127.0.0.1, port: " + std::to_string(port) +
                 ", inbox: /nonexistent/inbox, poll_interval_ms: 10, profile: '" +
                 sourcePath("config/profiles/xray-generic-v1.yaml") + "'",
             extra);
       },
       [](sim::ModbusServer& s) { setPlc(s, 1, 3, 0); },
       {"dark", "air", "clear_fault"},
       "scanner",
       [](std::chrono::milliseconds t, bool fail, const TempDir& dir) {
         sim::XraySimOptions o;
         o.inbox = dir.file("inbox");
         o.count = 0;
         o.pixelMm = 20.0;
         o.commandTime = t;
         o.failCommands = fail;
         return simulated<ServedXray>(o);
       }},
  };
  // The ACME T2 detector: other command codes and result values, input registers and no
  // profile_version (so the layout tests, which drive Contracts 3 and 4 by hand, skip it).
  DeviceType acme = types.front();
  acme.name = "ims_acme";
  acme.profileName = "ims-acme-t2";
  acme.driver = [](int port, const std::string& extra) {
    return imsDriver("ims-1", port, extra, kAcmeProfile);
  };
  acme.healthy = nullptr;
  acme.simulate = [](std::chrono::milliseconds t, bool fail, const TempDir&) {
    return simulated<ServedSim>(imsSim(kAcmeProfile, t, fail));
  };
  types.insert(types.begin() + 1, acme);
  return types;
}

// The types whose registers the layout tests drive by hand (Contracts 3 and 4).
std::vector<DeviceType> handDriven() {
  std::vector<DeviceType> out;
  for (auto& t : deviceTypes())
    if (t.healthy) out.push_back(t);
  return out;
}

class ModbusDeviceTest : public ::testing::TestWithParam<DeviceType> {};
class ModbusCommandTest : public ::testing::TestWithParam<DeviceType> {};

TEST_P(ModbusDeviceTest, ExceptionAndGarbageRepliesAreFaults) {
  ServedServer s;
  GetParam().healthy(*s.server);
  auto d = opened(GetParam().driver(s.port(), ""));
  s.server->setFault(sim::ServerFault::exception);
  PollResult r = d->poll();
  EXPECT_EQ(r.action, DriverAction::ok) << "an exception reply means the device is alive";
  EXPECT_EQ(r.health.state, "fault");
  EXPECT_EQ(r.health.faults, 1u);
  EXPECT_TRUE(r.samples.empty());
  s.server->setFault(sim::ServerFault::garbage);
  r = d->poll();
  EXPECT_EQ(r.action, DriverAction::retry) << "garbage: reconnect";
  EXPECT_EQ(r.health.faults, 2u);
  EXPECT_NE(r.error.find("Invalid data"), std::string::npos) << r.error;
  d->close();
  s.server->setFault(sim::ServerFault::none);
  d = opened(std::move(d));
  r = d->poll();
  EXPECT_EQ(r.action, DriverAction::ok) << r.error;
  EXPECT_EQ(r.health.state, "ok");
  EXPECT_EQ(r.health.faults, 2u) << "counted for the life of the driver";
  EXPECT_EQ(r.samples.size(), 1u) << r.error;
}

TEST_P(ModbusDeviceTest, AStalledDeviceTimesOutAndAsksForRetry) {
  ServedServer s;
  GetParam().healthy(*s.server);
  auto d = opened(GetParam().driver(s.port(), "response_timeout_ms: 100"));
  s.server->setFault(sim::ServerFault::stall);
  const PollResult r = d->poll();
  EXPECT_EQ(r.action, DriverAction::retry);
  EXPECT_EQ(r.health.state, "offline");
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
}

TEST_P(ModbusDeviceTest, AnotherProfileVersionTakesTheDeviceOutOfService) {
  ServedServer s;
  GetParam().healthy(*s.server);
  {
    auto lock = s.server->lock();
    s.server->holding()[0] = 3;
  }
  auto d = GetParam().driver(s.port(), "");
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::outOfService);
  EXPECT_NE(err.find("device reports profile_version 3, profile '" + GetParam().profileName + "'"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("expects 1"), std::string::npos) << err;
}

TEST_P(ModbusDeviceTest, NothingListeningMeansRetry) {
  auto d = GetParam().driver(1, "");  // port 1: nothing listens on loopback
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::retry);
  EXPECT_NE(err.find("cannot connect to tcp://127.0.0.1:1"), std::string::npos) << err;
  EXPECT_FALSE(d->command({"clear_fault"}).ok);
}

TEST_P(ModbusCommandTest, RunsCommandsToTheirResult) {
  TempDir dir;
  const Simulated sim = GetParam().simulate(std::chrono::milliseconds(50), false, dir);
  auto d = opened(GetParam().driver(sim.port, "command_timeout_ms: 5000"));
  for (const std::string& c : GetParam().commands) {
    const CommandResult r = d->command({c});
    EXPECT_TRUE(r.ok) << c << ": " << r.message;
    EXPECT_NE(r.message.find(c + " ok"), std::string::npos) << r.message;
  }
  const CommandResult bad = d->command({"self_destruct"});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.message.find("unknown command 'self_destruct'"), std::string::npos) << bad.message;
}

TEST_P(ModbusCommandTest, FailedCommandsSaySo) {
  TempDir dir;
  const Simulated sim = GetParam().simulate(std::chrono::milliseconds(50), true, dir);
  auto d = opened(GetParam().driver(sim.port, ""));
  const std::string& c = GetParam().commands.front();
  const CommandResult r = d->command({c});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find(c + " failed: the " + GetParam().what + " reported failure"),
            std::string::npos)
      << r.message;
}

TEST_P(ModbusCommandTest, ACommandTimesOutWhenTheDeviceNeverFinishes) {
  TempDir dir;
  const Simulated sim = GetParam().simulate(std::chrono::milliseconds(60'000), false, dir);
  auto d = opened(GetParam().driver(sim.port, "command_timeout_ms: 300"));
  const CommandResult r = d->command({GetParam().commands[0]});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("no result within 300 ms"), std::string::npos) << r.message;
  const CommandResult busy = d->command({GetParam().commands[1]});
  EXPECT_FALSE(busy.ok);
  EXPECT_NE(busy.message.find("still running"), std::string::npos) << busy.message;
}

std::string nameOf(const ::testing::TestParamInfo<DeviceType>& type) { return type.param.name; }

INSTANTIATE_TEST_SUITE_P(Drivers, ModbusDeviceTest, ::testing::ValuesIn(handDriven()), nameOf);
INSTANTIATE_TEST_SUITE_P(Drivers, ModbusCommandTest, ::testing::ValuesIn(deviceTypes()), nameOf);

}  // namespace
}  // namespace lanegate::test
