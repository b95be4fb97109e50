// The IMS driver against the in-process simulator and hand-driven libmodbus servers:
// typed samples, both profiles, snapshot consistency, rejected data, faults,
// commands, and isolation of a bad device from a good one.
#include "drivers/ims_driver.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "drivers/ims_profile.h"
#include "lane/trace_pipeline.h"
#include "modbus_fixture.h"

namespace lanegate::test {
namespace {

using std::chrono::milliseconds;

// Polls until `want` samples arrived (or the deadline); every poll's result is kept.
struct Polled {
  std::vector<TraceSample> samples;
  std::vector<PollResult> results;
};
Polled pollFor(Driver& d, std::size_t want, milliseconds deadline = milliseconds(10'000)) {
  Polled out;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (out.samples.size() < want && std::chrono::steady_clock::now() < end) {
    PollResult r = d.poll();
    for (const auto& s : r.samples) out.samples.push_back(traceOf(s));
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
  auto d = opened(imsDriver("ims-1", sim.port(), "", GetParam()));
  const Polled p = pollFor(*d, 4);
  ASSERT_GE(p.samples.size(), 4u);
  int lastSeq = -1;
  for (TraceSample t : p.samples) {
    const int seq = t.sampleSeq;
    EXPECT_EQ(seq % 2, 0);
    EXPECT_GT(seq, lastSeq) << "each sample once, in order";
    lastSeq = seq;
    EXPECT_GT(t.sampleTime, 1'700'000'000u) << "word order decoded";
    EXPECT_EQ(t.mode, IonPolarity::positive);
    EXPECT_NEAR(t.driftTempK, 383.15, 3.0);
    EXPECT_NEAR(t.pressureHpa, 1013.25, 7.0);
    EXPECT_NEAR(t.desorberTempC, 250.0, 1.5);
    EXPECT_EQ(t.periodNs, 12500);
    EXPECT_EQ(t.segments, 16);
    ASSERT_EQ(t.points.size(), 2000u);
    const bool alarmed = !t.alarms.empty();
    EXPECT_EQ(alarmed, (t.status >> (generic ? 2 : 5) & 1) == 1) << "alarm status bit";
    EXPECT_EQ(t.alarmed, alarmed) << "decided from the profile's alarm bit";
    if (alarmed) {
      ASSERT_EQ(t.alarms.size(), 1u);
      EXPECT_EQ(t.alarms[0].code, generic ? 1 : 101);
      EXPECT_EQ(t.alarms[0].substance, "cocaine");
      EXPECT_EQ(t.alarms[0].amplitude, 800);
    }
    // The lane takes it as trace/ analyses it, without a text round trip.
    auto spectrum = lane::spectrumOf(t);
    ASSERT_TRUE(spectrum) << spectrum.error();
    EXPECT_EQ(spectrum->points.size(), 2000u);
  }
  const auto alarmed = std::count_if(p.samples.begin(), p.samples.end(),
                                     [](const TraceSample& t) { return !t.alarms.empty(); });
  EXPECT_GE(alarmed, 1);
  EXPECT_LT(alarmed, static_cast<long>(p.samples.size())) << "clear samples alternate";

  const DeviceHealth& h = p.results.back().health;
  EXPECT_EQ(h.state, "ok") << h.detail;
  EXPECT_EQ(h.faults, 0u);
  EXPECT_NEAR(h.readings.at("drift_temp_k"), 383.15, 3.0);
  EXPECT_GT(h.readings.at("last_sample_time"), 1.7e9);
  EXPECT_EQ(h.readings.at("calibration_due"), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Profiles, BothProfiles, ::testing::Values(kGenericProfile, kAcmeProfile),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param == kGenericProfile ? std::string("generic")
                                                                 : std::string("acme");
                         });

TEST(ImsDriver, NegativeModeAndExplosives) {
  ServedSim sim(simOptions("TNT:900"));
  auto d = opened(imsDriver("ims-2", sim.port()));
  const Polled p = pollFor(*d, 1);
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.samples[0].mode, IonPolarity::negative);
  ASSERT_EQ(p.samples[0].alarms.size(), 1u);
  EXPECT_EQ(p.samples[0].alarms[0].substance, "TNT");
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
  auto d = opened(imsDriver("ims-1", s.port(), "snapshot_retries: 10, snapshot_retry_ms: 1"));
  const PollResult r = d->poll();
  ASSERT_EQ(r.action, DriverAction::ok) << r.error;
  ASSERT_EQ(r.samples.size(), 1u) << r.error;
  const TraceSample& t = traceOf(r.samples[0]);
  EXPECT_EQ(t.sampleSeq, 6) << "the torn sample 4 is never published";
  for (const auto v : t.points) ASSERT_EQ(v, 2) << "no mix of old and new points";
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
  auto d = opened(imsDriver("ims-1", s.port(), "snapshot_retries: 3, snapshot_retry_ms: 1"));
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
  auto d = opened(imsDriver("ims-1", s.port()));
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
  EXPECT_EQ(traceOf(r.samples[0]).sampleTime, 0x6A000001u) << "high word first";
  EXPECT_EQ(r.health.faults, 2u);
  EXPECT_EQ(r.health.state, "ok");
}

// Issue 12, acceptance 1: the ACME T2 profile puts the device's alarm at status bit 5,
// where the generic profile has verification_failed. The driver decides the alarm from the
// profile, so the lane sees "device alarmed" for an ACME T2 detector whose alarm list is
// empty, and no alarm for a generic one with bit 5 set.
TEST(ImsDriver, AcmeT2AlarmBitMeansDeviceAlarmed) {
  auto library = trace::SubstanceLibrary::parse(readFile(kLibrary), kLibrary);
  ASSERT_TRUE(library) << library.error();
  for (const bool acme : {true, false}) {
    SCOPED_TRACE(acme ? "ims-acme-t2" : "ims-generic-v1");
    ServedServer s;
    {
      auto lock = s.server->lock();
      if (acme) {
        auto regs = s.server->input();       // ACME T2: input registers, low word first
        regs[1010] = (1U << 1) | (1U << 5);  // ready, alarm
        regs[1000] = 8;
        regs[1002] = 0x0001;
        regs[1003] = 0x6A00;
        regs[1020] = 1100;  // 0.1 °C
        regs[1021] = 10132;
        regs[1022] = 250;
        regs[1030] = 400;
        regs[1031] = 12500;
        regs[1032] = 8;
        regs[1040] = 0;  // no alarm list: the status bit alone says it
        for (std::size_t i = 0; i < 400; ++i) regs[3000 + i] = 300;
      } else {
        writeSample(*s.server, 8, 400, 300);
        s.server->holding()[1] = (1U << 0) | (1U << 5);  // ready, verification failed
      }
    }
    auto d = opened(imsDriver("ims-1", s.port(), "", acme ? kAcmeProfile : kGenericProfile));
    PollResult r = d->poll();
    ASSERT_EQ(r.samples.size(), 1u) << r.error;
    const TraceSample& t = traceOf(r.samples[0]);
    EXPECT_TRUE(t.alarms.empty());
    EXPECT_EQ(t.alarmed, acme);
    auto result = lane::evaluateTrace("ims-1", t, r.samples[0].time, *library, "s/l");
    ASSERT_TRUE(result) << result.error();
    EXPECT_EQ(result->deviceAlarm, acme) << "device alarmed";
    EXPECT_EQ(result->alert, acme || result->ours.verdict == trace::Verdict::kHit);
  }
}

TEST(ImsDriver, ValidationReportsConfigAndProfileErrors) {
  expectEach(validationErrors("name: ims-1\ntype: ims\nport: 99999\nprofile: /nonexistent/p.yaml\n"
                              "unit_id: 300\ncolour: red\n"),
             {"lanegate.yaml:1: device 'ims-1': missing required key 'host'",
              "lanegate.yaml:3: device 'ims-1': 'port' must be between 1 and 65535",
              "lanegate.yaml:5: device 'ims-1': 'unit_id'",
              "/nonexistent/p.yaml:0: cannot read the profile file",
              "lanegate.yaml:4: device 'ims-1': profile '/nonexistent/p.yaml' is not usable",
              "lanegate.yaml:6: device 'ims-1': unknown key 'colour'"});
}

TEST(ImsDriver, RelativeProfilePathsAreRelativeToTheConfigFile) {
  // The default profile, profiles/ims-generic-v1.yaml, next to the config.
  EXPECT_EQ(
      validationErrors("{name: i, type: ims, host: 127.0.0.1}", sourcePath("config/lanegate.yaml")),
      "");
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
