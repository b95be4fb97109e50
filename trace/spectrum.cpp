#include "trace/spectrum.h"

#include <cmath>

#include <nlohmann/json.hpp>

namespace lanegate::trace {

namespace {

using Json = nlohmann::json;

// Reads an optional positive number; the plausibility range catches unit mistakes
// (°C for K, kPa or Torr for hPa) that would otherwise pass silently into the audit trail.
tl::expected<std::optional<double>, std::string> optionalNumber(const Json& doc, const char* key,
                                                                double lo, double hi,
                                                                const char* what) {
  const auto it = doc.find(key);
  if (it == doc.end() || it->is_null()) return std::optional<double>{};
  if (!it->is_number()) {
    return tl::make_unexpected(std::string(key) + ": expected a number (" + what + ")");
  }
  const double value = it->get<double>();
  if (!std::isfinite(value) || value < lo || value > hi) {
    return tl::make_unexpected(std::string(key) + ": " + Json(value).dump() + " is outside " +
                               Json(lo).dump() + ".." + Json(hi).dump() + " (" + what + ")");
  }
  return std::optional<double>{value};
}

// A JSON value for an error message, cut short so a huge array cannot flood the terminal.
std::string shortDump(const Json& value) {
  std::string text = value.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

}  // namespace

std::string_view ionModeName(IonMode mode) {
  return mode == IonMode::kNegative ? "negative" : "positive";
}

std::optional<IonMode> parseIonMode(std::string_view text) {
  if (text == "positive") return IonMode::kPositive;
  if (text == "negative") return IonMode::kNegative;
  return std::nullopt;
}

tl::expected<Spectrum, std::string> parseSpectrumJson(std::string_view text) {
  // allow_exceptions = false: a syntax error yields a discarded value instead of a throw.
  const Json doc = Json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) return tl::make_unexpected(std::string("not valid JSON"));
  if (!doc.is_object()) return tl::make_unexpected(std::string("expected a JSON object"));

  Spectrum spectrum;

  const auto points = doc.find("points");
  if (points == doc.end()) return tl::make_unexpected(std::string("points: missing"));
  if (!points->is_array()) {
    return tl::make_unexpected(std::string("points: expected an array of integers 0..65535"));
  }
  if (points->empty()) return tl::make_unexpected(std::string("points: empty"));
  if (points->size() > kMaxSpectrumPoints) {
    return tl::make_unexpected("points: " + std::to_string(points->size()) + " points, at most " +
                               std::to_string(kMaxSpectrumPoints));
  }
  spectrum.points.reserve(points->size());
  for (std::size_t i = 0; i < points->size(); ++i) {
    const Json& p = (*points)[i];
    // Integral floats (1234.0, as numpy writes them) are accepted; fractions are not.
    const double v = p.is_number() ? p.get<double>() : -1.0;
    if (!p.is_number() || !std::isfinite(v) || v < 0.0 || v > 65535.0 || std::floor(v) != v) {
      return tl::make_unexpected("points: expected an array of integers 0..65535 (element " +
                                 std::to_string(i) + " is " + shortDump(p) + ")");
    }
    spectrum.points.push_back(static_cast<std::uint16_t>(v));
  }

  const auto period = doc.find("period_ns");
  if (period == doc.end()) return tl::make_unexpected(std::string("period_ns: missing"));
  if (!period->is_number() || !std::isfinite(period->get<double>()) ||
      period->get<double>() <= 0.0 || period->get<double>() > 1.0e6) {
    return tl::make_unexpected("period_ns: expected a positive number of nanoseconds up to 1e6, got " +
                               shortDump(*period));
  }
  spectrum.periodNs = period->get<double>();

  const auto mode = doc.find("mode");
  if (mode == doc.end()) return tl::make_unexpected(std::string("mode: missing"));
  const auto parsedMode =
      mode->is_string() ? parseIonMode(mode->get<std::string>()) : std::optional<IonMode>{};
  if (!parsedMode) {
    return tl::make_unexpected("mode: expected \"positive\" or \"negative\", got " + shortDump(*mode));
  }
  spectrum.mode = *parsedMode;

  auto calibrant = optionalNumber(doc, "calibrant_k0", 0.1, 5.0, "cm^2/(V s)");
  if (!calibrant) return tl::make_unexpected(calibrant.error());
  spectrum.calibrantK0 = *calibrant;
  auto temp = optionalNumber(doc, "drift_temp_k", 200.0, 800.0, "drift-tube temperature in kelvin");
  if (!temp) return tl::make_unexpected(temp.error());
  spectrum.driftTempK = *temp;
  auto pressure = optionalNumber(doc, "pressure_hpa", 100.0, 2000.0, "ambient pressure in hPa");
  if (!pressure) return tl::make_unexpected(pressure.error());
  spectrum.pressureHpa = *pressure;
  return spectrum;
}

std::string spectrumToJson(const Spectrum& spectrum) {
  Json doc;
  doc["points"] = spectrum.points;
  // Whole nanoseconds print as integers, as Contract 3's register holds them.
  if (std::floor(spectrum.periodNs) == spectrum.periodNs && spectrum.periodNs < 1.0e15) {
    doc["period_ns"] = static_cast<std::int64_t>(spectrum.periodNs);
  } else {
    doc["period_ns"] = spectrum.periodNs;
  }
  doc["mode"] = std::string(ionModeName(spectrum.mode));
  if (spectrum.calibrantK0) doc["calibrant_k0"] = *spectrum.calibrantK0;
  if (spectrum.driftTempK) doc["drift_temp_k"] = *spectrum.driftTempK;
  if (spectrum.pressureHpa) doc["pressure_hpa"] = *spectrum.pressureHpa;
  return doc.dump();
}

}  // namespace lanegate::trace
