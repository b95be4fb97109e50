// The IMS driver against the in-process simulator and hand-driven libmodbus servers:
// samples and their json, both profiles, snapshot consistency, rejected data, faults,
// commands, and isolation of a bad device from a good one.
#include "drivers/ims_driver.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "drivers/ims_profile.h"
#include "modbus_fixture.h"
#include "trace/spectrum.h"

namespace lanegate::test {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;

// Polls until `want` samples arrived (or the deadline); every poll's result is kept.
struct Polled {
  std::vector<Json> samples;
  std::vector<PollResult> results;
};
Polled pollFor(Driver& d, std::size_t want, milliseconds deadline = milliseconds(10'000)) {
  Polled out;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (out.samples.size() < want && std::chrono::steady_clock::now() < end) {
    PollResult r = d.poll();
    for (const auto& s : r.samples) {
      EXPECT_EQ(s.kind, "trace");
      out.samples.push_back(Json::parse(s.json));
    }
    out.results.push_back(std::move(r));
    std::this_thread::sleep_for(d.pollInterval());
  }
  return out;
}

sim::ImsSimOptions simOptions(const std::string& sequence,
                              const std::string& profile = kGenericProfile) {
  sim::ImsSimOptions o;
  o.profilePath = profile;
  // Slow enough that a sanitizer build reads a whole snapshot between two samples.
  o.every = milliseconds(100);
  o.sequence.clear();
  std::stringstream in(sequence);
  for (std::string item; std::getline(in, item, ',');) o.sequence.push_back(item);
  o.commandTime = milliseconds(50);
  return o;
}

class BothProfiles : public ::testing::TestWithParam<std::string> {};

TEST_P(BothProfiles, DeliversEachSampleOnceWithItsAlarms) {
  const bool generic = GetParam() == kGenericProfile;
  ServedSim sim(simOptions("clear,cocaine:800", GetParam()));
  auto d = imsDriver("ims-1", sim.port(), "", GetParam());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const Polled p = pollFor(*d, 4);
  ASSERT_GE(p.samples.size(), 4u);
  int lastSeq = -1;
  for (const Json& j : p.samples) {
    EXPECT_EQ(j["device"], "ims-1");
    const int seq = j["sample_seq"];
    EXPECT_EQ(seq % 2, 0);
    EXPECT_GT(seq, lastSeq) << "each sample once, in order";
    lastSeq = seq;
    EXPECT_GT(j["sample_time"].get<std::int64_t>(), 1'700'000'000) << "word order decoded";
    EXPECT_EQ(j["mode"], "positive");
    EXPECT_NEAR(j["drift_temp_k"].get<double>(), 383.15, 3.0);
    EXPECT_NEAR(j["pressure_hpa"].get<double>(), 1013.25, 7.0);
    EXPECT_NEAR(j["desorber_temp_c"].get<double>(), 250.0, 1.5);
    EXPECT_EQ(j["period_ns"], 12500);
    EXPECT_EQ(j["segments"], 16);
    ASSERT_EQ(j["points"].size(), 2000u);
    // The spectrum part is Contract 6 SPECTRUM.json once its fields are picked.
    Json spectrum;
    for (const char* k : {"points", "period_ns", "mode", "drift_temp_k", "pressure_hpa"})
      spectrum[k] = j[k];
    auto parsed = trace::parseSpectrumJson(spectrum.dump());
    ASSERT_TRUE(parsed) << parsed.error();
    EXPECT_EQ(parsed->points.size(), 2000u);
    const bool alarmed = !j["alarms"].empty();
    EXPECT_EQ(alarmed, (j["status"].get<int>() >> (generic ? 2 : 5) & 1) == 1)
        << "alarm status bit";
    if (alarmed) {
      ASSERT_EQ(j["alarms"].size(), 1u);
      EXPECT_EQ(j["alarms"][0]["code"], generic ? 1 : 101);
      EXPECT_EQ(j["alarms"][0]["substance"], "cocaine");
      EXPECT_EQ(j["alarms"][0]["amplitude"], 800);
    }
  }
  const auto alarmed = std::count_if(p.samples.begin(), p.samples.end(),
                                     [](const Json& j) { return !j["alarms"].empty(); });
  EXPECT_GE(alarmed, 1);
  EXPECT_LT(alarmed, static_cast<long>(p.samples.size())) << "clear samples alternate";

  const DeviceHealth& h = p.results.back().health;
  EXPECT_EQ(h.state, "ok") << h.detail;
  EXPECT_EQ(h.faults, 0u);
  EXPECT_NEAR(h.readings.at("drift_temp_k"), 383.15, 3.0);
  EXPECT_GT(h.readings.at("last_sample_time"), 1.7e9);
  EXPECT_EQ(h.readings.at("calibration_due"), 0.0);
}

TEST_P(BothProfiles, RunsCommandsToTheirResult) {
  ServedSim sim(simOptions("clear", GetParam()));
  auto d = imsDriver("ims-1", sim.port(), "command_timeout_ms: 5000", GetParam());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  for (const char* c : {"verify", "calibrate", "clear_fault"}) {
    const CommandResult r = d->command({c});
    EXPECT_TRUE(r.ok) << c << ": " << r.message;
    EXPECT_NE(r.message.find(std::string(c) + " ok"), std::string::npos) << r.message;
  }
  const CommandResult bad = d->command({"self_destruct"});
  EXPECT_FALSE(bad.ok);
  EXPECT_NE(bad.message.find("unknown command"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Profiles, BothProfiles, ::testing::Values(kGenericProfile, kAcmeProfile),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param == kGenericProfile ? std::string("generic")
                                                                 : std::string("acme");
                         });

TEST(ImsDriver, NegativeModeAndExplosives) {
  ServedSim sim(simOptions("TNT:900"));
  auto d = imsDriver("ims-2", sim.port());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const Polled p = pollFor(*d, 1);
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.samples[0]["mode"], "negative");
  ASSERT_EQ(p.samples[0]["alarms"].size(), 1u);
  EXPECT_EQ(p.samples[0]["alarms"][0]["substance"], "TNT");
}

TEST(ImsDriver, FailedCommandsSaySo) {
  auto o = simOptions("clear");
  o.failCommands = true;
  ServedSim sim(o);
  auto d = imsDriver("ims-1", sim.port());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const CommandResult r = d->command({"calibrate"});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("calibrate failed"), std::string::npos) << r.message;
}

TEST(ImsDriver, CommandTimesOutWhenTheDeviceNeverFinishes) {
  auto o = simOptions("clear");
  o.commandTime = milliseconds(60'000);
  ServedSim sim(o);
  auto d = imsDriver("ims-1", sim.port(), "command_timeout_ms: 300");
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const CommandResult r = d->command({"verify"});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("no result within 300 ms"), std::string::npos) << r.message;
  const CommandResult busy = d->command({"verify"});
  EXPECT_FALSE(busy.ok);
  EXPECT_NE(busy.message.find("still running"), std::string::npos) << busy.message;
}

// A hand-driven Contract 3 device: one sample of `points` registers of `value`.
void writeSample(sim::ModbusServer& s, std::uint16_t seq, std::uint16_t points, std::uint16_t value,
                 std::uint16_t alarms = 0) {
  auto regs = s.holding();
  regs[0] = 1;
  regs[1] = 1;
  regs[2] = seq;
  regs[3] = 0x6A00;
  regs[4] = 0x0001;
  regs[5] = 3831;
  regs[6] = 10132;
  regs[7] = 2500;
  regs[8] = points;
  regs[9] = 12500;
  regs[10] = 8;
  regs[11] = alarms;
  for (std::size_t i = 0; i < points && i < 4000; ++i) regs[100 + i] = value;
}

TEST(ImsDriver, SnapshotIsReadAgainWhenTheDeviceWritesMidRead) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 4, 300, 1);
  }
  int spectrumReads = 0, headerReads = 0;
  s.server->setHook([&](const sim::ServerRequest& r) {
    auto regs = s.server->holding();
    if (r.address == 0) ++headerReads;
    if (r.address >= 100 && ++spectrumReads == 2) {
      // The device starts writing sample 6 between two chunks of our read.
      regs[2] = 5;
      for (std::size_t i = 0; i < 300; ++i) regs[100 + i] = 2;
    }
    if (r.address == 0 && regs[2] == 5 && headerReads >= 3) regs[2] = 6;  // ...and finishes later
  });
  auto d = imsDriver("ims-1", s.port(), "snapshot_retries: 10, snapshot_retry_ms: 1");
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const PollResult r = d->poll();
  ASSERT_EQ(r.action, DriverAction::ok) << r.error;
  ASSERT_EQ(r.samples.size(), 1u) << r.error;
  const Json j = Json::parse(r.samples[0].json);
  EXPECT_EQ(j["sample_seq"], 6) << "the torn sample 4 is never published";
  for (const auto& v : j["points"]) ASSERT_EQ(v, 2) << "no mix of old and new points";
  EXPECT_EQ(r.health.faults, 0u);
  auto lock = s.server->lock();
  EXPECT_GE(headerReads, 3);
  EXPECT_GE(spectrumReads, 5) << "300 points = 3 chunks, read twice";
}

TEST(ImsDriver, SnapshotGivesUpAfterBoundedRetries) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 4, 10, 1);
  }
  s.server->setHook([&](const sim::ServerRequest& r) {
    if (r.address >= 100)
      s.server->holding()[2] = static_cast<std::uint16_t>(s.server->holding()[2] + 2);
  });
  auto d = imsDriver("ims-1", s.port(), "snapshot_retries: 3, snapshot_retry_ms: 1");
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  const PollResult r = d->poll();
  EXPECT_TRUE(r.samples.empty());
  EXPECT_EQ(r.action, DriverAction::ok) << "the device is alive; try again next poll";
  EXPECT_EQ(r.health.faults, 1u);
  EXPECT_NE(r.error.find("no consistent snapshot after 3 attempts"), std::string::npos) << r.error;
}

TEST(ImsDriver, ImpossibleDataIsRejectedAndCountedOnce) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 4, 4001, 1);
  }
  auto d = imsDriver("ims-1", s.port());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  PollResult r = d->poll();
  EXPECT_TRUE(r.samples.empty());
  EXPECT_EQ(r.health.faults, 1u);
  EXPECT_EQ(r.health.state, "fault");
  EXPECT_NE(r.error.find("4001 points, at most 4000"), std::string::npos) << r.error;
  r = d->poll();
  EXPECT_EQ(r.health.faults, 1u) << "the same bad sample is not counted again";
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 6, 10, 1, 9);  // nine alarms in an eight-alarm block
  }
  r = d->poll();
  EXPECT_EQ(r.health.faults, 2u);
  EXPECT_NE(r.error.find("9 alarms, at most 8"), std::string::npos) << r.error;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 8, 10, 7);
  }
  r = d->poll();
  ASSERT_EQ(r.samples.size(), 1u) << r.error;
  EXPECT_EQ(Json::parse(r.samples[0].json)["sample_time"], 0x6A000001) << "high word first";
  EXPECT_EQ(r.health.faults, 2u);
  EXPECT_EQ(r.health.state, "ok");
}

TEST(ImsDriver, ExceptionAndGarbageRepliesAreFaults) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 2, 10, 1);
  }
  auto d = imsDriver("ims-1", s.port());
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  s.server->setFault(sim::ServerFault::exception);
  PollResult r = d->poll();
  EXPECT_EQ(r.action, DriverAction::ok) << "an exception reply means the device is alive";
  EXPECT_EQ(r.health.state, "fault");
  EXPECT_EQ(r.health.faults, 1u);
  s.server->setFault(sim::ServerFault::garbage);
  r = d->poll();
  EXPECT_EQ(r.action, DriverAction::retry) << "garbage: reconnect";
  EXPECT_EQ(r.health.faults, 2u);
  d->close();
  s.server->setFault(sim::ServerFault::none);
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  r = d->poll();
  EXPECT_EQ(r.samples.size(), 1u) << r.error;
  EXPECT_EQ(r.health.faults, 2u);
}

TEST(ImsDriver, StalledDeviceTimesOutAndAsksForRetry) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    writeSample(*s.server, 2, 10, 1);
  }
  auto d = imsDriver("ims-1", s.port(), "response_timeout_ms: 100");
  std::string err;
  ASSERT_EQ(d->open(err), DriverAction::ok) << err;
  s.server->setFault(sim::ServerFault::stall);
  const PollResult r = d->poll();
  EXPECT_EQ(r.action, DriverAction::retry);
  EXPECT_EQ(r.health.state, "offline");
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
}

TEST(ImsDriver, ProfileVersionMismatchTakesTheDeviceOutOfService) {
  ServedServer s;
  {
    auto lock = s.server->lock();
    s.server->holding()[0] = 2;
  }
  auto d = imsDriver("ims-1", s.port());
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::outOfService);
  EXPECT_NE(err.find("profile_version 2"), std::string::npos) << err;
}

TEST(ImsDriver, NothingListeningMeansRetry) {
  auto d = imsDriver("ims-1", 1);  // port 1: nothing listens on loopback
  std::string err;
  EXPECT_EQ(d->open(err), DriverAction::retry);
  EXPECT_NE(err.find("cannot connect to tcp://127.0.0.1:1"), std::string::npos) << err;
  EXPECT_FALSE(d->command({"verify"}).ok);
}

TEST(ImsDriver, ValidationReportsConfigAndProfileErrors) {
  const DriverType* t = findDriverType("ims");
  ASSERT_NE(t, nullptr);
  ConfigErrors errors;
  const YAML::Node n = YAML::Load(
      "name: ims-1\ntype: ims\nport: 99999\nprofile: /nonexistent/p.yaml\nunit_id: 300\ncolour: "
      "red\n");
  SettingsReader r("lanegate.yaml", n, "device 'ims-1'", errors);
  r.allow("name");
  r.allow("type");
  t->validate(r);
  r.finish();
  const std::string all = errors.str();
  EXPECT_NE(all.find("lanegate.yaml:1: device 'ims-1': missing required key 'host'"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("lanegate.yaml:3: device 'ims-1': 'port' must be between 1 and 65535"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("lanegate.yaml:5: device 'ims-1': 'unit_id'"), std::string::npos) << all;
  EXPECT_NE(all.find("/nonexistent/p.yaml:0: cannot read the profile file"), std::string::npos)
      << all;
  EXPECT_NE(
      all.find("lanegate.yaml:4: device 'ims-1': profile '/nonexistent/p.yaml' is not usable"),
      std::string::npos)
      << all;
  EXPECT_NE(all.find("lanegate.yaml:6: device 'ims-1': unknown key 'colour'"), std::string::npos)
      << all;
}

TEST(ImsDriver, RelativeProfilePathsAreRelativeToTheConfigFile) {
  const DriverType* t = findDriverType("ims");
  ConfigErrors errors;
  SettingsReader r(sourcePath("config/lanegate.yaml"),
                   YAML::Load("{name: i, type: ims, host: 127.0.0.1}"), "device 'i'", errors);
  r.allow("name");
  r.allow("type");
  t->validate(r);  // default profile: profiles/ims-generic-v1.yaml next to the config
  r.finish();
  EXPECT_TRUE(errors.empty()) << errors.str();
}

class Isolation : public ::testing::TestWithParam<std::string> {};

// Acceptance 4: a dead, slow or garbage-speaking device never delays another. Asserted
// by conditions: the good device's samples keep arriving, in order, while the bad
// device's thread is stuck in one call (stall) or failing over and over (garbage).
TEST_P(Isolation, ABadDeviceNeverDelaysAGoodOne) {
  auto goodOptions = simOptions("clear,cocaine:500");
  goodOptions.points = 500;
  goodOptions.every = milliseconds(50);
  ServedSim good(goodOptions);
  auto badOptions = simOptions("clear");
  badOptions.fault = GetParam();
  const bool stall = GetParam() == "stall";
  badOptions.faultAfter = stall ? 0 : 1;  // garbage/disconnect after one good sample
  auto bad = std::make_unique<ServedSim>(badOptions);
  auto badThread = std::make_unique<DeviceThread>(
      imsDriver("bad", bad->port(), stall ? "response_timeout_ms: 30000" : ""));
  DeviceThread goodThread(imsDriver("good", good.port()));

  if (stall) {
    // The bad device's open() (its profile_version read) is now blocked for up to 30 s.
    ASSERT_TRUE(waitFor([&] { return badThread->calls() >= 1 && badThread->inCall(); }, 5s));
  }
  ASSERT_TRUE(waitFor([&] { return goodThread.seqs().size() >= 8; }, 20s))
      << "good device delivered " << goodThread.seqs().size();
  const auto seqs = goodThread.seqs();
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(std::adjacent_find(seqs.begin(), seqs.end()), seqs.end()) << "no duplicates";
  EXPECT_LE(badThread->seqs().size(), 1u);
  if (stall) {
    EXPECT_TRUE(badThread->inCall()) << "8 good samples arrived within one stalled request";
    EXPECT_EQ(badThread->calls(), 1) << "still in its first call";
  } else {
    const int before = badThread->calls();
    EXPECT_TRUE(waitFor([&] { return badThread->calls() >= before + 3; }, 5s))
        << "the bad device keeps failing and retrying on its own thread";
  }
  if (GetParam() == "garbage") {
    // In poll() (a fault) or, once the garbage started before it connected, in open().
    EXPECT_TRUE(waitFor([&] { return badThread->failedWith("Invalid data"); }, 5s));
  }
  bad.reset();  // closes its sockets: a blocked request returns at once
  badThread.reset();
}

INSTANTIATE_TEST_SUITE_P(Faults, Isolation, ::testing::Values("stall", "garbage", "disconnect"));

}  // namespace
}  // namespace lanegate::test
