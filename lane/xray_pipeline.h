#pragma once
// The X-ray pipeline: one Contract 1 bundle, as bytes already read from the inbox, to a
// typed outcome: a scan analysed (findings, its overlay, evidence hashes, the conveyance)
// or a dark/air calibration bundle checked, or why the bundle must be rejected. Pure but
// for the time it measures: no files, no io_context, no broker; it runs on the daemon's
// analysis workers and in unit tests alike.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lane/calibration_store.h"
#include "lane/conveyance.h"
#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/scan.h"

namespace lanegate::lane {

/// A bundle's two files, read (the paths name them in messages).
struct BundleBytes {
  std::string scanId;     ///< from the file name
  std::string jsonPath;   ///< <inbox>/<scan_id>.json
  std::string jsonText;   ///< its bytes
  std::string tiffPath;   ///< <inbox>/<scan_id>.tiff
  std::string tiffBytes;  ///< its bytes ("" for a bundle rejected before the TIFF was read)
};

/// What the pipeline needs besides the bundle.
struct XrayContext {
  std::shared_ptr<const vision::Calibration> calibration;  ///< for raw scans (null: none yet)
  std::shared_ptr<const CalibrationFrames> dark;  ///< the latest usable dark, for air frames
  std::map<std::string, double> timingsMs;        ///< stages before this one (queue, read)
  vision::DecodeLimits limits{};                  ///< caps checked before anything is allocated
};

/// One scan, analysed.
struct XrayScan {
  std::string scanId;                     ///< the bundle's
  /// When the scan was taken: the bundle's `time` (nullopt when it is not RFC 3339).
  std::optional<std::chrono::system_clock::time_point> takenAt;
  std::string verdict;                    ///< clear | hit | inconclusive (Contract 2)
  std::vector<vision::Finding> findings;  ///< may hold findings below the hit score on a clear scan
  ConveyanceRecord conveyance;            ///< what was scanned, identifiers checked
  std::string tiffSha256, jsonSha256;     ///< evidence: the files as they arrived
  std::string image;                      ///< the overlay JPEG (alerts only)
  std::string imageSha256;                ///< its SHA-256
  std::map<std::string, double> timingsMs;  ///< queue, read, hash, decode, total, overlay
  /// True when the scan raises an alert: its verdict is not clear (Contract 2: hit, or
  /// inconclusive when a region could not be cleared). A clear scan with findings below the
  /// hit score is telemetry: an operator acts on verdicts, and the detectors' false-alarm
  /// budgets are set on them (docs/detection.md).
  [[nodiscard]] bool alert() const { return verdict != "clear"; }
};

/// What became of one bundle: exactly one of error, scan, calibration.
struct XrayOutcome {
  std::string error;                             ///< the bundle is rejected, and why
  bool raw = false;                              ///< a raw-signal scan (it needs a calibration)
  std::optional<XrayScan> scan;                  ///< a scan
  std::optional<CalibrationFrames> calibration;  ///< a dark or air calibration bundle, checked
};

/// Decodes, checks and analyses one bundle; renders the overlay of a scan with findings.
/// Never throws: whatever goes wrong (memory included) rejects the bundle with the reason.
XrayOutcome processBundle(const BundleBytes& bundle, const XrayContext& context);

/// A scan the lane could not analyse and will not try again (it was being analysed when the
/// daemon stopped, at two consecutive starts): an `inconclusive` alert with one finding
/// saying `why`, the evidence hashes of the files as they are, the conveyance when its
/// JSON is readable, and a placeholder overlay (the image was never decoded).
XrayScan quarantinedScan(const BundleBytes& bundle, const std::string& why);

}  // namespace lanegate::lane
