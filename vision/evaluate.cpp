#include "vision/evaluate.h"

#include <algorithm>
#include <cstdio>

namespace lanegate::vision {
namespace {

bool overlaps(const std::array<double, 4>& a, const std::array<double, 4>& b, double marginMm) {
  return a[0] - marginMm < b[0] + b[2] && b[0] < a[0] + a[2] + marginMm && a[1] - marginMm < b[1] + b[3] &&
         b[1] < a[1] + a[3] + marginMm;
}

std::string pct(const EvalCell& c) {
  if (c.total == 0) return "–";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%d/%d (%.0f %%)", c.detected, c.total, 100.0 * c.detected / c.total);
  return buf;
}

}  // namespace

std::string massBin(double kg) {
  if (kg < 2) return "1-2";
  if (kg < 5) return "2-5";
  if (kg < 10) return "5-10";
  if (kg < 20) return "10-20";
  return "20-50";
}

void accumulate(EvalReport& r, const PhantomTruth& truth, const Findings& f, double hitScore) {
  ++r.scans;
  if (!f.error.empty()) ++r.errors;
  for (const TruthItem& t : truth.concealments) {
    bool found = false;
    for (const Finding& x : f.findings)
      found = found || (x.kind != "opaque" && x.score >= hitScore && overlaps(x.boxMm, t.boxMm, 100.0));
    EvalCell& cell = r.byKindAndMass[t.kind][massBin(t.massKg)];
    ++cell.total;
    cell.detected += found ? 1 : 0;
    if (t.massKg >= 5) {
      ++r.atLeast5Kg.total;
      r.atLeast5Kg.detected += found ? 1 : 0;
      if (!found) r.missed.push_back(truth.scanId + " (" + t.kind + ")");
    }
  }
  const bool emptyWithContent = truth.declaredEmpty && truth.hasContent;
  if (emptyWithContent) {
    ++r.emptyWithContent;
    r.emptyFlagged += f.verdict == "hit" ? 1 : 0;
    if (f.verdict != "hit") r.emptyMissed.push_back(truth.scanId);
    // The mismatch's mass must cover what the other findings locate.
    double mismatchKg = -1.0;
    double locatedKg = 0.0;
    for (const Finding& x : f.findings) {
      if (x.kind == "manifest_mismatch") mismatchKg = std::max(mismatchKg, x.massKgEst.value_or(0.0));
      else if (x.kind != "opaque") locatedKg = std::max(locatedKg, x.massKgEst.value_or(0.0));
    }
    if (mismatchKg >= 0.0 && mismatchKg + 0.05 < locatedKg) r.emptyMassUnderstated.push_back(truth.scanId);
  }
  if (truth.concealments.empty() && !emptyWithContent) {
    ++r.clearScans;
    if (f.verdict == "hit") {
      ++r.falseAlarms;
      r.falseAlarmIds.push_back(truth.scanId);
    }
    if (f.verdict == "inconclusive") ++r.inconclusive;
  }
}

EvalReport evaluateGenerated(std::uint64_t seed, int count, const PhantomOptions& phantom,
                             const AnalysisParams& params) {
  EvalReport r;
  for (int i = 0; i < count; ++i) {
    const Phantom p = generatePhantom(seed, i, phantom);
    AnalysisParams local = params;
    if (phantom.raw) local.calibration = &p.calibration;
    accumulate(r, p.truth, analyzeScan(p.bundle, local), params.hitScore);
  }
  return r;
}

std::string formatReport(const EvalReport& r) {
  static const char* kBins[] = {"1-2", "2-5", "5-10", "10-20", "20-50"};
  std::string out = "| kind | 1-2 kg | 2-5 kg | 5-10 kg | 10-20 kg | 20-50 kg |\n|---|---|---|---|---|---|\n";
  for (const auto& [kind, bins] : r.byKindAndMass) {
    out += "| " + kind;
    for (const char* b : kBins) {
      const auto it = bins.find(b);
      out += " | " + (it == bins.end() ? std::string("–") : pct(it->second));
    }
    out += " |\n";
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "\nscans: %d; stashes >= 5 kg detected: %s\nfalse alarms on clear scans: %d/%d (%.1f %%); "
                "inconclusive clear scans: %d\ndeclared empty with content flagged: %d/%d; unreadable: %d\n",
                r.scans, pct(r.atLeast5Kg).c_str(), r.falseAlarms, r.clearScans,
                r.clearScans ? 100.0 * r.falseAlarms / r.clearScans : 0.0, r.inconclusive, r.emptyFlagged,
                r.emptyWithContent, r.errors);
  out += buf;
  if (!r.missed.empty()) {
    out += "missed (>= 5 kg):";
    for (const std::string& m : r.missed) out += " " + m;
    out += "\n";
  }
  if (!r.emptyMissed.empty()) {
    out += "declared empty, content not flagged:";
    for (const std::string& m : r.emptyMissed) out += " " + m;
    out += "\n";
  }
  if (!r.falseAlarmIds.empty()) {
    out += "false alarms:";
    for (const std::string& m : r.falseAlarmIds) out += " " + m;
    out += "\n";
  }
  return out;
}

}  // namespace lanegate::vision
