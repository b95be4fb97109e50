#include "vision/analysis.h"

#include "vision/analysis_context.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <string_view>

namespace lanegate::vision {
namespace detail {
namespace {

// Each detector's threshold on its statistic, from clear scans of tuning worlds
// (`lanegatectl eval --calibrate`, docs/detection.md). A detector missing here never hits.
const std::map<std::string, double>& thresholds() {
  static const std::map<std::string, double> table = {
#include "vision/thresholds.inc"
  };
  return table;
}

}  // namespace

double threshold(const std::string& detector) {
  const auto it = thresholds().find(detector);
  return it == thresholds().end() ? 1e9 : it->second;
}

double scoreOf(double statistic, const std::string& detector) {
  const double t = threshold(detector);
  if (!(statistic > 0) || t >= 1e9) return 0.0;
  // 0.5 at the threshold; halfway from there to 1 at twice the threshold.
  if (statistic < t) return 0.5 * statistic / t;
  return 1.0 - 0.5 * std::exp(-std::log(2.0) * (statistic - t) / t);
}

namespace {

cv::Mat materialMap(const Context& c) {
  cv::Mat m(c.a.size(), CV_8U);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) {
      const double h = at(c.a, y, x);
      const double l = c.dual ? at(c.al, y, x) : h;
      Material cls = c.dual ? classifyMaterial(h, l, c.curves, c.opaqueAlpha)
                            : (h < c.curves.minAlpha ? Material::kNone : Material::kUnknown);
      // Below ~0.3 the ratio drowns in noise; call such thin matter by its faint class anyway.
      m.at<std::uint8_t>(y, x) = static_cast<std::uint8_t>(cls);
    }
  return m;
}

}  // namespace
}  // namespace detail

Findings analyzeScan(const ScanBundle& bundle, const AnalysisParams& params) {
  const auto start = std::chrono::steady_clock::now();
  Findings out;
  out.scanId = bundle.meta.scanId;
  auto finish = [&]() {
    out.totalMs =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return out;
  };
  try {
    using namespace detail;
    Context c(params);
    c.pxAlong = bundle.meta.pixelAlongMm;
    c.pxVert = bundle.meta.pixelVerticalMm;
    if (!(c.pxAlong > 0) || !(c.pxVert > 0) || bundle.meta.energiesMev.empty()) {
      out.verdict = "inconclusive";
      out.error = bundle.meta.scanId + ": no energies or no pixel size";
      return finish();
    }
    const cv::Size full = bundle.planes.empty() ? cv::Size() : bundle.planes.front().size();
    const int gw = std::max(1, static_cast<int>(std::lround(full.width * c.pxAlong /
                                                            std::max(params.cellMm, c.pxAlong))));
    const int gh = std::max(1, static_cast<int>(std::lround(full.height * c.pxVert /
                                                            std::max(params.cellMm, c.pxVert))));
    // Pre-processing and resampling onto the grid in one pass over the pixels.
    auto att =
        computeGridAttenuation(bundle, params.calibration, cv::Size(gw, gh), params.preprocess);
    if (!att) {
      out.verdict = "inconclusive";
      out.error = bundle.meta.scanId + ": " + att.error();
      return finish();
    }
    c.cellX = full.width * c.pxAlong / gw;
    c.cellY = full.height * c.pxVert / gh;
    c.pxPerCell = (c.cellX / c.pxAlong) * (c.cellY / c.pxVert);
    c.a = att->alphaHigh;
    c.dual = !att->alphaLow.empty();
    if (c.dual) c.al = att->alphaLow;
    c.sigmaPx = std::max(1e-4, att->airNoiseAlpha);
    const double eh =
        effectiveEnergy(bundle.meta.energiesMev.front(), params.effectiveEnergyFraction);
    c.muOrganic = massAttenuation(Basis::kWater, eh);
    // A cell too starved to measure: fewer quanta than opaqueQuanta, with N0 from the
    // open-beam noise, and never beyond what 16-bit transmission can represent in a pixel
    // (findOpaque judges a region, averaged over 100 mm, against a floor of its own).
    const double n0 = 1.0 / (c.sigmaPx * c.sigmaPx);
    c.opaqueAlpha =
        std::min(std::log(std::max(n0, 100.0) / params.opaqueQuanta), -std::log(4.0 / 65535.0));
    c.curves = params.curves ? *params.curves
                             : defaultMaterialCurves(bundle.meta.energiesMev.front(),
                                                     bundle.meta.energiesMev.back(),
                                                     params.effectiveEnergyFraction);
    c.energyHigh = bundle.meta.energiesMev.front();
    c.declaredEmpty = bundle.meta.conveyance.declared.empty.value_or(false);
    c.energyLow = bundle.meta.energiesMev.back();
    c.occupied = std::max(0.02, 6.0 * c.sigmaCell(0));
    findOrganicReference(c);
    findStructure(c);
    findOpaque(c);
    findBlocks(c);
    findFloor(c);
    findFalseWalls(c);
    findWheels(c);
    demoteAnomalyOnly(c.findings, params.hitScore);
    findManifest(c, bundle.meta);
    std::sort(c.findings.begin(), c.findings.end(),
              [](const Finding& x, const Finding& y) { return x.score > y.score; });
    bool hit = false;
    bool opaque = false;
    for (const Finding& f : c.findings) {
      if (f.kind == "opaque")
        opaque = true;
      else if (f.score >= params.hitScore)
        hit = true;
    }
    out.verdict = hit ? "hit" : opaque ? "inconclusive" : "clear";
    out.findings = std::move(c.findings);
    // Each detector's largest statistic (never below 0) for threshold setting.
    for (const Candidate& k : c.candidates) {
      double& m = out.maxStatistic[k.detector];
      m = std::max(m, k.statistic);
    }
    out.candidates = std::move(c.candidates);
    // Structure back to original pixels.
    const double sx = c.cellX / c.pxAlong;
    const double sy = c.cellY / c.pxVert;
    auto px = [](int v, double s) { return v < 0 ? -1 : static_cast<int>(std::lround(v * s)); };
    Structure& st = out.structure;
    st = c.st;
    st.objectX0 = px(c.st.objectX0, sx);
    st.objectX1 = px(c.st.objectX1 + 1, sx) - 1;
    st.bodyX0 = px(c.st.bodyX0, sx);
    st.bodyX1 = c.st.bodyX1 < 0 ? -1 : px(c.st.bodyX1 + 1, sx) - 1;
    st.roofY = px(c.st.roofY, sy);
    st.floorY = px(c.st.floorY, sy);
    st.underY = px(c.st.underY, sy);
    st.frontRun = px(c.st.frontRun, sx);
    st.rearRun = px(c.st.rearRun, sx);
    st.interiorX0 = px(c.st.interiorX0, sx);
    st.interiorX1 = c.st.interiorX1 < 0 ? -1 : px(c.st.interiorX1 + 1, sx) - 1;
    st.interiorY0 = px(c.st.interiorY0, sy);
    st.interiorY1 = c.st.interiorY1 < 0 ? -1 : px(c.st.interiorY1 + 1, sy) - 1;
    for (auto& g : st.gaps) g = {px(g[0], sx), px(g[1] + 1, sx) - 1};
    out.materialMap = materialMap(c);
    out.preview = att->preview;
    out.badRows = att->badRows;
    out.lowShiftPx = att->lowShiftPx;
  } catch (const cv::Exception& e) {
    out.verdict = "inconclusive";
    out.error = bundle.meta.scanId + ": image processing failed: " + e.what();
  }
  return finish();
}

double detectorThreshold(const std::string& detector) { return detail::threshold(detector); }

bool detectorRaisesHits(const std::string& detector) {
  // Detectors that do not hold their 0.5 % false-alarm budget on unseen (test) worlds report
  // `anomaly` below the hit score instead of a hit (issue 11). Measured with the command in
  // docs/detection.md on 846 clear test-world scans: false_wall 5 (0.59 %: reefers'
  // machinery bays behind their bulkheads at 4/2 and 9/6 MV, where the material test is
  // weak), load_block 5 (0.59 %), wheel 6 (0.71 %). At their thresholds none of them found
  // a visible stash ≥ 5 kg in tuning, test or foreign scans. Take a detector off this list
  // only with a run that shows it within its budget.
  static constexpr std::array<std::string_view, 3> kAnomalyOnly = {"false_wall", "load_block",
                                                                    "wheel"};
  return std::find(kAnomalyOnly.begin(), kAnomalyOnly.end(), detector) == kAnomalyOnly.end();
}

namespace detail {

void demoteAnomalyOnly(std::vector<Finding>& findings, double hitScore) {
  for (Finding& f : findings) {
    if (f.detector.empty() || detectorRaisesHits(f.detector)) continue;
    f.kind = "anomaly";
    f.score *= 0.9 * hitScore;  // the same order, all below the hit score
    f.reason += " Reported as an anomaly, not a hit: this detector does not yet hold its "
                "false-alarm budget on scans unlike those it was tuned on.";
  }
}

}  // namespace detail

std::string toJson(const Findings& f) {
  nlohmann::json doc;
  doc["scan_id"] = f.scanId;
  doc["verdict"] = f.verdict;
  doc["findings"] = nlohmann::json::array();
  for (const Finding& x : f.findings) {
    nlohmann::json j;
    j["kind"] = x.kind;
    j["box_px"] = x.boxPx;
    j["box_mm"] = {std::round(x.boxMm[0]), std::round(x.boxMm[1]), std::round(x.boxMm[2]),
                   std::round(x.boxMm[3])};
    j["score"] = std::round(x.score * 1000.0) / 1000.0;
    j["material"] = materialName(x.material);
    if (x.massKgEst) j["mass_kg_est"] = std::round(*x.massKgEst * 10.0) / 10.0;
    j["reason"] = x.reason;
    doc["findings"].push_back(j);
  }
  if (!f.error.empty()) doc["error"] = f.error;
  doc["timings_ms"] = {{"total", std::round(f.totalMs * 100.0) / 100.0}};
  return doc.dump();
}

}  // namespace lanegate::vision
