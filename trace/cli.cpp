#include "trace/cli.h"

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>

#include "trace/analysis.h"
#include "trace/library.h"
#include "trace/spectrum.h"

namespace lanegate::trace {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 1;
constexpr int kExitUsage = 2;
// A substance library is a few kB; a spectrum of 4000 points (Contract 3's most) about
// 30 kB, under 100 kB pretty-printed. Larger files are refused before they are read or
// parsed, so the parser never builds more than a bounded document.
constexpr std::streamoff kMaxFileBytes = 16 * 1024 * 1024;
constexpr std::streamoff kMaxSpectrumBytes = 1024 * 1024;

std::optional<std::string> readFile(const std::string& path, std::string& error,
                                    std::streamoff maxBytes = kMaxFileBytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open";
    return std::nullopt;
  }
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size > maxBytes) {
    error = "file too large (" + std::to_string(size) + " bytes; at most " +
            std::to_string(maxBytes) + ")";
    return std::nullopt;
  }
  in.seekg(0, std::ios::beg);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = "read error";
    return std::nullopt;
  }
  return text.str();
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string pad(const std::string& s, std::size_t width, bool right = true) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return out;
}

void printTable(const std::string& file, const Spectrum& s, const Analysis& a, std::ostream& out) {
  const double spanMs = static_cast<double>(s.points.size()) * s.periodNs * 1e-6;
  out << file << ": " << upper(verdictName(a.verdict)) << "  (" << ionModeName(s.mode) << " mode, "
      << s.points.size() << " points, " << fixed(spanMs, 2) << " ms";
  if (s.driftTempK) out << ", drift tube " << fixed(*s.driftTempK, 1) << " K";
  if (s.pressureHpa) out << ", " << fixed(*s.pressureHpa, 1) << " hPa";
  out << ")\n";
  out << "reactant ion : "
      << (a.reactantDriftMs ? fixed(*a.reactantDriftMs, 3) + " ms, amplitude " + fixed(a.reactantAmplitude, 0) +
                                  ", " + fixed(100.0 * a.reactantIonFraction, 0) + " % of ion signal" +
                                  (a.reactantDepleted ? " (DEPLETED)" : "")
                            : std::string("not found"))
      << "\n";
  out << "calibrant    : "
      << (a.calibrantFound ? fixed(*a.calibrantDriftMs, 3) + " ms, K0 " + fixed(*a.calibrantK0, 4)
                           : std::string("not found"))
      << "\n";
  out << "noise sigma  : " << fixed(a.noiseSigma, 1) << " counts";
  if (a.resolvingPower) out << ", resolving power " << fixed(*a.resolvingPower, 0);
  out << "\n\n";
  out << pad("drift_ms", 9) << pad("k0", 8) << pad("amplitude", 11) << pad("snr", 8)
      << pad("fwhm_ms", 9) << "  substance\n";
  for (const Peak& p : a.peaks) {
    std::string what;
    switch (p.role) {
      case PeakRole::kReactant: what = "(reactant ion)"; break;
      case PeakRole::kCalibrant: what = "(calibrant)"; break;
      case PeakRole::kReactantCluster: what = "(reactant cluster)"; break;
      case PeakRole::kAnalyte:
        if (p.substance) {
          what = *p.substance + (p.alarm ? "  ALARM" : "  (below threshold)");
        } else if (p.unidentified) {
          what = p.watchWindow ? "UNIDENTIFIED  [in watch window]" : "UNIDENTIFIED";
        } else {
          what = "-";
        }
        break;
    }
    if (p.resolved) {
      what += "  [resolved from overlap]";
    } else if (p.overlapped) {
      what += p.shoulder ? "  [shoulder]" : "  [overlapped]";
    }
    if (p.flatTop) what += "  [flat top]";
    if (!p.alternatives.empty()) {
      what += "  (also in window:";
      for (const std::string& alt : p.alternatives) what += " " + alt;
      what += ")";
    }
    out << pad(fixed(p.driftMs, 3), 9) << pad(p.k0 ? fixed(*p.k0, 4) : std::string("-"), 8)
        << pad(fixed(p.amplitude, 0), 11) << pad(fixed(p.snr, 1), 8) << pad(fixed(p.fwhmMs, 3), 9)
        << "  " << what << "\n";
  }
  if (a.peaks.empty()) out << "  (no peaks)\n";
  out << "\n";
  for (const std::string& reason : a.reasons) out << "- " << reason << "\n";
}

}  // namespace

int imsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const std::string& defaultLibrary) {
  CLI::App app("Offline IMS plasmagram analysis (Contract 6).", "lanegatectl ims");
  app.failure_message(CLI::FailureMessage::help);  // a mistake shows the usage too
  app.require_subcommand(1);
  std::string spectrumPath;
  std::string libraryPath = defaultLibrary;
  bool json = false;
  CLI::App* sub =
      app.add_subcommand("analyze", "analyse one plasmagram (SPECTRUM.json) against the library");
  sub->add_option("SPECTRUM.json", spectrumPath, "the spectrum, Contract 6 SPECTRUM.json")
      ->required();
  sub->add_flag("--json", json, "print the analysis as JSON");
  sub->add_option("--library", libraryPath, "substance library")->capture_default_str();
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    // --help prints on `out` and exits 0; any other mistake is a usage error.
    return app.exit(e, out, err) == 0 ? kExitOk : kExitUsage;
  }
  if (libraryPath.empty()) {
    err << "lanegatectl ims analyze: no substance library (use --library FILE)\n";
    return kExitUsage;
  }

  std::string error;
  const auto libraryText = readFile(libraryPath, error);
  if (!libraryText) {
    err << libraryPath << ": " << error << "\n";
    return kExitBadInput;
  }
  auto library = SubstanceLibrary::parse(*libraryText, libraryPath);
  if (!library) {
    err << library.error() << "\n";
    return kExitBadInput;
  }
  const auto spectrumText = readFile(spectrumPath, error, kMaxSpectrumBytes);
  if (!spectrumText) {
    err << spectrumPath << ": " << error << "\n";
    return kExitBadInput;
  }
  auto spectrum = parseSpectrumJson(*spectrumText);
  if (!spectrum) {
    err << spectrumPath << ": " << spectrum.error() << "\n";
    return kExitBadInput;
  }
  const Analysis analysis = analyze(*spectrum, *library);
  if (json) {
    out << toJson(analysis) << "\n";
  } else {
    printTable(spectrumPath, *spectrum, analysis, out);
  }
  return kExitOk;
}

}  // namespace lanegate::trace
