#include "drivers/ims_profile.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "drivers/settings.h"

namespace lanegate {
namespace {

constexpr int kMaxAddress = 65535;

class ProfileParser {
 public:
  ProfileParser(std::string file, ConfigErrors& errors) : file_(std::move(file)), errors_(errors) {}

  ImsProfile parse(const YAML::Node& root) {
    ImsProfile p;
    p.file = file_;
    SettingsReader r(file_, root, "profile", errors_);
    p.name = r.string("profile", std::nullopt);
    p.table = r.choice("table", std::string("holding"), {"holding", "input"}) == "input"
                  ? RegisterTable::input
                  : RegisterTable::holding;
    p.highWordFirst = r.choice("word_order", std::string("high_first"),
                               {"high_first", "low_first"}) == "high_first";
    p.maxPerRead = static_cast<int>(
        r.integer("max_registers_per_read", kMaxRegistersPerRead, 1, kMaxRegistersPerRead));
    p.maxPoints = static_cast<int>(r.integer("max_points", 4000, 1, 4000));
    p.maxAlarms = static_cast<int>(r.integer("max_alarms", 8, 0, 32));

    const YAML::Node regsNode = r.map("registers", true);
    SettingsReader regs(file_, regsNode, "profile registers", errors_);
    if (regs.has("profile_version")) {
      SettingsReader v(file_, regs.map("profile_version", false), "profile_version", errors_);
      p.versionAddress = address(v, "address");
      p.expectedVersion = static_cast<int>(v.integer("expect", std::nullopt, 0, 65535));
      v.finish();
    }
    p.status = address(regs, "status");
    p.sampleSeq = address(regs, "sample_seq");
    p.sampleTime = address(regs, "sample_time");
    p.driftTempK = scaled(regs, regsNode, "drift_temp_k");
    p.pressureHpa = scaled(regs, regsNode, "pressure_hpa");
    p.desorberTempC = scaled(regs, regsNode, "desorber_temp_c");
    p.points = address(regs, "points");
    p.periodNs = address(regs, "period_ns");
    p.segments = address(regs, "segments");
    p.alarmCount = address(regs, "alarm_count");
    p.alarms = address(regs, "alarms");
    p.spectrum = address(regs, "spectrum");
    regs.finish();

    SettingsReader bits(file_, r.map("status_bits", true), "profile status_bits", errors_);
    auto bit = [&](const char* key) -> std::optional<int> {
      if (!bits.has(key)) {
        bits.allow(key);
        return std::nullopt;
      }
      return static_cast<int>(bits.integer(key, std::nullopt, 0, 15));
    };
    p.bits.ready = bit("ready");
    p.bits.analysing = bit("analysing");
    p.bits.alarm = bit("alarm");
    p.bits.fault = bit("fault");
    p.bits.calibrationDue = bit("calibration_due");
    p.bits.verificationFailed = bit("verification_failed");
    p.bits.negativeMode = bit("negative_mode");
    bits.finish();

    SettingsReader cmd(file_, r.map("commands", true), "profile commands", errors_);
    p.commandRegister = address(cmd, "register");
    p.commandResult = address(cmd, "result_register");
    p.commandResultTable =
        cmd.choice("result_table", std::string("holding"), {"holding", "input"}) == "input"
            ? RegisterTable::input
            : RegisterTable::holding;
    SettingsReader codes(file_, cmd.map("codes", true), "profile command codes", errors_);
    for (const char* name : {"verify", "calibrate", "clear_fault"})
      p.commandCodes[name] = static_cast<int>(codes.integer(name, std::nullopt, 1, 65535));
    codes.finish();
    SettingsReader results(file_, cmd.map("results", true), "profile command results", errors_);
    p.resultIdle = static_cast<int>(results.integer("idle", std::nullopt, 0, 65535));
    p.resultRunning = static_cast<int>(results.integer("running", std::nullopt, 0, 65535));
    p.resultOk = static_cast<int>(results.integer("ok", std::nullopt, 0, 65535));
    p.resultFailed = static_cast<int>(results.integer("failed", std::nullopt, 0, 65535));
    results.finish();
    cmd.finish();

    const YAML::Node alarmCodes = r.map("alarm_codes", false);
    for (const auto& kv : alarmCodes) {
      const std::string key = kv.first.Scalar();
      int code = 0;
      std::istringstream in(key);
      if (!(in >> code) || !in.eof() || code < 1 || code > 65535) {
        errors_.add(file_, kv.first,
                    "profile alarm_codes: key '" + key + "' must be an alarm code 1..65535");
        continue;
      }
      if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
        errors_.add(file_, kv.second,
                    "profile alarm_codes: code " + key + " must name a substance");
        continue;
      }
      p.alarmCodes[code] = kv.second.Scalar();
    }
    r.finish();

    if (errors_.empty()) check(p, root);
    return p;
  }

 private:
  int address(SettingsReader& s, const std::string& key) {
    return static_cast<int>(s.integer(key, std::nullopt, 0, kMaxAddress));
  }

  // A scaled register is either a bare address or {address, scale, offset, signed}.
  ScaledRegister scaled(SettingsReader& regs, const YAML::Node& regsNode, const std::string& key) {
    ScaledRegister out;
    // Through a const reference: a non-const operator[] would insert the key.
    const YAML::Node& c = regsNode;
    if (c.IsMap() && c[key] && c[key].IsMap()) {
      SettingsReader m(file_, regs.map(key, false), "register " + key, errors_);
      out.address = address(m, "address");
      out.scale = m.number("scale", 1.0, -1e6, 1e6);
      out.offset = m.number("offset", 0.0, -1e6, 1e6);
      out.isSigned = m.boolean("signed", false);
      m.finish();
      return out;
    }
    out.address = address(regs, key);
    return out;
  }

  void check(const ImsProfile& p, const YAML::Node& root) {
    const int line = lineOf(root);
    if (p.spectrum + p.maxPoints - 1 > kMaxAddress)
      errors_.add(file_, line,
                  "profile: spectrum at " + std::to_string(p.spectrum) + " with max_points " +
                      std::to_string(p.maxPoints) + " runs past register 65535");
    if (p.headerCount() > 1000)
      errors_.add(file_, line,
                  "profile: header registers span " + std::to_string(p.headerCount()) +
                      " registers (at most 1000); keep them together");
    const int headerEnd = p.headerFirst() + p.headerCount();
    if (p.spectrum < headerEnd && p.spectrum + p.maxPoints > p.headerFirst())
      errors_.add(file_, line, "profile: the spectrum overlaps the header registers");
  }

  std::string file_;
  ConfigErrors& errors_;
};

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

bool ImsProfile::bitSet(std::uint16_t word, const std::optional<int>& bit) {
  return bit && ((static_cast<unsigned>(word) >> static_cast<unsigned>(*bit)) & 1U) != 0;
}

std::optional<int> ImsProfile::alarmCodeOf(std::string_view substance) const {
  for (const auto& [code, substanceName] : alarmCodes)
    if (substanceName == substance) return code;
  return std::nullopt;
}

int ImsProfile::lastAddress() const {
  return std::max({headerFirst() + headerCount() - 1, spectrum + maxPoints - 1, commandRegister,
                   commandResult});
}

tl::expected<ImsProfile, ConfigErrors> parseImsProfile(std::string_view yamlText,
                                                       const std::string& file) {
  ConfigErrors errors;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yamlText));
  } catch (const YAML::Exception& e) {
    errors.add(file, e.mark.line + 1, "YAML syntax error: " + e.msg);
    return tl::make_unexpected(errors);
  }
  if (!root.IsMap()) {
    errors.add(file, root.IsNull() ? 1 : lineOf(root), "profile: expected a map of keys");
    return tl::make_unexpected(errors);
  }
  ImsProfile p;
  try {
    p = ProfileParser(file, errors).parse(root);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on odd nodes; keep it a value
    errors.add(file, e.mark.line + 1, e.msg);
  }
  if (!errors.empty()) return tl::make_unexpected(errors);
  return p;
}

tl::expected<ImsProfile, ConfigErrors> loadImsProfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ConfigErrors errors;
    errors.add(path, 0, "cannot read the profile file");
    return tl::make_unexpected(errors);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parseImsProfile(text.str(), path);
}

}  // namespace lanegate
