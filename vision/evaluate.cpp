#include "vision/evaluate.h"

#include "vision/decode.h"
#include "vision/select.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

namespace lanegate::vision {
namespace {

double iou(const std::array<int, 4>& a, const std::array<int, 4>& b) {
  const int x0 = std::max(a[0], b[0]);
  const int y0 = std::max(a[1], b[1]);
  const int x1 = std::min(a[0] + a[2], b[0] + b[2]);
  const int y1 = std::min(a[1] + a[3], b[1] + b[3]);
  const double inter = static_cast<double>(std::max(0, x1 - x0)) * std::max(0, y1 - y0);
  const double uni = static_cast<double>(a[2]) * a[3] + static_cast<double>(b[2]) * b[3] - inter;
  return uni > 0 ? inter / uni : 0.0;
}

// A finding locates an item when it overlaps it (IoU ≥ 0.1) or contains its centre while
// being at most 16 times its area (no credit for boxing the whole scan).
bool locates(const std::array<int, 4>& f, const std::array<int, 4>& item) {
  if (iou(f, item) >= 0.1) return true;
  const double cx = item[0] + item[2] / 2.0;
  const double cy = item[1] + item[3] / 2.0;
  const double area = static_cast<double>(f[2]) * f[3];
  return cx >= f[0] && cx <= f[0] + f[2] && cy >= f[1] && cy <= f[1] + f[3] &&
         area <= 16.0 * static_cast<double>(item[2]) * item[3];
}

std::string pct(const EvalCell& c) {
  if (c.total == 0) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%d/%d (%.1f %%)", c.detected, c.total,
                100.0 * c.detected / c.total);
  return buf;
}

// Fixed-point with `digits` decimals; `sign` always shows + or −.
std::string fmt(double v, int digits, bool sign = false) {
  char buf[64];
  if (sign)
    std::snprintf(buf, sizeof buf, "%+.*f", digits, v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Log of the binomial probability mass.
double logPmf(int k, int n, double p) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) + k * std::log(p) +
         (n - k) * std::log1p(-p);
}

// Runs `body(i)` for i in [0, count) on `threads` threads (deterministic per index).
void parallelFor(int count, int threads, const std::function<void(int)>& body,
                 const std::function<void(int, int)>& progress) {
  const int n =
      std::max(1, threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency()));
  std::atomic<int> next{0};
  std::atomic<int> done{0};
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t)
    pool.emplace_back([&]() {
      for (int i = next++; i < count; i = next++) {
        body(i);
        ++done;
      }
    });
  int reported = -1;
  for (int i = next++; i < count; i = next++) {
    body(i);
    ++done;
    if (progress && done / std::max(1, count / 20) != reported) {
      reported = done / std::max(1, count / 20);
      progress(done, count);
    }
  }
  for (std::thread& t : pool) t.join();
  if (progress) progress(count, count);
}

// Where detection stands before any threshold: how many stashes some candidate locates at all,
// how close the best of them comes to its threshold, and what clear scans reach.
std::string separationTable(const EvalReport& r) {
  if (r.stashMargin.empty() && r.clearMargin.empty()) return "";
  std::string out = "\nSeparation, " + r.name +
                    " (visible stashes ≥ 5 kg: the largest statistic of a candidate locating "
                    "each, as a share of its detector's threshold):\n\n| location | stashes | "
                    "located by a candidate | median share, located | at or above the "
                    "threshold |\n|---|---|---|---|---|\n";
  for (const auto& [loc, v] : r.stashMargin) {
    std::vector<float> located;
    for (float m : v)
      if (m > 0) located.push_back(m);
    const auto above = std::count_if(v.begin(), v.end(), [](float m) { return m >= 1.0f; });
    out += "| " + loc + " | " + std::to_string(v.size()) + " | " +
           pct({static_cast<int>(v.size()), static_cast<int>(located.size())}) + " | " +
           (located.empty() ? std::string("–") : fmt(median(located), 2)) + " | " +
           pct({static_cast<int>(v.size()), static_cast<int>(above)}) + " |\n";
  }
  if (!r.clearMargin.empty())
    out += "| clear scans (largest share in each) | " + std::to_string(r.clearMargin.size()) +
           " | median " + fmt(median(r.clearMargin), 2) + ", 90th percentile " +
           fmt(quantile(r.clearMargin, 0.9), 2) + ", 99th " +
           fmt(quantile(r.clearMargin, 0.99), 2) + " | – | " +
           pct({static_cast<int>(r.clearMargin.size()),
                static_cast<int>(std::count_if(r.clearMargin.begin(), r.clearMargin.end(),
                                               [](float m) { return m >= 1.0f; }))}) +
           " |\n";
  return out;
}

}  // namespace

std::string massBin(double kg) {
  if (kg < 2) return "1-2";
  if (kg < 5) return "2-5";
  if (kg < 10) return "5-10";
  if (kg < 20) return "10-20";
  return "20-50";
}

Case caseFromPhantom(const PhantomTruth& t) {
  Case c;
  c.scanId = t.scanId;
  for (const TruthItem& k : t.concealments) {
    Expected e;
    e.kind = k.kind == "load" ? "organic_mass" : "structural";
    e.location = k.kind;
    e.boxPx = k.boxPx;
    e.massKg = k.massKg;
    e.deltaAlpha = k.deltaAlpha;
    e.contrastKnown = true;
    c.items.push_back(e);
  }
  if (t.declaredEmpty && t.hasContent)
    c.items.push_back({"manifest_mismatch", "declared_empty", {}, 0, 0, false});
  if (t.opaqueExpected) c.items.push_back({"opaque", "cargo", {}, 0, 0, false});
  return c;
}

tl::expected<std::vector<Case>, std::string> loadForeignTruth(const std::string& path) {
  auto text = readFileCapped(path, 64u << 20);
  if (!text) return tl::unexpected(text.error());
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("scans") || !doc["scans"].is_array())
    return tl::unexpected(path + ": not a truth file (an object with a \"scans\" list)");
  std::vector<Case> out;
  try {
    for (const auto& s : doc["scans"]) {
      Case c;
      c.scanId = s.at("scan_id").get<std::string>();
      for (const auto& it : s.value("items", nlohmann::json::array())) {
        Expected e;
        e.kind = it.at("kind").get<std::string>();
        e.location = it.value("location", "");
        if (it.contains("box_px") && it["box_px"].is_array())
          e.boxPx = it["box_px"].get<std::array<int, 4>>();
        if (it.contains("mass_kg") && it["mass_kg"].is_number())
          e.massKg = it["mass_kg"].get<double>();
        if (it.contains("delta_alpha_he") && it["delta_alpha_he"].is_number()) {
          e.deltaAlpha = it["delta_alpha_he"].get<double>();
          e.contrastKnown = true;
        }
        c.items.push_back(e);
      }
      out.push_back(std::move(c));
    }
  } catch (const nlohmann::json::exception& e) {
    return tl::unexpected(path + ": " + e.what());
  }
  return out;
}

void accumulate(EvalReport& r, const Case& truth, const Findings& f) {
  ++r.scans;
  r.analysisMs += f.totalMs;
  if (!f.error.empty()) ++r.errors;
  const bool alarm = f.verdict != "clear";
  // Opaque regions count by verdict inconclusive or an opaque finding; declared-empty content
  // by verdict hit or a manifest_mismatch finding.
  auto flagged = [&f](const std::string& verdict, const std::string& kind, EvalCell& cell) {
    bool found = f.verdict == verdict;
    for (const Finding& x : f.findings) found = found || x.kind == kind;
    ++cell.total;
    cell.detected += found ? 1 : 0;
  };
  for (const Expected& e : truth.items) {
    if (e.kind == "opaque") {
      flagged("inconclusive", "opaque", r.opaque);
      continue;
    }
    if (e.kind == "manifest_mismatch") {
      flagged("hit", "manifest_mismatch", r.manifest);
      continue;
    }
    bool found = false;
    for (const Finding& x : f.findings) found = found || (alarm && locates(x.boxPx, e.boxPx));
    ++r.allConcealments.total;
    r.allConcealments.detected += found ? 1 : 0;
    const bool visible = !e.contrastKnown || e.deltaAlpha >= 0.1;
    if (!visible) continue;
    EvalCell& cell = r.byLocationAndMass[e.location][massBin(e.massKg)];
    ++cell.total;
    cell.detected += found ? 1 : 0;
    if (e.massKg >= 5) {
      double margin = 0;
      for (const Candidate& k : f.candidates)
        if (locates(k.boxPx, e.boxPx))
          margin = std::max(margin, k.statistic / detectorThreshold(k.detector));
      r.stashMargin[e.location].push_back(static_cast<float>(margin));
      ++r.visible5.total;
      r.visible5.detected += found ? 1 : 0;
      if (!found)
        r.missed.push_back(truth.scanId + " (" + e.location + ", " + fmt(e.massKg, 1) + " kg)");
    }
  }
  if (truth.items.empty()) {
    double margin = 0;
    for (const Candidate& k : f.candidates)
      margin = std::max(margin, k.statistic / detectorThreshold(k.detector));
    r.clearMargin.push_back(static_cast<float>(margin));
    ++r.clear.total;
    r.clear.detected += alarm ? 1 : 0;
    r.clearHits += f.verdict == "hit" ? 1 : 0;
    std::set<std::string> fired;
    for (const Finding& x : f.findings)
      if (x.kind == "opaque" || x.score >= 0.5)
        fired.insert(x.detector.empty() ? x.kind : x.detector);
    for (const std::string& d : fired) ++r.firedOnClear[d];
    // A detector that reports anomalies only still has a false-alarm share: where it reached
    // its threshold, it would have fired.
    std::set<std::string> reached;
    for (const Candidate& k : f.candidates)
      if (!detectorRaisesHits(k.detector) && k.statistic >= detectorThreshold(k.detector))
        reached.insert(k.detector);
    for (const std::string& d : reached) ++r.anomalyOnClear[d];
    if (alarm) {
      std::string why;
      for (const std::string& d : fired) why += (why.empty() ? "" : ",") + d;
      r.falseAlarms.push_back(truth.scanId + " (" + (why.empty() ? f.verdict : why) + ")");
    }
  }
}

EvalReport evaluateWorld(const WorldRun& run, const AnalysisParams& params,
                         const std::function<void(int, int)>& progress) {
  PhantomOptions o;
  o.world = run.world;
  o.worldPitch = true;
  o.artefacts = true;
  o.clearShare = run.clearShare;
  std::vector<Case> cases(static_cast<std::size_t>(run.count));
  std::vector<Findings> results(static_cast<std::size_t>(run.count));
  parallelFor(
      run.count, run.threads,
      [&](int i) {
        Phantom p = generatePhantom(run.seed, i, o);
        cases[static_cast<std::size_t>(i)] = caseFromPhantom(p.truth);
        Findings f = analyzeScan(p.bundle, params);
        f.materialMap.release();
        f.preview.release();
        results[static_cast<std::size_t>(i)] = std::move(f);
      },
      progress);
  EvalReport r;
  r.name = worldName(run.world) + " worlds";
  for (std::size_t i = 0; i < cases.size(); ++i) accumulate(r, cases[i], results[i]);
  return r;
}

ClearStatistics collectClearStatistics(const WorldRun& run, const AnalysisParams& params,
                                       const std::function<void(int, int)>& progress) {
  PhantomOptions o;
  o.world = run.world;
  o.worldPitch = true;
  o.artefacts = true;
  o.clearShare = 1.0;
  std::vector<std::map<std::string, double>> stats(static_cast<std::size_t>(run.count));
  std::vector<char> clear(static_cast<std::size_t>(run.count), 0);
  parallelFor(
      run.count, run.threads,
      [&](int i) {
        const Phantom p = generatePhantom(run.seed, i, o);
        if (!caseFromPhantom(p.truth).items.empty()) return;
        const Findings f = analyzeScan(p.bundle, params);
        stats[static_cast<std::size_t>(i)] = f.maxStatistic;
        clear[static_cast<std::size_t>(i)] = 1;
      },
      progress);
  ClearStatistics out;
  std::set<std::string> detectors;
  for (const auto& s : stats)
    for (const auto& kv : s) detectors.insert(kv.first);
  for (std::size_t i = 0; i < stats.size(); ++i) {
    if (!clear[i]) continue;
    ++out.scans;
    for (const std::string& d : detectors) {
      const auto it = stats[i].find(d);
      out.maxStatistic[d].push_back(it == stats[i].end() ? 0.0 : it->second);
    }
  }
  return out;
}

double upperBound95(int k, int n) {
  if (n <= 0) return 1.0;
  if (k >= n) return 1.0;
  // The p at which P(X ≤ k) = 0.05, by bisection (the CDF falls as p grows).
  double lo = static_cast<double>(k) / n;
  double hi = 1.0;
  for (int it = 0; it < 60; ++it) {
    const double p = 0.5 * (lo + hi);
    double cdf = 0;
    for (int j = 0; j <= k; ++j) cdf += std::exp(logPmf(j, n, p));
    (cdf > 0.05 ? lo : hi) = p;
  }
  return 0.5 * (lo + hi);
}

std::string formatReports(const std::vector<EvalReport>& sets, int faSet, double budget) {
  std::string out = "| measure |";
  std::string rule = "|---|";
  for (const EvalReport& r : sets) {
    out += " " + r.name + " |";
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  auto row = [&](const std::string& name,
                 const std::function<std::string(const EvalReport&)>& cell) {
    out += "| " + name + " |";
    for (const EvalReport& r : sets) out += " " + cell(r) + " |";
    out += "\n";
  };
  row("scans", [](const EvalReport& r) { return std::to_string(r.scans); });
  row("visible stashes ≥ 5 kg found", [](const EvalReport& r) { return pct(r.visible5); });
  row("all stashes found", [](const EvalReport& r) { return pct(r.allConcealments); });
  row("clear scans alarming (hit or inconclusive)",
      [](const EvalReport& r) { return pct(r.clear); });
  row("clear scans with a hit", [](const EvalReport& r) {
    return std::to_string(r.clearHits) + "/" + std::to_string(r.clear.total);
  });
  row("declared empty with content flagged", [](const EvalReport& r) { return pct(r.manifest); });
  row("opaque regions flagged", [](const EvalReport& r) { return pct(r.opaque); });
  row("unreadable", [](const EvalReport& r) { return std::to_string(r.errors); });
  row("analysis ms per scan",
      [](const EvalReport& r) { return fmt(r.scans ? r.analysisMs / r.scans : 0.0, 1); });
  // The generalisation gap: the first two sets are tuning and test worlds when both are there.
  if (sets.size() >= 2 && sets[0].visible5.total > 0 && sets[1].visible5.total > 0) {
    const double d0 = 100.0 * sets[0].visible5.detected / sets[0].visible5.total;
    const double d1 = 100.0 * sets[1].visible5.detected / sets[1].visible5.total;
    const double f0 =
        sets[0].clear.total ? 100.0 * sets[0].clear.detected / sets[0].clear.total : 0.0;
    const double f1 =
        sets[1].clear.total ? 100.0 * sets[1].clear.detected / sets[1].clear.total : 0.0;
    out += "\nGap, " + sets[1].name + " minus " + sets[0].name + ": detection " +
           fmt(d1 - d0, 1, true) + " points, clear-scan alarms " + fmt(f1 - f0, 1, true) +
           " points.\n";
  }
  static const char* kBins[] = {"1-2", "2-5", "5-10", "10-20", "20-50"};
  for (const EvalReport& r : sets) {
    if (r.byLocationAndMass.empty()) continue;
    out += "\nVisible stashes found, " + r.name +
           ":\n\n| location | 1-2 kg | 2-5 kg | 5-10 kg | 10-20 kg | 20-50 kg "
           "|\n|---|---|---|---|---|---|\n";
    for (const auto& [loc, bins] : r.byLocationAndMass) {
      out += "| " + loc;
      for (const char* b : kBins) {
        const auto it = bins.find(b);
        out += " | " + (it == bins.end() ? std::string("–") : pct(it->second));
      }
      out += " |\n";
    }
  }
  for (const EvalReport& r : sets) out += separationTable(r);
  if (faSet >= 0 && faSet < static_cast<int>(sets.size())) {
    const EvalReport& r = sets[static_cast<std::size_t>(faSet)];
    out += "\nFalse alarms per finding kind on " + std::to_string(r.clear.total) +
           " clear scans of " + r.name + " (budget " + fmt(100.0 * budget, 1) +
           " % each):\n\n| detector | clear scans it fired on | share | 95 % upper bound | within "
           "budget |\n|---|---|---|---|---|\n";
    for (const auto& [d, k] : r.firedOnClear) {
      const double ub = upperBound95(k, r.clear.total);
      const double share = r.clear.total ? static_cast<double>(k) / r.clear.total : 0.0;
      out += "| " + d + " | " + std::to_string(k) + " | " + fmt(100.0 * share, 2) + " %" + " | " +
             fmt(100.0 * ub, 2) + " %" + " | " + (share <= budget ? "yes" : "NO") + " |\n";
    }
    if (r.firedOnClear.empty())
      out += "| (none fired) | 0 | 0 % | " + fmt(100.0 * upperBound95(0, r.clear.total), 2) + " %" +
             " | yes |\n";
    for (const auto& [d, k] : r.anomalyOnClear) {
      const double share = r.clear.total ? static_cast<double>(k) / r.clear.total : 0.0;
      out += "| " + d + " (anomaly only: scans where it reached its threshold) | " +
             std::to_string(k) + " | " + fmt(100.0 * share, 2) + " % | " +
             fmt(100.0 * upperBound95(k, r.clear.total), 2) + " % | " +
             (share <= budget ? "yes" : "NO") + ", raises no hit |\n";
    }
  }
  for (const EvalReport& r : sets) {
    if (!r.missed.empty()) {
      out += "\nMissed (visible, ≥ 5 kg), " + r.name + ":";
      for (std::size_t i = 0; i < r.missed.size() && i < 40; ++i) out += " " + r.missed[i];
      if (r.missed.size() > 40) out += " …";
      out += "\n";
    }
    if (!r.falseAlarms.empty()) {
      out += "\nClear scans alarming, " + r.name + ":";
      for (std::size_t i = 0; i < r.falseAlarms.size() && i < 40; ++i)
        out += " " + r.falseAlarms[i];
      if (r.falseAlarms.size() > 40) out += " …";
      out += "\n";
    }
  }
  return out;
}

}  // namespace lanegate::vision
