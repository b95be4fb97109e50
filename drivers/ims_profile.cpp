#include "drivers/ims_profile.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "drivers/settings.h"

namespace lanegate {
namespace {

constexpr int kMaxAddress = 65535;

// A scaled register is either a bare address or {address, scale, offset, signed}.
ScaledRegister scaled(ProfileKeys& k, const std::string& key) {
  ScaledRegister out;
  // Through a const reference: a non-const operator[] would insert the key.
  const YAML::Node& c = k.registersNode;
  if (c.IsMap() && c[key] && c[key].IsMap()) {
    SettingsReader m(k.top.file(), k.registers.map(key, false), "register " + key, k.top.errors());
    out.address = readAddress(m, "address");
    out.scale = m.number("scale", 1.0, -1e6, 1e6);
    out.offset = m.number("offset", 0.0, -1e6, 1e6);
    out.isSigned = m.boolean("signed", false);
    m.finish();
    return out;
  }
  out.address = readAddress(k.registers, key);
  return out;
}

void readAlarmCodes(const YAML::Node& alarmCodes, const std::string& file, ConfigErrors& errors,
                    ImsProfile& p) {
  for (const auto& kv : alarmCodes) {
    const std::string key = kv.first.Scalar();
    int code = 0;
    std::istringstream in(key);
    if (!(in >> code) || !in.eof() || code < 1 || code > 65535) {
      errors.add(file, kv.first,
                 "profile alarm_codes: key '" + key + "' must be an alarm code 1..65535");
      continue;
    }
    if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
      errors.add(file, kv.second, "profile alarm_codes: code " + key + " must name a substance");
      continue;
    }
    p.alarmCodes[code] = kv.second.Scalar();
  }
}

void readBody(ProfileKeys& k, ImsProfile& p) {
  p.highWordFirst = k.top.choice("word_order", std::string("high_first"),
                                 {"high_first", "low_first"}) == "high_first";
  p.maxPerRead = static_cast<int>(
      k.top.integer("max_registers_per_read", kMaxRegistersPerRead, 1, kMaxRegistersPerRead));
  p.maxPoints = static_cast<int>(k.top.integer("max_points", 4000, 1, 4000));
  p.maxAlarms = static_cast<int>(k.top.integer("max_alarms", 8, 0, 32));
  p.sampleSeq = readAddress(k.registers, "sample_seq");
  p.sampleTime = readAddress(k.registers, "sample_time");
  p.driftTempK = scaled(k, "drift_temp_k");
  p.pressureHpa = scaled(k, "pressure_hpa");
  p.desorberTempC = scaled(k, "desorber_temp_c");
  p.points = readAddress(k.registers, "points");
  p.periodNs = readAddress(k.registers, "period_ns");
  p.segments = readAddress(k.registers, "segments");
  p.alarmCount = readAddress(k.registers, "alarm_count");
  p.alarms = readAddress(k.registers, "alarms");
  p.spectrum = readAddress(k.registers, "spectrum");
  ImsStatusBits& b = p.bits;
  for (auto [key, bit] : {std::pair{"ready", &b.ready}, std::pair{"analysing", &b.analysing},
                          std::pair{"alarm", &b.alarm}, std::pair{"fault", &b.fault},
                          std::pair{"calibration_due", &b.calibrationDue},
                          std::pair{"verification_failed", &b.verificationFailed},
                          std::pair{"negative_mode", &b.negativeMode}})
    *bit = readStatusBit(k.bits, key);
  readAlarmCodes(k.top.map("alarm_codes", false), k.top.file(), k.top.errors(), p);
}

void checkLayout(const ImsProfile& p, ConfigErrors& errors, int line) {
  const std::string& file = p.file;
  if (p.spectrum + p.maxPoints - 1 > kMaxAddress)
    errors.add(file, line,
               "profile: spectrum at " + std::to_string(p.spectrum) + " with max_points " +
                   std::to_string(p.maxPoints) + " runs past register 65535");
  if (p.headerCount() > 1000)
    errors.add(file, line,
               "profile: header registers span " + std::to_string(p.headerCount()) +
                   " registers (at most 1000); keep them together");
  const int headerEnd = p.headerFirst() + p.headerCount();
  if (p.spectrum < headerEnd && p.spectrum + p.maxPoints > p.headerFirst())
    errors.add(file, line, "profile: the spectrum overlaps the header registers");
}

}  // namespace

double ScaledRegister::decode(std::uint16_t raw) const {
  const double v =
      isSigned ? static_cast<double>(static_cast<std::int16_t>(raw)) : static_cast<double>(raw);
  return v * scale + offset;
}

std::uint16_t ScaledRegister::encode(double value) const {
  const double raw = scale == 0.0 ? 0.0 : std::round((value - offset) / scale);
  if (isSigned) {
    const double c = std::clamp(raw, -32768.0, 32767.0);
    return static_cast<std::uint16_t>(static_cast<std::int16_t>(c));
  }
  return static_cast<std::uint16_t>(std::clamp(raw, 0.0, 65535.0));
}

int ImsProfile::headerFirst() const {
  int lo = std::min({status, sampleSeq, sampleTime, driftTempK.address, pressureHpa.address,
                     desorberTempC.address, points, periodNs, segments, alarmCount, alarms});
  if (versionAddress) lo = std::min(lo, *versionAddress);
  return lo;
}

int ImsProfile::headerCount() const {
  int hi = std::max({status, sampleSeq, sampleTime + 1, driftTempK.address, pressureHpa.address,
                     desorberTempC.address, points, periodNs, segments, alarmCount,
                     alarms + 2 * std::max(maxAlarms, 1) - 1});
  if (versionAddress) hi = std::max(hi, *versionAddress);
  return hi - headerFirst() + 1;
}

std::uint16_t ImsProfile::at(std::span<const std::uint16_t> header, int address) const {
  const int i = address - headerFirst();
  if (i < 0 || static_cast<std::size_t>(i) >= header.size()) return 0;
  return header[static_cast<std::size_t>(i)];
}

std::uint32_t ImsProfile::u32At(std::span<const std::uint16_t> header, int address) const {
  const std::uint32_t a = at(header, address), b = at(header, address + 1);
  return highWordFirst ? (a << 16U) | b : (b << 16U) | a;
}

void ImsProfile::putU32(std::span<std::uint16_t> regs, int address, std::uint32_t value) const {
  const auto hi = static_cast<std::uint16_t>(value >> 16U);
  const auto lo = static_cast<std::uint16_t>(value & 0xFFFFU);
  const auto i = static_cast<std::size_t>(address);
  if (i + 1 >= regs.size()) return;
  regs[i] = highWordFirst ? hi : lo;
  regs[i + 1] = highWordFirst ? lo : hi;
}

std::optional<int> ImsProfile::alarmCodeOf(std::string_view substance) const {
  for (const auto& [code, substanceName] : alarmCodes)
    if (substanceName == substance) return code;
  return std::nullopt;
}

int ImsProfile::lastAddress() const {
  return std::max({headerFirst() + headerCount() - 1, spectrum + maxPoints - 1,
                   commands.commandRegister, commands.resultRegister});
}

tl::expected<ImsProfile, ConfigErrors> parseImsProfile(std::string_view yamlText,
                                                       const std::string& file) {
  return parseProfile<ImsProfile>(yamlText, file, {"verify", "calibrate", "clear_fault"}, readBody,
                                  checkLayout);
}

}  // namespace lanegate
