#include "lane/xray_pipeline.h"

#include <chrono>
#include <future>

#include "lane/payloads.h"
#include "lane/sha256.h"
#include "vision/decode.h"
#include "vision/overlay.h"

namespace lanegate::lane {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds since the last call (stage times go into the record's timings_ms).
class Lap {
 public:
  double operator()() {
    const auto now = Clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_).count();
    last_ = now;
    return ms;
  }

 private:
  Clock::time_point last_ = Clock::now();
};

XrayOutcome rejected(std::string why) {
  XrayOutcome out;
  out.error = std::move(why);
  return out;
}

XrayOutcome calibrationBundle(vision::CalibrationKind kind, const BundleBytes& in,
                              const XrayContext& ctx) {
  auto bundle =
      vision::decodeBundle(in.jsonText, in.jsonPath, in.tiffBytes, in.tiffPath, ctx.limits);
  if (!bundle) return rejected(bundle.error());
  XrayOutcome out;
  CalibrationFrames frames;
  frames.kind = kind;
  frames.scanId = in.scanId;
  frames.check = vision::checkCalibrationFrames(kind, bundle->planes,
                                                ctx.dark ? &ctx.dark->check.means : nullptr);
  out.calibration = std::move(frames);
  return out;
}

XrayOutcome analyse(const BundleBytes& in, const XrayContext& ctx) {
  const auto kind = calibrationKindOf(in.jsonText, in.jsonPath);
  if (!kind) return rejected(kind.error());
  if (*kind) return calibrationBundle(**kind, in, ctx);

  XrayOutcome out;
  XrayScan scan;
  scan.timingsMs = ctx.timingsMs;
  Lap lap;
  // The TIFF's hash is needed only for the record: it is taken on another thread while
  // this one decodes and analyses (8 ms of a 13 MB scan off the latency), and its own
  // duration goes into timings_ms.
  auto hashing = std::async(std::launch::async | std::launch::deferred, [&in] {
    const auto t0 = Clock::now();
    std::string hex = sha256Hex(in.tiffBytes);
    return std::make_pair(std::move(hex),
                          std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  });
  scan.jsonSha256 = sha256Hex(in.jsonText);
  lap();
  // Decoded from the bytes being hashed, so an uncompressed TIFF (what scanners write) is
  // read once and the analysis sees exactly what the hash covers.
  auto bundle =
      vision::decodeBundle(in.jsonText, in.jsonPath, in.tiffBytes, in.tiffPath, ctx.limits);
  scan.timingsMs["decode"] = lap();
  auto finish = [&] { std::tie(scan.tiffSha256, scan.timingsMs["hash"]) = hashing.get(); };
  if (!bundle) {
    out.error = bundle.error();
  } else if (bundle->meta.scanId != in.scanId) {
    out.error =
        in.jsonPath + ": scan_id '" + bundle->meta.scanId + "' does not match the file name";
  } else if (bundle->meta.signal == vision::Signal::kRaw && !ctx.calibration) {
    out.raw = true;
    out.error = in.jsonPath +
                ": a raw scan, and the scanner has no valid dark/air calibration yet "
                "(lanegatectl calibrate xray dark, then air)";
  }
  if (!out.error.empty()) {
    finish();
    return out;
  }
  out.raw = bundle->meta.signal == vision::Signal::kRaw;
  vision::AnalysisParams params;
  if (out.raw) params.calibration = ctx.calibration.get();
  const vision::Findings f = vision::analyzeScan(*bundle, params);
  if (!f.error.empty()) {
    finish();
    out.error = in.jsonPath + ": " + f.error;
    return out;
  }
  scan.scanId = in.scanId;
  scan.takenAt = parseRfc3339(bundle->meta.time);
  scan.verdict = f.verdict;
  scan.findings = f.findings;
  scan.conveyance = checkedConveyance(bundle->meta);
  scan.timingsMs["total"] = f.totalMs;
  if (scan.alert()) {
    lap();
    const auto jpeg = vision::renderOverlay(f);
    scan.image.assign(jpeg.begin(), jpeg.end());
    scan.imageSha256 = sha256Hex(scan.image);
    scan.timingsMs["overlay"] = lap();
  }
  finish();
  out.scan = std::move(scan);
  return out;
}

}  // namespace

XrayOutcome processBundle(const BundleBytes& in, const XrayContext& ctx) {
  // Decoding is bounded by ctx.limits and the analysis reports its own problems; this is
  // the last line: a bundle that still makes something throw is rejected, and the worker
  // that ran it (and the daemon) carry on.
  try {
    return analyse(in, ctx);
  } catch (const std::bad_alloc&) {
    return rejected(in.tiffPath + ": out of memory analysing this scan");
  } catch (const std::exception& e) {
    return rejected(in.tiffPath + ": analysis failed: " + e.what());
  } catch (...) {
    return rejected(in.tiffPath + ": analysis failed");
  }
}

XrayScan quarantinedScan(const BundleBytes& in, const std::string& why) {
  XrayScan scan;
  scan.scanId = in.scanId;
  scan.verdict = "inconclusive";
  scan.timingsMs["total"] = 0.0;  // nothing was analysed
  scan.jsonSha256 = sha256Hex(in.jsonText);
  scan.tiffSha256 = sha256Hex(in.tiffBytes);
  if (auto meta = vision::parseMeta(in.jsonText, in.jsonPath))
    scan.conveyance = checkedConveyance(*meta);
  vision::Finding f;
  f.kind = "anomaly";
  f.detector = "quarantine";
  f.score = 1.0;
  f.reason = why;
  scan.findings.push_back(f);
  // A mid-grey placeholder: the image itself was never decoded.
  vision::Findings overlay;
  overlay.findings = scan.findings;
  overlay.preview = cv::Mat(64, 256, CV_8UC1, cv::Scalar(128));
  overlay.materialMap =
      cv::Mat(1, 1, CV_8UC1, cv::Scalar(static_cast<int>(vision::Material::kUnknown)));
  const auto jpeg = vision::renderOverlay(overlay);
  scan.image.assign(jpeg.begin(), jpeg.end());
  scan.imageSha256 = sha256Hex(scan.image);
  return scan;
}

}  // namespace lanegate::lane
