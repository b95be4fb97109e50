#include "vision/cli.h"

#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/evaluate.h"
#include "vision/overlay.h"
#include "vision/phantom.h"
#include "vision/qa.h"

#include <CLI/CLI.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>

namespace lanegate::vision {
namespace {

namespace fs = std::filesystem;
constexpr int kOk = 0;
constexpr int kBadInput = 1;
constexpr int kUsage = 2;

int fail(std::ostream& err, const std::string& message) {
  err << message << "\n";
  return kBadInput;
}

tl::expected<Calibration, std::string> optionalCalibration(const std::string& path) {
  if (path.empty()) return Calibration{};
  return loadCalibration(path);
}

int analyze(const std::string& path, bool json, const std::string& overlay,
            const std::string& calibration, std::ostream& out, std::ostream& err) {
  auto bundle = loadBundle(path);
  if (!bundle) return fail(err, bundle.error());
  auto cal = optionalCalibration(calibration);
  if (!cal) return fail(err, cal.error());
  AnalysisParams params;
  if (!calibration.empty()) params.calibration = &*cal;
  const Findings f = analyzeScan(*bundle, params);
  if (!f.error.empty()) return fail(err, f.error);
  if (json) {
    out << toJson(f) << "\n";
  } else {
    out << f.scanId << ": " << f.verdict << " (" << f.findings.size() << " findings, " << f.totalMs
        << " ms)\n";
    for (const Finding& x : f.findings)
      out << "  " << x.kind << " score " << x.score << " at x=" << x.boxMm[0]
          << " mm y=" << x.boxMm[1] << " mm: " << x.reason << "\n";
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
    if (!o) return fail(err, overlay + ": cannot write the overlay");
  }
  return kOk;
}

// A directory of bundles with ground truth: generated (`*.truth.json` beside each bundle)
// or another generator's (`truth.json` and the bundles in `bundles/` or beside it).
tl::expected<EvalReport, std::string> evalDirectory(const std::string& dir, const std::string& name,
                                                    std::ostream& err) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return tl::unexpected(dir + ": not a directory");
  Calibration cal;
  AnalysisParams params;
  if (fs::exists(fs::path(dir) / "calibration.json")) {
    auto c = loadCalibration((fs::path(dir) / "calibration.json").string());
    if (!c) return tl::unexpected(c.error());
    cal = std::move(*c);
    params.calibration = &cal;
  }
  std::vector<std::pair<Case, std::string>> cases;  // truth, bundle path
  if (fs::exists(fs::path(dir) / "truth.json")) {
    auto set = loadForeignTruth((fs::path(dir) / "truth.json").string());
    if (!set) return tl::unexpected(set.error());
    const fs::path bundles =
        fs::is_directory(fs::path(dir) / "bundles", ec) ? fs::path(dir) / "bundles" : fs::path(dir);
    for (Case& c : *set)
      cases.emplace_back(std::move(c), (bundles / (c.scanId + ".json")).string());
  } else {
    std::vector<fs::path> truths;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string file = e.path().filename().string();
      if (file.size() > 11 && file.ends_with(".truth.json")) truths.push_back(e.path());
    }
    std::sort(truths.begin(), truths.end());
    for (const fs::path& t : truths) {
      auto text = readFileCapped(t.string(), 1 << 20);
      if (!text) return tl::unexpected(text.error());
      auto truth = parseTruth(*text, t.string());
      if (!truth) return tl::unexpected(truth.error());
      cases.emplace_back(caseFromPhantom(*truth),
                         (fs::path(dir) / (truth->scanId + ".json")).string());
    }
  }
  if (cases.empty())
    return tl::unexpected(dir +
                          ": no ground truth (truth.json, or *.truth.json beside the bundles)");
  EvalReport report;
  report.name = name;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto bundle = loadBundle(cases[i].second);
    if (!bundle) return tl::unexpected(bundle.error());
    accumulate(report, cases[i].first, analyzeScan(*bundle, params));
    if ((i + 1) % 10 == 0 || i + 1 == cases.size())
      err << "\r" << name << ": " << i + 1 << "/" << cases.size() << " scans" << std::flush;
  }
  err << "\n";
  return report;
}

struct EvalArgs {
  std::vector<std::string> dirs;
  bool worlds = false;
  int scans = 300;
  int clear = 1000;
  std::uint64_t seed = 2026;
  double budget = 0.005;
  int threads = 0;
  bool calibrate = false;
  std::string out;
};

std::function<void(int, int)> progressTo(std::ostream& err, const std::string& what) {
  return [&err, what](int done, int total) {
    err << "\r" << what << ": " << done << "/" << total << " scans" << std::flush;
    if (done == total) err << "\n";
  };
}

int calibrate(const EvalArgs& a, std::ostream& out, std::ostream& err) {
  WorldRun run;
  run.world = World::kTuning;
  run.seed = a.seed;
  run.count = a.clear;
  run.threads = a.threads;
  const ClearStatistics stats =
      collectClearStatistics(run, AnalysisParams{}, progressTo(err, "clear tuning worlds"));
  std::string table = "// Generated by `lanegatectl eval --calibrate --clear " +
                      std::to_string(a.clear) + " --seed " + std::to_string(a.seed) +
                      "`: for each detector, the statistic that " + std::to_string(stats.scans) +
                      " clear scans of tuning worlds exceed in a share of at most " +
                      std::to_string(a.budget * 0.5) + " (half the budget).\n";
  for (const auto& [detector, values] : stats.maxStatistic) {
    std::vector<double> v = values;
    std::sort(v.begin(), v.end());
    // The smallest threshold that leaves at most budget/2 of the clear scans above it.
    const auto allowed =
        static_cast<std::size_t>(std::floor(0.5 * a.budget * static_cast<double>(v.size())));
    // Never below what the statistic can mean: a z of 3 (the CFAR detectors: blocks in the
    // load, the floor), a kilogram (the mass statistics of the walls and wheels). A detector that
    // fires on fewer clear scans than the budget allows would otherwise get a threshold of zero.
    const double least = detector == "load_block" || detector == "floor" ? 3.0 : 1.0;
    const double thr =
        std::max(least, v.empty() ? least : v[v.size() - 1 - std::min(allowed, v.size() - 1)]);
    char line[160];
    std::snprintf(line, sizeof line, "{\"%s\", %.4g},  // clear-scan median %.3g, max %.3g\n",
                  detector.c_str(), std::max(thr, 1e-6) * 1.0001, v.empty() ? 0.0 : v[v.size() / 2],
                  v.empty() ? 0.0 : v.back());
    table += line;
  }
  out << table;
  if (!a.out.empty()) {
    if (auto r = writeFileAtomic(a.out, table); !r) return fail(err, r.error());
    err << "wrote " << a.out << "\n";
  }
  return kOk;
}

int eval(const EvalArgs& a, std::ostream& out, std::ostream& err) {
  if (a.calibrate) return calibrate(a, out, err);
  std::vector<EvalReport> sets;
  int faSet = -1;
  if (a.worlds) {
    for (const World w : {World::kTuning, World::kTest}) {
      WorldRun run;
      run.world = w;
      run.seed = a.seed;
      run.count = a.scans;
      run.threads = a.threads;
      sets.push_back(
          evaluateWorld(run, AnalysisParams{}, progressTo(err, worldName(w) + " worlds")));
    }
    if (a.clear > 0) {
      WorldRun run;
      run.world = World::kTest;
      run.seed = a.seed + 1;
      run.count = a.clear;
      run.clearShare = 1.0;
      run.threads = a.threads;
      EvalReport clear = evaluateWorld(run, AnalysisParams{}, progressTo(err, "clear test worlds"));
      clear.name = "clear test worlds";
      sets.push_back(std::move(clear));
      faSet = static_cast<int>(sets.size()) - 1;
    }
  }
  for (const std::string& d : a.dirs) {
    auto r = evalDirectory(
        d, fs::path(d).filename().string().empty() ? d : fs::path(d).filename().string(), err);
    if (!r) return fail(err, r.error());
    sets.push_back(std::move(*r));
  }
  if (sets.empty()) return fail(err, "eval: give a directory, or --worlds");
  out << formatReports(sets, faSet, a.budget);
  return kOk;
}

struct PhantomArgs {
  std::string dir;
  int count = 0;
  std::uint64_t seed = 1;
  bool qa = false;
  double noise = 1.0;
  std::string world;
};

int phantoms(PhantomArgs& a, PhantomOptions& o, std::ostream& out, std::ostream& err) {
  // --noise X scales every noise σ by X (cargo sets too).
  scaleNoise(o, a.noise);
  if (a.qa) {
    if (o.raw || a.count > 1) return fail(err, "phantoms --qa: one scan, transmission only");
    auto id = writeQaPhantom(a.dir, a.seed, o);
    if (!id) return fail(err, id.error());
    out << "wrote QA scan " << *id << " (and " << *id << ".qa-truth.json) to " << a.dir << "\n";
    return kOk;
  }
  if (a.count < 1) {
    err << "phantoms: --count is required\n";
    return kUsage;
  }
  if (!a.world.empty()) {
    o.world = a.world == "test" ? World::kTest : World::kTuning;
    o.worldPitch = true;
    o.artefacts = true;
  }
  auto r = writePhantomSet(a.dir, a.count, a.seed, o);
  if (!r) return fail(err, r.error());
  out << "wrote " << *r << " scans to " << a.dir << "\n";
  return kOk;
}

int qa(const std::string& path, bool json, const std::string& calibration, std::ostream& out,
       std::ostream& err) {
  auto bundle = loadBundle(path);
  if (!bundle) return fail(err, bundle.error());
  auto cal = optionalCalibration(calibration);
  if (!cal) return fail(err, cal.error());
  auto report = analyzeQa(*bundle, calibration.empty() ? nullptr : &*cal);
  if (!report) return fail(err, report.error());
  out << (json ? qaReportToJson(*report) + "\n" : qaReportToText(*report));
  return kOk;
}

}  // namespace

int visionCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"Offline X-ray analysis, evaluation, phantoms and image-quality QA", "lanegatectl"};
  app.require_subcommand(1, 1);

  std::string path;
  std::string overlay;
  std::string calibration;
  bool json = false;
  CLI::App* analyzeCmd = app.add_subcommand(
      "analyze", "Analyse one scan bundle (Contract 1) and print its findings (Contract 2)");
  analyzeCmd->add_option("scan", path, "SCAN.json or SCAN.tiff")->required();
  analyzeCmd->add_flag("--json", json, "print Contract 2 JSON");
  analyzeCmd->add_option("--overlay", overlay,
                         "write the annotated overlay (JPEG, or PNG by extension)");
  analyzeCmd->add_option("--calibration", calibration, "dark/air calibration for raw-signal scans");

  EvalArgs e;
  CLI::App* evalCmd = app.add_subcommand("eval",
                                         "Detection and false alarms on scans with ground truth: "
                                         "generated worlds (--worlds) and/or directories");
  evalCmd->add_option(
      "dirs", e.dirs,
      "sets with ground truth: *.truth.json beside bundles, or truth.json (+ bundles/)");
  evalCmd->add_flag("--worlds", e.worlds,
                    "generate tuning and test worlds in memory and report them side by side");
  evalCmd->add_option("--scans", e.scans, "scans per world (mixed scenarios)")
      ->check(CLI::Range(1, 1000000));
  evalCmd
      ->add_option("--clear", e.clear, "clear test-world scans for the false-alarm table (0: none)")
      ->check(CLI::Range(0, 1000000));
  evalCmd->add_option("--seed", e.seed, "seed of the generated worlds");
  evalCmd->add_option("--budget", e.budget, "false-alarm budget per detector, share of clear scans")
      ->check(CLI::Range(0.0, 1.0));
  evalCmd->add_option("--threads", e.threads, "worker threads (0: one per core)")
      ->check(CLI::Range(0, 256));
  evalCmd->add_flag(
      "--calibrate", e.calibrate,
      "set each detector's threshold from --clear clear tuning-world scans (half the budget each)");
  evalCmd->add_option("--out", e.out, "with --calibrate: write the threshold table here");

  PhantomArgs ph;
  PhantomOptions po;
  CLI::App* phantomsCmd =
      app.add_subcommand("phantoms", "Write generated scan bundles with their ground truth");
  phantomsCmd->add_option("--out", ph.dir, "directory to write")->required();
  phantomsCmd->add_option("--count", ph.count, "number of scans")->check(CLI::Range(1, 100000));
  phantomsCmd->add_option("--seed", ph.seed, "seed of the set");
  phantomsCmd->add_option("--pixel-mm", po.pixelMm, "pixel pitch, mm (both directions)")
      ->check(CLI::Range(1.0, 50.0));
  phantomsCmd->add_option("--world", ph.world, "draw pitches, energies and artefacts from a world")
      ->check(CLI::IsMember({"tuning", "test"}));
  phantomsCmd
      ->add_option("--clear-share", po.clearShare,
                   "share of scans without a stash (default: the world's mix)")
      ->check(CLI::Range(0.0, 1.0));
  phantomsCmd->add_flag("--raw", po.raw,
                        "detector counts with a calibration.json instead of transmission");
  phantomsCmd->add_flag(
      "--single", [&po](std::int64_t) { po.dualEnergy = false; }, "one energy instead of two");
  phantomsCmd->add_flag("--qa", ph.qa, "one image-quality test object instead of cargo");
  phantomsCmd->add_option("--noise", ph.noise, "scale every noise sigma")
      ->check(CLI::Range(0.1, 100.0));
  phantomsCmd->add_option("--blur-mm", po.blurMm, "sigma of the point-spread function, mm")
      ->check(CLI::Range(0.0, 50.0));

  std::string qaPath;
  std::string qaCalibration;
  bool qaJson = false;
  CLI::App* qaCmd =
      app.add_subcommand("qa", "Image-quality figures of a scan of the QA test object");
  qaCmd->add_option("scan", qaPath, "SCAN.json or SCAN.tiff")->required();
  qaCmd->add_flag("--json", qaJson, "print JSON");
  qaCmd->add_option("--calibration", qaCalibration, "dark/air calibration for raw-signal scans");

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::CallForHelp& h) {
    const int code = app.exit(h, out, err);
    return code == 0 ? kOk : kUsage;
  } catch (const CLI::ParseError& p) {
    app.exit(p, out, err);
    return kUsage;
  }
  if (analyzeCmd->parsed()) return analyze(path, json, overlay, calibration, out, err);
  if (evalCmd->parsed()) return eval(e, out, err);
  if (phantomsCmd->parsed()) return phantoms(ph, po, out, err);
  return qa(qaPath, qaJson, qaCalibration, out, err);
}

}  // namespace lanegate::vision
