#include "trace/library.h"

#include <cmath>
#include <set>

#include <yaml-cpp/yaml.h>

namespace lanegate::trace {

namespace {

// yaml-cpp marks are 0-based; files and editors count from 1.
int lineOf(const YAML::Node& node) { return node.Mark().line >= 0 ? node.Mark().line + 1 : 0; }

// A number as written by hand: "0.9", "1.11", "65535" (up to six decimals).
std::string trim(double v) {
  std::string s = std::to_string(v);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

class Parser {
 public:
  explicit Parser(std::string_view fileName) : fileName_(fileName) {}

  std::string error(int line, const std::string& message) const {
    return fileName_ + ":" + std::to_string(line) + ": " + message;
  }

  // A scalar number in [lo, hi]; yaml-cpp's as<double> would throw, so convert by hand.
  tl::expected<double, std::string> number(const YAML::Node& node, const std::string& key,
                                           double lo, double hi) const {
    double value = 0.0;
    if (!node.IsScalar() || !YAML::convert<double>::decode(node, value) || !std::isfinite(value)) {
      return tl::make_unexpected(error(lineOf(node), key + ": expected a number"));
    }
    if (value < lo || value > hi) {
      return tl::make_unexpected(error(lineOf(node), key + ": " + node.Scalar() + " is outside " +
                                                         trim(lo) + ".." + trim(hi)));
    }
    return value;
  }

  // "positive" or "negative".
  tl::expected<IonMode, std::string> mode(const YAML::Node& node, const std::string& key) const {
    const auto mode = node.IsScalar() ? parseIonMode(node.Scalar()) : std::nullopt;
    if (!mode)
      return tl::make_unexpected(error(lineOf(node), key + ": expected 'positive' or 'negative'"));
    return *mode;
  }

  tl::expected<std::string, std::string> string(const YAML::Node& node,
                                                const std::string& key) const {
    if (!node.IsScalar() || node.Scalar().empty()) {
      return tl::make_unexpected(error(lineOf(node), key + ": expected a non-empty string"));
    }
    return node.Scalar();
  }

 private:
  std::string fileName_;
};

constexpr double kMinK0 = 0.1;
constexpr double kMaxK0 = 5.0;
constexpr double kMaxWindow = 1.0;

// The `watch:` list: each entry a mode and a K0 range, optionally named and explained.
// keyLine: where `watch:` stands (an empty value has no line of its own).
tl::expected<std::vector<WatchWindow>, std::string> parseWatch(const Parser& p,
                                                               const YAML::Node& list,
                                                               int keyLine) {
  if (!list.IsSequence()) {
    return tl::make_unexpected(p.error(list.IsNull() ? keyLine : lineOf(list),
                                       "watch: expected a list of windows ([] for none)"));
  }
  std::vector<WatchWindow> out;
  for (const YAML::Node& entry : list) {
    const int line = lineOf(entry);
    if (!entry.IsMap()) return tl::make_unexpected(p.error(line, "watch: expected a mapping"));
    WatchWindow w;
    w.line = line;
    bool haveMode = false;
    bool haveMin = false;
    bool haveMax = false;
    for (const auto& kv : entry) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& value = kv.second;
      if (key == "mode") {
        auto v = p.mode(value, "watch.mode");
        if (!v) return tl::make_unexpected(v.error());
        w.mode = *v;
        haveMode = true;
      } else if (key == "k0_min" || key == "k0_max") {
        auto v = p.number(value, "watch." + key, kMinK0, kMaxK0);
        if (!v) return tl::make_unexpected(v.error());
        (key == "k0_min" ? w.k0Min : w.k0Max) = *v;
        (key == "k0_min" ? haveMin : haveMax) = true;
      } else if (key == "name" || key == "reason") {
        auto v = p.string(value, "watch." + key);
        if (!v) return tl::make_unexpected(v.error());
        (key == "name" ? w.name : w.reason) = *v;
      } else {
        return tl::make_unexpected(p.error(lineOf(kv.first), "watch: unknown key '" + key + "'"));
      }
    }
    for (const auto& [have, key] : {std::pair{haveMode, "mode"}, std::pair{haveMin, "k0_min"},
                                    std::pair{haveMax, "k0_max"}}) {
      if (!have) {
        return tl::make_unexpected(p.error(line, std::string("watch: ") + key + " missing"));
      }
    }
    if (!(w.k0Min < w.k0Max)) {
      return tl::make_unexpected(p.error(
          line, "watch: k0_min " + trim(w.k0Min) + " must be below k0_max " + trim(w.k0Max)));
    }
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace

std::string WatchWindow::describe() const {
  std::string range = std::string(ionModeName(mode)) + ", K0 " + trim(k0Min) + "-" + trim(k0Max);
  return name.empty() ? "(" + range + ")" : "'" + name + "' (" + range + ")";
}

WatchWindow defaultWatchWindow() {
  WatchWindow w;
  w.mode = IonMode::kPositive;
  w.k0Min = 0.90;
  w.k0Max = 1.11;
  w.name = "fentanyl family";
  w.reason = "unprogrammed fentanyl analogues";
  return w;
}

std::string_view substanceRoleName(SubstanceRole role) {
  switch (role) {
    case SubstanceRole::kCalibrant: return "calibrant";
    case SubstanceRole::kReactant: return "reactant";
    case SubstanceRole::kTarget: break;
  }
  return "target";
}

tl::expected<SubstanceLibrary, std::string> SubstanceLibrary::parse(std::string_view yamlText,
                                                                    std::string_view fileName) {
  const Parser p(fileName);
  // yaml-cpp reports by exception; none may leave this module.
  try {
  const YAML::Node root = YAML::Load(std::string(yamlText));
  if (!root.IsMap()) return tl::make_unexpected(p.error(1, "expected a mapping with 'substances:'"));

  SubstanceLibrary lib;
  double defaultWindow = 0.005;
  int watchLine = 0;
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    if (key == "watch") watchLine = lineOf(kv.first);
    if (key != "version" && key != "defaults" && key != "substances" && key != "watch") {
      return tl::make_unexpected(p.error(lineOf(kv.first), "unknown key '" + key + "'"));
    }
  }
  if (const YAML::Node version = root["version"]) {
    auto v = p.number(version, "version", 1, 1);
    if (!v) return tl::make_unexpected(v.error());
  }
  if (const YAML::Node defaults = root["defaults"]) {
    if (!defaults.IsMap()) return tl::make_unexpected(p.error(lineOf(defaults), "defaults: expected a mapping"));
    for (const auto& kv : defaults) {
      const std::string key = kv.first.Scalar();
      tl::expected<double, std::string> v;
      if (key == "window") {
        v = p.number(kv.second, "defaults.window", 1e-6, kMaxWindow);
        if (v) defaultWindow = *v;
      } else if (key == "min_amplitude") {
        v = p.number(kv.second, "defaults.min_amplitude", 0.0, 65535.0);
        if (v) lib.defaultMinAmplitude_ = *v;
      } else if (key == "min_snr") {
        v = p.number(kv.second, "defaults.min_snr", 0.0, 1e6);
        if (v) lib.defaultMinSnr_ = *v;
      } else {
        return tl::make_unexpected(p.error(lineOf(kv.first), "defaults: unknown key '" + key + "'"));
      }
      if (!v) return tl::make_unexpected(v.error());
    }
  }

  if (const YAML::Node watch = root["watch"]) {
    auto windows = parseWatch(p, watch, watchLine);
    if (!windows) return tl::make_unexpected(windows.error());
    lib.watch_ = std::move(*windows);
  }

  const YAML::Node list = root["substances"];
  if (!list) return tl::make_unexpected(p.error(1, "substances: missing"));
  if (!list.IsSequence() || list.size() == 0) {
    return tl::make_unexpected(p.error(lineOf(list), "substances: expected a non-empty list"));
  }

  for (const YAML::Node& entry : list) {
    const int line = lineOf(entry);
    if (!entry.IsMap()) return tl::make_unexpected(p.error(line, "substance: expected a mapping"));
    Substance s;
    s.line = line;
    s.window = defaultWindow;
    s.minAmplitude = lib.defaultMinAmplitude_;
    s.minSnr = lib.defaultMinSnr_;
    bool haveK0 = false;
    bool haveMode = false;
    for (const auto& kv : entry) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& value = kv.second;
      if (key == "name") {
        auto v = p.string(value, "name");
        if (!v) return tl::make_unexpected(v.error());
        s.name = *v;
      } else if (key == "mode") {
        auto v = p.mode(value, "mode");
        if (!v) return tl::make_unexpected(v.error());
        s.mode = *v;
        haveMode = true;
      } else if (key == "k0") {
        auto v = p.number(value, "k0", kMinK0, kMaxK0);
        if (!v) return tl::make_unexpected(v.error());
        s.k0 = *v;
        haveK0 = true;
      } else if (key == "window") {
        auto v = p.number(value, "window", 1e-6, kMaxWindow);
        if (!v) return tl::make_unexpected(v.error());
        s.window = *v;
      } else if (key == "min_amplitude") {
        auto v = p.number(value, "min_amplitude", 0.0, 65535.0);
        if (!v) return tl::make_unexpected(v.error());
        s.minAmplitude = *v;
      } else if (key == "min_snr") {
        auto v = p.number(value, "min_snr", 0.0, 1e6);
        if (!v) return tl::make_unexpected(v.error());
        s.minSnr = *v;
      } else if (key == "role") {
        const std::string role = value.IsScalar() ? value.Scalar() : std::string();
        if (role == "target") {
          s.role = SubstanceRole::kTarget;
        } else if (role == "calibrant") {
          s.role = SubstanceRole::kCalibrant;
        } else if (role == "reactant") {
          s.role = SubstanceRole::kReactant;
        } else {
          return tl::make_unexpected(
              p.error(lineOf(value), "role: expected 'target', 'calibrant' or 'reactant'"));
        }
      } else {
        return tl::make_unexpected(p.error(lineOf(kv.first), "unknown key '" + key + "'"));
      }
    }
    if (s.name.empty()) return tl::make_unexpected(p.error(line, "substance without a name"));
    if (!haveMode) return tl::make_unexpected(p.error(line, s.name + ": mode missing"));
    if (!haveK0) return tl::make_unexpected(p.error(line, s.name + ": k0 missing"));
    if (s.window >= s.k0) {
      return tl::make_unexpected(p.error(line, s.name + ": window must be smaller than k0"));
    }
    if (lib.find(s.name, s.mode) != nullptr) {
      return tl::make_unexpected(p.error(line, s.name + ": duplicate " +
                                                   std::string(ionModeName(s.mode)) + "-mode entry"));
    }
    if (s.role != SubstanceRole::kTarget) {
      for (const Substance& other : lib.substances_) {
        if (other.mode == s.mode && other.role == s.role) {
          return tl::make_unexpected(p.error(
              line, s.name + ": a second " + std::string(ionModeName(s.mode)) + "-mode " +
                        std::string(substanceRoleName(s.role)) + " (first: " + other.name +
                        " at line " + std::to_string(other.line) + ")"));
        }
      }
    }
    lib.substances_.push_back(std::move(s));
  }

  // K0 is only ever computed against the in-spectrum calibrant, and the calibrant is found
  // by its drift-time ratio to the reactant ion peak, so a mode with targets needs both.
  for (const IonMode mode : {IonMode::kPositive, IonMode::kNegative}) {
    const Substance* firstTarget = nullptr;
    for (const Substance& s : lib.substances_) {
      if (s.mode == mode && s.role == SubstanceRole::kTarget) {
        firstTarget = &s;
        break;
      }
    }
    if (firstTarget == nullptr) continue;
    for (const SubstanceRole role : {SubstanceRole::kCalibrant, SubstanceRole::kReactant}) {
      const Substance* ref =
          role == SubstanceRole::kCalibrant ? lib.calibrant(mode) : lib.reactant(mode);
      if (ref == nullptr) {
        return tl::make_unexpected(p.error(
            firstTarget->line, std::string(ionModeName(mode)) + "-mode targets (" +
                                   firstTarget->name + ", ...) but no " +
                                   std::string(ionModeName(mode)) + "-mode " +
                                   std::string(substanceRoleName(role)) + " entry"));
      }
    }
    const Substance* cal = lib.calibrant(mode);
    const Substance* rip = lib.reactant(mode);
    if (rip->k0 - rip->window <= cal->k0 + cal->window) {
      return tl::make_unexpected(p.error(
          rip->line, rip->name + ": the reactant ion must be faster (higher k0) than the calibrant " +
                         cal->name + ", with non-overlapping windows"));
    }
  }
  return lib;
  } catch (const YAML::Exception& e) {
    return tl::make_unexpected(p.error(e.mark.line >= 0 ? e.mark.line + 1 : 1, e.msg));
  } catch (const std::exception& e) {
    return tl::make_unexpected(p.error(1, e.what()));
  }
}

const Substance* SubstanceLibrary::find(std::string_view name, IonMode mode) const {
  for (const Substance& s : substances_) {
    if (s.mode == mode && s.name == name) return &s;
  }
  return nullptr;
}

const Substance* SubstanceLibrary::find(std::string_view name) const {
  for (const Substance& s : substances_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Substance* SubstanceLibrary::calibrant(IonMode mode) const {
  for (const Substance& s : substances_) {
    if (s.mode == mode && s.role == SubstanceRole::kCalibrant) return &s;
  }
  return nullptr;
}

const WatchWindow* SubstanceLibrary::watchWindowAt(IonMode mode, double k0Lo, double k0Hi) const {
  for (const WatchWindow& w : watch_) {
    if (w.mode == mode && k0Lo <= w.k0Max && k0Hi >= w.k0Min) return &w;
  }
  return nullptr;
}

const Substance* SubstanceLibrary::reactant(IonMode mode) const {
  for (const Substance& s : substances_) {
    if (s.mode == mode && s.role == SubstanceRole::kReactant) return &s;
  }
  return nullptr;
}

}  // namespace lanegate::trace
