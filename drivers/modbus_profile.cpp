#include "drivers/modbus_profile.h"

#include <fstream>
#include <set>
#include <sstream>

namespace lanegate {

namespace {

constexpr int kMaxAddress = 65535;

RegisterTable readTable(SettingsReader& s, const std::string& key) {
  return s.choice(key, std::string("holding"), {"holding", "input"}) == "input"
             ? RegisterTable::input
             : RegisterTable::holding;
}

void readCommands(SettingsReader& top, const std::string& file, ConfigErrors& errors,
                  ProfileCommands& c, const std::vector<std::string>& names) {
  SettingsReader cmd(file, top.map("commands", true), "profile commands", errors);
  c.commandRegister = readAddress(cmd, "register");
  c.resultRegister = readAddress(cmd, "result_register");
  c.resultTable = readTable(cmd, "result_table");
  SettingsReader codes(file, cmd.map("codes", true), "profile command codes", errors);
  for (const std::string& name : names)
    c.codes[name] = static_cast<int>(codes.integer(name, std::nullopt, 1, 65535));
  codes.finish();
  SettingsReader results(file, cmd.map("results", true), "profile command results", errors);
  for (auto [key, value] : {std::pair{"idle", &c.idle}, std::pair{"running", &c.running},
                            std::pair{"ok", &c.ok}, std::pair{"failed", &c.failed}})
    *value = static_cast<int>(results.integer(key, std::nullopt, 0, 65535));
  results.finish();
  cmd.finish();
}

// What must hold across the keys: a device cannot tell two commands of one code apart,
// nor follow a command whose result values coincide.
void checkCommands(const ProfileCommands& c, const std::string& file, int line,
                   ConfigErrors& errors) {
  std::map<int, std::string> seen;
  for (const auto& [name, code] : c.codes) {
    if (seen.count(code))
      errors.add(file, line,
                 "profile: commands " + seen[code] + " and " + name + " share code " +
                     std::to_string(code));
    seen[code] = name;
  }
  const std::set<int> results{c.idle, c.running, c.ok, c.failed};
  if (results.size() != 4)
    errors.add(file, line, "profile: command results idle, running, ok, failed must differ");
}

}  // namespace

std::string ProfileCommands::nameOf(int code) const {
  for (const auto& [command, c] : codes)
    if (c == code) return command;
  return "";
}

bool ModbusProfile::bitSet(std::uint16_t word, const std::optional<int>& bit) {
  return bit && ((static_cast<unsigned>(word) >> static_cast<unsigned>(*bit)) & 1U) != 0;
}

int readAddress(SettingsReader& s, const std::string& key) {
  return static_cast<int>(s.integer(key, std::nullopt, 0, kMaxAddress));
}

std::optional<int> readStatusBit(SettingsReader& bits, const std::string& key) {
  if (!bits.has(key)) {
    bits.allow(key);
    return std::nullopt;
  }
  return static_cast<int>(bits.integer(key, std::nullopt, 0, 15));
}

ConfigErrors parseModbusProfile(std::string_view yamlText, const std::string& file,
                                ModbusProfile& p, const std::vector<std::string>& commandNames,
                                const std::function<void(ProfileKeys&)>& body,
                                const std::function<void(ConfigErrors&, int line)>& check) {
  ConfigErrors errors;
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yamlText));
  } catch (const YAML::Exception& e) {
    errors.add(file, e.mark.line + 1, "YAML syntax error: " + e.msg);
    return errors;
  }
  if (!root.IsMap()) {
    errors.add(file, root.IsNull() ? 1 : lineOf(root), "profile: expected a map of keys");
    return errors;
  }
  try {
    p.file = file;
    SettingsReader top(file, root, "profile", errors);
    p.name = top.string("profile", std::nullopt);
    p.table = readTable(top, "table");
    const YAML::Node regsNode = top.map("registers", true);
    SettingsReader regs(file, regsNode, "profile registers", errors);
    if (regs.has("profile_version")) {
      SettingsReader v(file, regs.map("profile_version", false), "profile_version", errors);
      p.versionAddress = readAddress(v, "address");
      p.expectedVersion = static_cast<int>(v.integer("expect", std::nullopt, 0, 65535));
      v.finish();
    }
    p.status = readAddress(regs, "status");
    SettingsReader bits(file, top.map("status_bits", true), "profile status_bits", errors);
    ProfileKeys keys{top, regs, regsNode, bits};
    body(keys);
    regs.finish();
    bits.finish();
    readCommands(top, file, errors, p.commands, commandNames);
    top.finish();
    if (errors.empty()) {
      checkCommands(p.commands, file, lineOf(root), errors);
      if (check) check(errors, lineOf(root));
    }
  } catch (const YAML::Exception& e) {  // yaml-cpp throws on odd nodes; keep it a value
    errors.add(file, e.mark.line + 1, e.msg);
  }
  return errors;
}

tl::expected<std::string, ConfigErrors> readProfileFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    ConfigErrors errors;
    errors.add(path, 0, "cannot read the profile file");
    return tl::make_unexpected(errors);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (const auto bad = findInvalidUtf8(text.str())) {
    ConfigErrors errors;
    errors.add(path, bad->line, "profile: " + bad->str());
    return tl::make_unexpected(errors);
  }
  return text.str();
}

}  // namespace lanegate
