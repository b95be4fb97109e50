#include "vision/cli.h"

#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/evaluate.h"
#include "vision/overlay.h"
#include "vision/phantom.h"
#include "vision/qa.h"

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace lanegate::vision {
namespace {

namespace fs = std::filesystem;
constexpr int kOk = 0;
constexpr int kBadInput = 1;
constexpr int kUsage = 2;

const char* kUsageText =
    "usage: analyze SCAN.json|SCAN.tiff [--json] [--overlay FILE.jpg] [--calibration FILE]\n"
    "       eval DIR\n"
    "       phantoms --out DIR --count N --seed S [--raw] [--single] [--pixel-mm MM]\n"
    "       phantoms --qa --out DIR [--seed S] [--noise X] [--blur-mm MM] [--single] [--pixel-mm MM]\n"
    "       qa SCAN.json|SCAN.tiff [--json] [--calibration FILE]\n";

int usage(std::ostream& err, const std::string& why) {
  err << why << "\n" << kUsageText;
  return kUsage;
}

bool parseNumber(const std::string& s, double& v) {
  try {
    std::size_t used = 0;
    v = std::stod(s, &used);
    return used == s.size();
  } catch (const std::exception&) {
    return false;
  }
}

int analyze(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string path;
  std::string overlay;
  std::string calibration;
  bool json = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--overlay" && i + 1 < args.size()) {
      overlay = args[++i];
    } else if (args[i] == "--calibration" && i + 1 < args.size()) {
      calibration = args[++i];
    } else if (!args[i].empty() && args[i][0] != '-' && path.empty()) {
      path = args[i];
    } else {
      return usage(err, "analyze: unexpected argument '" + args[i] + "'");
    }
  }
  if (path.empty()) return usage(err, "analyze: which scan?");
  auto bundle = loadBundle(path);
  if (!bundle) {
    err << bundle.error() << "\n";
    return kBadInput;
  }
  AnalysisParams params;
  Calibration cal;
  if (!calibration.empty()) {
    auto c = loadCalibration(calibration);
    if (!c) {
      err << c.error() << "\n";
      return kBadInput;
    }
    cal = std::move(*c);
    params.calibration = &cal;
  }
  const Findings f = analyzeScan(*bundle, params);
  if (!f.error.empty()) {
    err << f.error << "\n";
    return kBadInput;
  }
  if (json) {
    out << toJson(f) << "\n";
  } else {
    out << f.scanId << ": " << f.verdict << " (" << f.findings.size() << " findings, " << f.totalMs << " ms)\n";
    for (const Finding& x : f.findings)
      out << "  " << x.kind << " score " << x.score << " at x=" << x.boxMm[0] << " mm y=" << x.boxMm[1]
          << " mm: " << x.reason << "\n";
  }
  if (!overlay.empty()) {
    auto jpeg = renderOverlay(f);
    if (overlay.ends_with(".png")) {
      // PNG for viewers that lack JPEG; same picture, re-encoded.
      std::vector<std::uint8_t> png;
      cv::imencode(".png", cv::imdecode(jpeg, cv::IMREAD_COLOR), png);
      jpeg = std::move(png);
    }
    std::ofstream o(overlay, std::ios::binary);
    o.write(reinterpret_cast<const char*>(jpeg.data()), static_cast<std::streamsize>(jpeg.size()));
    if (!o) {
      err << overlay << ": cannot write the overlay\n";
      return kBadInput;
    }
  }
  return kOk;
}

int eval(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.size() != 2) return usage(err, "eval: which directory?");
  const std::string dir = args[1];
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    err << dir << ": not a directory\n";
    return kBadInput;
  }
  Calibration cal;
  bool haveCal = false;
  if (fs::exists(fs::path(dir) / "calibration.json")) {
    auto c = loadCalibration((fs::path(dir) / "calibration.json").string());
    if (!c) {
      err << c.error() << "\n";
      return kBadInput;
    }
    cal = std::move(*c);
    haveCal = true;
  }
  std::vector<fs::path> truths;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 11 && name.ends_with(".truth.json")) truths.push_back(e.path());
  }
  std::sort(truths.begin(), truths.end());
  if (truths.empty()) {
    err << dir << ": no *.truth.json ground-truth files\n";
    return kBadInput;
  }
  AnalysisParams params;
  if (haveCal) params.calibration = &cal;
  EvalReport report;
  for (const fs::path& t : truths) {
    auto text = readFileCapped(t.string(), 1 << 20);
    if (!text) {
      err << text.error() << "\n";
      return kBadInput;
    }
    auto truth = parseTruth(*text, t.string());
    if (!truth) {
      err << truth.error() << "\n";
      return kBadInput;
    }
    auto bundle = loadBundle((fs::path(dir) / (truth->scanId + ".json")).string());
    if (!bundle) {
      err << bundle.error() << "\n";
      return kBadInput;
    }
    accumulate(report, *truth, analyzeScan(*bundle, params), params.hitScore);
  }
  out << formatReport(report);
  return kOk;
}

int phantoms(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string dir;
  double count = -1;
  double seed = -1;
  bool qa = false;
  double noise = 1.0;
  PhantomOptions o;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const bool hasValue = i + 1 < args.size();
    if (args[i] == "--out" && hasValue) {
      dir = args[++i];
    } else if (args[i] == "--count" && hasValue) {
      if (!parseNumber(args[++i], count) || count < 1 || count > 100000) return usage(err, "phantoms: bad --count");
    } else if (args[i] == "--seed" && hasValue) {
      if (!parseNumber(args[++i], seed) || seed < 0) return usage(err, "phantoms: bad --seed");
    } else if (args[i] == "--pixel-mm" && hasValue) {
      if (!parseNumber(args[++i], o.pixelMm) || o.pixelMm < 1 || o.pixelMm > 50)
        return usage(err, "phantoms: bad --pixel-mm");
    } else if (args[i] == "--raw") {
      o.raw = true;
    } else if (args[i] == "--qa") {
      qa = true;
    } else if (args[i] == "--noise" && hasValue) {
      if (!parseNumber(args[++i], noise) || noise < 0.1 || noise > 100) return usage(err, "phantoms: bad --noise");
    } else if (args[i] == "--blur-mm" && hasValue) {
      if (!parseNumber(args[++i], o.blurMm) || o.blurMm < 0 || o.blurMm > 50) return usage(err, "phantoms: bad --blur-mm");
    } else if (args[i] == "--single") {
      o.dualEnergy = false;
    } else {
      return usage(err, "phantoms: unexpected argument '" + args[i] + "'");
    }
  }
  // --noise X scales every noise σ by X (cargo sets too).
  scaleNoise(o, noise);
  if (qa) {
    if (dir.empty() || o.raw || count > 1) return usage(err, "phantoms --qa: --out is required; one scan, transmission only");
    auto id = writeQaPhantom(dir, seed < 0 ? 1 : static_cast<std::uint64_t>(seed), o);
    if (!id) {
      err << id.error() << "\n";
      return kBadInput;
    }
    out << "wrote QA scan " << *id << " (and " << *id << ".qa-truth.json) to " << dir << "\n";
    return kOk;
  }
  if (dir.empty() || count < 1 || seed < 0) return usage(err, "phantoms: --out, --count and --seed are required");
  auto r = writePhantomSet(dir, static_cast<int>(count), static_cast<std::uint64_t>(seed), o);
  if (!r) {
    err << r.error() << "\n";
    return kBadInput;
  }
  out << "wrote " << *r << " scans to " << dir << "\n";
  return kOk;
}

int qa(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  std::string path;
  std::string calibration;
  bool json = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--json") {
      json = true;
    } else if (args[i] == "--calibration" && i + 1 < args.size()) {
      calibration = args[++i];
    } else if (!args[i].empty() && args[i][0] != '-' && path.empty()) {
      path = args[i];
    } else {
      return usage(err, "qa: unexpected argument '" + args[i] + "'");
    }
  }
  if (path.empty()) return usage(err, "qa: which scan?");
  auto bundle = loadBundle(path);
  if (!bundle) {
    err << bundle.error() << "\n";
    return kBadInput;
  }
  Calibration cal;
  if (!calibration.empty()) {
    auto c = loadCalibration(calibration);
    if (!c) {
      err << c.error() << "\n";
      return kBadInput;
    }
    cal = std::move(*c);
  }
  auto report = analyzeQa(*bundle, calibration.empty() ? nullptr : &cal);
  if (!report) {
    err << report.error() << "\n";
    return kBadInput;
  }
  out << (json ? qaReportToJson(*report) + "\n" : qaReportToText(*report));
  return kOk;
}

}  // namespace

int visionCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (args.empty()) return usage(err, "no command");
  if (args[0] == "analyze") return analyze(args, out, err);
  if (args[0] == "eval") return eval(args, out, err);
  if (args[0] == "phantoms") return phantoms(args, out, err);
  if (args[0] == "qa") return qa(args, out, err);
  return usage(err, "unknown command '" + args[0] + "'");
}

}  // namespace lanegate::vision
