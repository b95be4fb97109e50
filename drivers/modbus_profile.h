#pragma once
// What every Modbus register profile shares (config/profiles/*.yaml; Contracts 3 and 4),
// parsed by one parser: the name, the table of readable registers, the profile_version
// check, the status register and its bits, and the command protocol (a code written to
// the command register, progress in the result register). The IMS and X-ray profiles add
// their own registers through a callback; the parser reports every error as file:line.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <tl/expected.hpp>

#include "drivers/modbus_link.h"
#include "drivers/settings.h"

namespace lanegate {

/// The command protocol of Contracts 3 and 4.
struct ProfileCommands {
  int commandRegister = 40;                            ///< holding register a command is written to
  int resultRegister = 41;                             ///< register the device reports progress in
  RegisterTable resultTable = RegisterTable::holding;  ///< its table
  std::map<std::string, int> codes;                    ///< command name → code
  int idle = 0, running = 1, ok = 2, failed = 3;       ///< values of the result register
  /// The command name of a code, or "" when no command has it.
  [[nodiscard]] std::string nameOf(int code) const;
};

/// The part of a register map every Modbus device profile has.
struct ModbusProfile {
  std::string name;                              ///< the profile's `profile:` key
  std::string file;                              ///< where it was loaded from
  RegisterTable table = RegisterTable::holding;  ///< table of every readable register
  std::optional<int> versionAddress;             ///< profile_version register
  int expectedVersion = 0;                       ///< value it must hold
  int status = 1;                                ///< status bits register
  ProfileCommands commands;                      ///< the command protocol
  /// True when the status word has bit `bit` set (false when the profile lacks it).
  [[nodiscard]] static bool bitSet(std::uint16_t word, const std::optional<int>& bit);
};

/// The readers a profile reads its own keys from.
struct ProfileKeys {
  SettingsReader& top;              ///< the profile's top-level keys
  SettingsReader& registers;        ///< `registers:`
  const YAML::Node& registersNode;  ///< `registers:` as YAML (for nested entries)
  SettingsReader& bits;             ///< `status_bits:`
};

/// Reads a register address 0..65535.
int readAddress(SettingsReader& settings, const std::string& key);
/// Reads a status bit number 0..15; nullopt when the key is absent (no such bit).
std::optional<int> readStatusBit(SettingsReader& bits, const std::string& key);

/// Parses a profile: the shared part into `common`, the rest through `body`; `commandNames`
/// are the commands the device type takes. When everything read cleanly, `check` (may be
/// empty) looks at the whole, reporting at `line`. Returns every error found.
ConfigErrors parseModbusProfile(std::string_view yamlText, const std::string& file,
                                ModbusProfile& common, const std::vector<std::string>& commandNames,
                                const std::function<void(ProfileKeys&)>& body,
                                const std::function<void(ConfigErrors&, int line)>& check);

/// A profile file's text, or an error naming the file.
tl::expected<std::string, ConfigErrors> readProfileFile(const std::string& path);

/// Parses a profile of type P: `body` reads its own keys into it, `check` (may be empty)
/// looks at the whole once everything read cleanly.
template <typename P>
tl::expected<P, ConfigErrors> parseProfile(std::string_view yamlText, const std::string& file,
                                           const std::vector<std::string>& commandNames,
                                           void (*body)(ProfileKeys&, P&),
                                           void (*check)(const P&, ConfigErrors&, int line)) {
  P p;
  const ConfigErrors errors = parseModbusProfile(
      yamlText, file, p, commandNames, [&](ProfileKeys& k) { body(k, p); },
      [&](ConfigErrors& e, int line) {
        if (check != nullptr) check(p, e, line);
      });
  if (!errors.empty()) return tl::make_unexpected(errors);
  return p;
}

/// A profile type's parser: its text and the file it came from (for messages).
template <typename P>
using ProfileParser = tl::expected<P, ConfigErrors> (*)(std::string_view yamlText,
                                                        const std::string& file);

/// Reads a profile file and parses it, e.g. loadProfile(path, parseImsProfile).
template <typename P>
tl::expected<P, ConfigErrors> loadProfile(const std::string& path, ProfileParser<P> parse) {
  return readProfileFile(path).and_then([&](const std::string& text) { return parse(text, path); });
}

}  // namespace lanegate
