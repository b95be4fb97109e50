#include "drivers/settings.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace lanegate {

std::string ConfigError::str() const {
  return file + ":" + std::to_string(line) + ": " + message;
}

int lineOf(const YAML::Node& node) {
  const auto mark = node.Mark();
  return mark.line < 0 ? 0 : mark.line + 1;
}

std::string InvalidUtf8::str() const {
  static const char* kHex = "0123456789ABCDEF";
  return std::string("not valid UTF-8 (byte 0x") + kHex[(byte >> 4) & 0xF] + kHex[byte & 0xF] +
         " at column " + std::to_string(column) + ")";
}

std::optional<InvalidUtf8> findInvalidUtf8(std::string_view text) {
  int line = 1;
  std::size_t lineStart = 0;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      lineStart = ++i;
      continue;
    }
    // The length of the sequence and the range of its second byte (RFC 3629 table):
    // no overlong forms, no surrogates, nothing above U+10FFFF.
    std::size_t len = 1;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80)
      len = 1;
    else if (c >= 0xC2 && c <= 0xDF)
      len = 2;
    else if (c == 0xE0)
      len = 3, lo = 0xA0;
    else if (c == 0xED)
      len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF)
      len = 3;
    else if (c == 0xF0)
      len = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3)
      len = 4;
    else if (c == 0xF4)
      len = 4, hi = 0x8F;
    else
      len = 0;
    bool ok = len != 0 && i + len <= text.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    }
    if (!ok) return InvalidUtf8{line, static_cast<int>(i - lineStart) + 1, c};
    i += len;
  }
  return std::nullopt;
}

void ConfigErrors::add(const std::string& file, const YAML::Node& at, std::string message) {
  add(file, lineOf(at), std::move(message));
}

void ConfigErrors::add(const std::string& file, int line, std::string message) {
  errors_.push_back({file, line, std::move(message)});
}

std::string ConfigErrors::str() const {
  std::string out;
  for (const auto& e : errors_) out += e.str() + "\n";
  return out;
}

SettingsReader::SettingsReader(std::string file, YAML::Node map, std::string where,
                               ConfigErrors& errors)
    : file_(std::move(file)), map_(std::move(map)), where_(std::move(where)), errors_(errors) {
  if (map_ && !map_.IsMap() && !map_.IsNull()) {
    errors_.add(file_, map_, where_ + ": expected a map of keys");
    map_ = YAML::Node(YAML::NodeType::Map);
  }
}

bool SettingsReader::has(const std::string& key) const {
  return map_ && map_.IsMap() && map_[key];
}

int SettingsReader::lineOfKey(const std::string& key) const {
  if (has(key)) return lineOf(map_[key]);
  return lineOf(map_);
}

std::optional<YAML::Node> SettingsReader::lookup(const std::string& key, bool required) {
  seen_.insert(key);
  if (has(key)) {
    const YAML::Node& cmap = map_;
    YAML::Node v = cmap[key];
    if (!v.IsNull()) return v;
    if (required) errors_.add(file_, v, where_ + ": '" + key + "' must not be empty");
    return std::nullopt;
  }
  if (required) errors_.add(file_, map_, where_ + ": missing required key '" + key + "'");
  return std::nullopt;
}

void SettingsReader::typeError(const std::string& key, const YAML::Node& value,
                               const char* expected) {
  std::string got = value.IsScalar() ? "'" + value.Scalar() + "'"
                    : value.IsSequence() ? std::string("a list")
                                         : std::string("a map");
  errors_.add(file_, value, where_ + ": '" + key + "' must be " + expected + ", got " + got);
}

std::string SettingsReader::string(const std::string& key,
                                   const std::optional<std::string>& fallback) {
  const auto found = lookup(key, !fallback.has_value());
  if (!found) return fallback.value_or("");
  const YAML::Node& v = *found;
  if (!v.IsScalar()) {
    typeError(key, v, "a string");
    return fallback.value_or("");
  }
  return v.Scalar();
}

std::int64_t SettingsReader::integer(const std::string& key,
                                     const std::optional<std::int64_t>& fallback,
                                     std::int64_t min, std::int64_t max) {
  const auto found = lookup(key, !fallback.has_value());
  if (!found) return fallback.value_or(min);
  const YAML::Node& v = *found;
  std::int64_t out = 0;
  const std::string s = v.IsScalar() ? v.Scalar() : std::string();
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (!v.IsScalar() || ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    typeError(key, v, "an integer");
    return fallback.value_or(min);
  }
  if (out < min || out > max) {
    errors_.add(file_, v,
                where_ + ": '" + key + "' must be between " + std::to_string(min) + " and " +
                    std::to_string(max) + ", got " + s);
    return fallback.value_or(min);
  }
  return out;
}

double SettingsReader::number(const std::string& key, const std::optional<double>& fallback,
                              double min, double max) {
  const auto found = lookup(key, !fallback.has_value());
  if (!found) return fallback.value_or(min);
  const YAML::Node& v = *found;
  double out = 0;
  const std::string s = v.IsScalar() ? v.Scalar() : std::string();
  std::istringstream in(s);
  in.imbue(std::locale::classic());
  in >> out;
  if (!v.IsScalar() || s.empty() || in.fail() || !in.eof()) {
    typeError(key, v, "a number");
    return fallback.value_or(min);
  }
  if (out < min || out > max) {
    std::ostringstream msg;
    msg << where_ << ": '" << key << "' must be between " << min << " and " << max << ", got "
        << s;
    errors_.add(file_, v, msg.str());
    return fallback.value_or(min);
  }
  return out;
}

bool SettingsReader::boolean(const std::string& key, const std::optional<bool>& fallback) {
  const auto found = lookup(key, !fallback.has_value());
  if (!found) return fallback.value_or(false);
  const YAML::Node& v = *found;
  if (v.IsScalar()) {
    const std::string& s = v.Scalar();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  typeError(key, v, "true or false");
  return fallback.value_or(false);
}

std::string SettingsReader::choice(const std::string& key,
                                   const std::optional<std::string>& fallback,
                                   const std::vector<std::string>& choices) {
  const auto before = errors_.all().size();
  std::string s = string(key, fallback);
  if (errors_.all().size() != before || !has(key)) return s;
  if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    const YAML::Node& cmap = map_;
    errors_.add(file_, cmap[key], where_ + ": '" + key + "' must be one of " + list + ", got '" + s + "'");
    return fallback.value_or("");
  }
  return s;
}

YAML::Node SettingsReader::map(const std::string& key, bool required) {
  return container(key, required, YAML::NodeType::Map, "a map");
}

YAML::Node SettingsReader::sequence(const std::string& key, bool required) {
  return container(key, required, YAML::NodeType::Sequence, "a list");
}

YAML::Node SettingsReader::container(const std::string& key, bool required,
                                     YAML::NodeType::value type, const char* expected) {
  const auto found = lookup(key, required);
  if (found && found->Type() == type) return *found;
  if (found) typeError(key, *found, expected);
  return YAML::Node(type);
}

void SettingsReader::finish() {
  if (!map_ || !map_.IsMap()) return;
  for (const auto& kv : map_) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
    if (!seen_.count(key)) errors_.add(file_, kv.first, where_ + ": unknown key '" + key + "'");
  }
}

}  // namespace lanegate
