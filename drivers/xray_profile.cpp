#include "drivers/xray_profile.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace lanegate {
namespace {

constexpr int kMaxAddress = 65535;

class ProfileParser {
 public:
  ProfileParser(std::string file, ConfigErrors& errors) : file_(std::move(file)), errors_(errors) {}

  XrayProfile parse(const YAML::Node& root) {
    XrayProfile p;
    p.file = file_;
    SettingsReader r(file_, root, "profile", errors_);
    p.name = r.string("profile", std::nullopt);
    p.table = r.choice("table", std::string("holding"), {"holding", "input"}) == "input"
                  ? RegisterTable::input
                  : RegisterTable::holding;

    SettingsReader regs(file_, r.map("registers", true), "profile registers", errors_);
    if (regs.has("profile_version")) {
      SettingsReader v(file_, regs.map("profile_version", false), "profile_version", errors_);
      p.versionAddress = address(v, "address");
      p.expectedVersion = static_cast<int>(v.integer("expect", std::nullopt, 0, 65535));
      v.finish();
    }
    p.status = address(regs, "status");
    p.scanSeq = address(regs, "scan_seq");
    p.laneOccupied = address(regs, "lane_occupied");
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
    p.bits.scanning = bit("scanning");
    p.bits.radiationOn = bit("radiation_on");
    p.bits.interlockOpen = bit("interlock_open");
    p.bits.fault = bit("fault");
    p.bits.calibrationDue = bit("calibration_due");
    bits.finish();

    SettingsReader cmd(file_, r.map("commands", true), "profile commands", errors_);
    p.commandRegister = address(cmd, "register");
    p.commandResult = address(cmd, "result_register");
    p.commandResultTable =
        cmd.choice("result_table", std::string("holding"), {"holding", "input"}) == "input"
            ? RegisterTable::input
            : RegisterTable::holding;
    SettingsReader codes(file_, cmd.map("codes", true), "profile command codes", errors_);
    for (const char* name : {"dark", "air", "clear_fault"})
      p.commandCodes[name] = static_cast<int>(codes.integer(name, std::nullopt, 1, 65535));
    codes.finish();
    SettingsReader results(file_, cmd.map("results", true), "profile command results", errors_);
    p.resultIdle = static_cast<int>(results.integer("idle", std::nullopt, 0, 65535));
    p.resultRunning = static_cast<int>(results.integer("running", std::nullopt, 0, 65535));
    p.resultOk = static_cast<int>(results.integer("ok", std::nullopt, 0, 65535));
    p.resultFailed = static_cast<int>(results.integer("failed", std::nullopt, 0, 65535));
    results.finish();
    cmd.finish();
    r.finish();

    if (errors_.empty()) check(p, root);
    return p;
  }

 private:
  int address(SettingsReader& s, const std::string& key) {
    return static_cast<int>(s.integer(key, std::nullopt, 0, kMaxAddress));
  }

  void check(const XrayProfile& p, const YAML::Node& root) {
    const int line = lineOf(root);
    if (p.blockCount() > kMaxRegistersPerRead)
      errors_.add(file_, line,
                  "profile: status, scan_seq and lane_occupied span " +
                      std::to_string(p.blockCount()) + " registers; one read takes at most " +
                      std::to_string(kMaxRegistersPerRead));
    std::map<int, std::string> seen;
    for (const auto& [name, code] : p.commandCodes) {
      if (seen.count(code))
        errors_.add(file_, line,
                    "profile: commands " + seen[code] + " and " + name + " share code " +
                        std::to_string(code));
      seen[code] = name;
    }
    const std::set<int> results{p.resultIdle, p.resultRunning, p.resultOk, p.resultFailed};
    if (results.size() != 4)
      errors_.add(file_, line, "profile: command results idle, running, ok, failed must differ");
  }

  std::string file_;
  ConfigErrors& errors_;
};

}  // namespace

int XrayProfile::blockFirst() const { return std::min({status, scanSeq, laneOccupied}); }

int XrayProfile::blockCount() const {
  return std::max({status, scanSeq, laneOccupied}) - blockFirst() + 1;
}

std::uint16_t XrayProfile::at(std::span<const std::uint16_t> block, int address) const {
  const int i = address - blockFirst();
  if (i < 0 || static_cast<std::size_t>(i) >= block.size()) return 0;
  return block[static_cast<std::size_t>(i)];
}

bool XrayProfile::bitSet(std::uint16_t word, const std::optional<int>& bit) {
  return bit && ((static_cast<unsigned>(word) >> static_cast<unsigned>(*bit)) & 1U) != 0;
}

std::string XrayProfile::commandOf(int code) const {
  for (const auto& [command, c] : commandCodes)
    if (c == code) return command;
  return "";
}

tl::expected<XrayProfile, ConfigErrors> parseXrayProfile(std::string_view yamlText,
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
  XrayProfile p;
  try {
    p = ProfileParser(file, errors).parse(root);
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on odd nodes; keep it a value
    errors.add(file, e.mark.line + 1, e.msg);
  }
  if (!errors.empty()) return tl::make_unexpected(errors);
  return p;
}

tl::expected<XrayProfile, ConfigErrors> loadXrayProfile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ConfigErrors errors;
    errors.add(path, 0, "cannot read the profile file");
    return tl::make_unexpected(errors);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parseXrayProfile(text.str(), path);
}

}  // namespace lanegate
