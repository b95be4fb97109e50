#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "trace/spectrum.h"

namespace lanegate::trace {

/// What a library entry is for: an alarm target, the in-spectrum calibrant, or the reactant ion.
enum class SubstanceRole { kTarget, kCalibrant, kReactant };

/// "target", "calibrant" or "reactant".
[[nodiscard]] std::string_view substanceRoleName(SubstanceRole role);

/// One library entry (see config/ims/substances.yaml for the meaning of each key).
struct Substance {
  std::string name;                           ///< unique within its mode
  IonMode mode = IonMode::kPositive;          ///< polarity the ion is seen in
  SubstanceRole role = SubstanceRole::kTarget;///< target, calibrant or reactant
  double k0 = 0.0;                            ///< reduced mobility, cm^2/(V s)
  double window = 0.0;                        ///< +/- K0 tolerance, cm^2/(V s)
  double minAmplitude = 0.0;                  ///< alarm threshold, counts above baseline
  double minSnr = 0.0;                        ///< alarm threshold, amplitude / noise sigma
  int line = 0;                               ///< 1-based line in the YAML file, for messages
};

/// A K0 range in which an unidentified peak keeps a sample from clearing: the neighbourhood
/// of a family whose unprogrammed analogues the library cannot name (see substances.yaml).
struct WatchWindow {
  IonMode mode = IonMode::kPositive;  ///< polarity the window applies to
  double k0Min = 0.0;                 ///< lower K0 bound, cm^2/(V s), inclusive
  double k0Max = 0.0;                 ///< upper K0 bound, cm^2/(V s), inclusive
  std::string name;                   ///< label for reasons; may be empty
  std::string reason;                 ///< why the range is watched; may be empty
  int line = 0;                       ///< 1-based line in the YAML file; 0 = the default window

  /// "'name' (positive, K0 0.900-1.110)", or without the name when it has none.
  [[nodiscard]] std::string describe() const;
};

/// The window that applies when a library file has no `watch:` key: positive mode,
/// K0 0.90-1.11, the fentanyl family's neighbourhood.
[[nodiscard]] WatchWindow defaultWatchWindow();

/// The IMS substance library, validated whole: at most one calibrant and one reactant per
/// mode, and both present in any mode that has targets.
class SubstanceLibrary {
 public:
  /// Parses YAML text; errors read "FILE:LINE: message" with the caller's file name.
  [[nodiscard]] static tl::expected<SubstanceLibrary, std::string> parse(std::string_view yamlText,
                                                                         std::string_view fileName);

  /// Every entry, in file order.
  [[nodiscard]] const std::vector<Substance>& substances() const { return substances_; }
  /// The entry with this name in this mode, or nullptr.
  [[nodiscard]] const Substance* find(std::string_view name, IonMode mode) const;
  /// The entry with this name in any mode, or nullptr.
  [[nodiscard]] const Substance* find(std::string_view name) const;
  /// The calibrant of a mode, or nullptr when the library has none.
  [[nodiscard]] const Substance* calibrant(IonMode mode) const;
  /// The reactant ion of a mode, or nullptr when the library has none.
  [[nodiscard]] const Substance* reactant(IonMode mode) const;
  /// Watch windows, in file order (the default window when the file has no `watch:` key).
  [[nodiscard]] const std::vector<WatchWindow>& watchWindows() const { return watch_; }
  /// The first watch window of this mode that meets [k0Lo, k0Hi], or nullptr.
  [[nodiscard]] const WatchWindow* watchWindowAt(IonMode mode, double k0Lo, double k0Hi) const;
  /// Library-wide default SNR threshold, also the significance of an unidentified peak.
  [[nodiscard]] double defaultMinSnr() const { return defaultMinSnr_; }
  /// Library-wide default amplitude threshold, also applied to unidentified peaks.
  [[nodiscard]] double defaultMinAmplitude() const { return defaultMinAmplitude_; }

 private:
  std::vector<Substance> substances_;
  std::vector<WatchWindow> watch_{defaultWatchWindow()};
  double defaultMinSnr_ = 5.0;
  double defaultMinAmplitude_ = 50.0;
};

}  // namespace lanegate::trace
