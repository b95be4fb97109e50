#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

namespace lanegate::trace {

/// Drift-field polarity of a plasmagram: which ions the detector collected.
enum class IonMode { kPositive, kNegative };

/// "positive" or "negative", as written in SPECTRUM.json and substances.yaml.
[[nodiscard]] std::string_view ionModeName(IonMode mode);

/// Parses "positive" / "negative"; nullopt for anything else.
[[nodiscard]] std::optional<IonMode> parseIonMode(std::string_view text);

/// The most points a spectrum may hold (Contract 3: N <= 4000).
inline constexpr std::size_t kMaxSpectrumPoints = 4000;

/// One averaged plasmagram: ion current sampled every period_ns from gate opening (t = i * period).
struct Spectrum {
  std::vector<std::uint16_t> points;        ///< ion current, raw ADC counts
  double periodNs = 0.0;                    ///< drift-time step between points, ns
  IonMode mode = IonMode::kPositive;        ///< drift-field polarity
  std::optional<double> calibrantK0;        ///< overrides the library calibrant K0 when set
  std::optional<double> driftTempK;         ///< drift-tube temperature, K (kept for audit)
  std::optional<double> pressureHpa;        ///< ambient pressure, hPa (kept for audit)
};

/// Parses Contract 6 SPECTRUM.json text; the error names the offending field.
[[nodiscard]] tl::expected<Spectrum, std::string> parseSpectrumJson(std::string_view text);

/// Serialises a spectrum as Contract 6 SPECTRUM.json (optional fields only when set).
[[nodiscard]] std::string spectrumToJson(const Spectrum& spectrum);

}  // namespace lanegate::trace
