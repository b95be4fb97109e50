// Register profiles are data: the shipped ones load, and mistakes read file:line.
#include "drivers/ims_profile.h"

#include <gtest/gtest.h>

#include <vector>

#include "modbus_fixture.h"

namespace lanegate::test {
namespace {

TEST(ImsProfile, GenericProfileIsContract3) {
  auto p = loadProfile(kGenericProfile, parseImsProfile);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->name, "ims-generic-v1");
  EXPECT_EQ(p->table, RegisterTable::holding);
  EXPECT_TRUE(p->highWordFirst);
  EXPECT_EQ(p->versionAddress, 0);
  EXPECT_EQ(p->expectedVersion, 1);
  EXPECT_EQ(p->status, 1);
  EXPECT_EQ(p->sampleSeq, 2);
  EXPECT_EQ(p->sampleTime, 3);
  EXPECT_EQ(p->driftTempK.address, 5);
  EXPECT_DOUBLE_EQ(p->driftTempK.decode(3831), 383.1);
  EXPECT_EQ(p->points, 8);
  EXPECT_EQ(p->alarms, 12);
  EXPECT_EQ(p->spectrum, 100);
  EXPECT_EQ(p->headerFirst(), 0);
  EXPECT_EQ(p->headerCount(), 28) << "registers 0..27 in one read";
  EXPECT_EQ(p->bits.negativeMode, 6);
  EXPECT_EQ(p->commands.commandRegister, 40);
  EXPECT_EQ(p->commands.resultRegister, 41);
  EXPECT_EQ(p->commands.codes.at("calibrate"), 2);
  EXPECT_EQ(p->alarmCodes.at(1), "cocaine");
  EXPECT_EQ(p->alarmCodeOf("fentanyl"), 6);
  EXPECT_EQ(p->alarmCodeOf("tea"), std::nullopt);
}

TEST(ImsProfile, SecondProfileHasAnotherLayout) {
  auto p = loadProfile(kAcmeProfile, parseImsProfile);
  ASSERT_TRUE(p) << p.error().str();
  EXPECT_EQ(p->table, RegisterTable::input);
  EXPECT_FALSE(p->highWordFirst);
  EXPECT_EQ(p->maxPerRead, 100);
  EXPECT_FALSE(p->versionAddress.has_value());
  EXPECT_EQ(p->commands.resultTable, RegisterTable::input);
  EXPECT_NEAR(p->driftTempK.decode(static_cast<std::uint16_t>(1100)), 383.15, 1e-9)
      << "0.1 °C + 273.15";
  EXPECT_NEAR(p->driftTempK.decode(p->driftTempK.encode(260.0)), 260.0, 0.05)
      << "signed: below 0 °C";
}

TEST(ImsProfile, WordOrderOf32BitValues) {
  ImsProfile p;
  std::vector<std::uint16_t> regs(10);
  p.highWordFirst = true;
  p.putU32(regs, 3, 0x12345678U);
  EXPECT_EQ(regs[3], 0x1234);
  EXPECT_EQ(regs[4], 0x5678);
  p.highWordFirst = false;
  p.putU32(regs, 3, 0x12345678U);
  EXPECT_EQ(regs[3], 0x5678);
  EXPECT_EQ(p.u32At(std::span<const std::uint16_t>(regs).subspan(
                        static_cast<std::size_t>(p.headerFirst())),
                    3),
            0x12345678U);
}

TEST(ImsProfile, ErrorsNameFileAndLine) {
  const std::string text =
      "profile: broken\n"
      "table: coils\n"
      "registers:\n"
      "  status: 1\n"
      "  sample_seq: -2\n"
      "  colour: 3\n"
      "status_bits: {}\n"
      "commands:\n"
      "  register: 40\n"
      "  result_register: 41\n"
      "  codes: {verify: 1, calibrate: 2, clear_fault: 3}\n"
      "  results: {idle: 0, running: 1, ok: 2, failed: 3}\n";
  auto p = parseImsProfile(text, "vendor.yaml");
  ASSERT_FALSE(p);
  const std::string all = p.error().str();
  EXPECT_NE(all.find("vendor.yaml:2: profile: 'table' must be one of holding, input"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("vendor.yaml:5: profile registers: 'sample_seq' must be between 0 and 65535"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("vendor.yaml:6: profile registers: unknown key 'colour'"), std::string::npos)
      << all;
  EXPECT_NE(all.find("missing required key 'spectrum'"), std::string::npos) << all;

  auto syntax = parseImsProfile("profile: [unclosed\n", "s.yaml");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().all().front().file, "s.yaml");
  EXPECT_FALSE(loadProfile("/nonexistent/profile.yaml", parseImsProfile));
}

// One parser reads what the IMS and X-ray profiles share: both refuse two commands on one
// code, and result values that coincide (the IMS parser once let them through).
TEST(ImsProfile, RejectsCommandsSharingACodeAsTheXrayProfileDoes) {
  auto text = readFile(kGenericProfile);
  text.replace(text.find("clear_fault: 3}"), 15, "clear_fault: 2}");
  text.replace(text.find("failed: 3}"), 10, "failed: 2}");
  auto bad = parseImsProfile(text, "dup.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("commands calibrate and clear_fault share code 2"),
            std::string::npos)
      << bad.error().str();
  EXPECT_NE(bad.error().str().find("command results idle, running, ok, failed must differ"),
            std::string::npos)
      << bad.error().str();
}

TEST(ImsProfile, RejectsASpectrumOverlappingTheHeader) {
  auto p = loadProfile(kGenericProfile, parseImsProfile);
  ASSERT_TRUE(p);
  std::string text =
      "profile: overlap\nregisters: {status: 1, sample_seq: 2, sample_time: 3, "
      "drift_temp_k: 5, pressure_hpa: 6, desorber_temp_c: 7, points: 8, "
      "period_ns: 9, segments: 10, alarm_count: 11, alarms: 12, spectrum: 20}\n"
      "status_bits: {}\n"
      "commands: {register: 40, result_register: 41, "
      "codes: {verify: 1, calibrate: 2, clear_fault: 3}, "
      "results: {idle: 0, running: 1, ok: 2, failed: 3}}\n";
  auto bad = parseImsProfile(text, "o.yaml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().str().find("overlaps"), std::string::npos) << bad.error().str();
}

}  // namespace
}  // namespace lanegate::test
