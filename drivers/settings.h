#pragma once
// Reading a YAML map into plain values with errors as "file:line: message".
// Used by the daemon's config and by each driver for its own `devices:` entry, so
// every config error in the project reads the same way.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lanegate {

/// One configuration error, located in its file.
struct ConfigError {
  std::string file;
  int line = 0;  ///< 1-based; 0 when the error is about the file itself
  std::string message;
  /// "file:line: message"
  [[nodiscard]] std::string str() const;
};

/// Collects errors while a config is read; reading goes on after an error so that
/// one run reports every problem.
class ConfigErrors {
 public:
  /// Records an error at the node's line.
  void add(const std::string& file, const YAML::Node& at, std::string message);
  /// Records an error at an explicit line.
  void add(const std::string& file, int line, std::string message);
  /// True when nothing was recorded.
  [[nodiscard]] bool empty() const { return errors_.empty(); }
  /// Every error recorded, in order.
  [[nodiscard]] const std::vector<ConfigError>& all() const { return errors_; }
  /// All errors, one "file:line: message" a line.
  [[nodiscard]] std::string str() const;

 private:
  std::vector<ConfigError> errors_;
};

/// 1-based line of a node (yaml-cpp marks are 0-based).
int lineOf(const YAML::Node& node);

/// Where a text stops being valid UTF-8, or nullopt when all of it is. A config or a
/// profile with such bytes is refused whole: its strings end up in logs, the status and
/// MQTT payloads, which are UTF-8.
struct InvalidUtf8 {
  int line = 1;    ///< 1-based
  int column = 1;  ///< 1-based, in bytes
  unsigned byte = 0;
  /// "not valid UTF-8 (byte 0xFF at column 7)"
  [[nodiscard]] std::string str() const;
};
std::optional<InvalidUtf8> findInvalidUtf8(std::string_view text);

/// Typed access to the keys of one YAML map. Each getter records what it read, so
/// that finish() can report the keys nobody asked for as unknown.
class SettingsReader {
 public:
  /// `where` names the map in messages, e.g. "broker" or "device 'ims-1'".
  SettingsReader(std::string file, YAML::Node map, std::string where, ConfigErrors& errors);

  /// A required or optional string.
  std::string string(const std::string& key, const std::optional<std::string>& fallback);
  /// A required or optional integer within [min, max].
  std::int64_t integer(const std::string& key, const std::optional<std::int64_t>& fallback,
                       std::int64_t min, std::int64_t max);
  /// A required or optional number within [min, max].
  double number(const std::string& key, const std::optional<double>& fallback, double min,
                double max);
  /// A required or optional boolean.
  bool boolean(const std::string& key, const std::optional<bool>& fallback);
  /// One of `choices`.
  std::string choice(const std::string& key, const std::optional<std::string>& fallback,
                     const std::vector<std::string>& choices);
  /// A nested map (an empty node when absent and optional).
  YAML::Node map(const std::string& key, bool required);
  /// A sequence (an empty node when absent and optional).
  YAML::Node sequence(const std::string& key, bool required);
  /// True when the key is present.
  [[nodiscard]] bool has(const std::string& key) const;
  /// Line of a key's value, or of the map when the key is absent.
  [[nodiscard]] int lineOfKey(const std::string& key) const;
  /// Marks a key as known without reading it.
  void allow(const std::string& key) { seen_.insert(key); }
  /// Reports the keys that were present but never read as unknown.
  void finish();

  /// The file name used in messages.
  [[nodiscard]] const std::string& file() const { return file_; }
  /// The error list this reader writes to.
  [[nodiscard]] ConfigErrors& errors() { return errors_; }

 private:
  std::optional<YAML::Node> lookup(const std::string& key, bool required);
  YAML::Node container(const std::string& key, bool required, YAML::NodeType::value type,
                       const char* expected);
  void typeError(const std::string& key, const YAML::Node& value, const char* expected);

  std::string file_;
  YAML::Node map_;
  std::string where_;
  ConfigErrors& errors_;
  std::set<std::string> seen_;
};

}  // namespace lanegate
