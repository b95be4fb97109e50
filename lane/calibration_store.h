#pragma once
// A scanner's dark/air calibration store: the latest valid dark and air frames, the
// calibration made of them (what raw scans are normalised with), and their records in
// one directory (<state_dir>/calibration/<device>/):
//   <version>-<scan_id>.tiff|.json   the calibration bundle itself (the daemon moves it here)
//   dark-<version>.json, air-<version>.json   what was checked, and whether it was usable
//   calibration-<version>.json       a calibration in vision::loadCalibration's format
// where <version> is a sortable UTC stamp (20261127T153012.345Z). At start the newest
// calibration-*.json is used again. Every file is read and written through the
// directory's handle (lane/files.h): a link planted in the directory is never followed,
// neither to load a calibration nor to write a record. Time is passed in, never read here.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "lane/files.h"
#include "vision/calibration_check.h"
#include "vision/scan.h"

namespace lanegate::lane {

/// One checked dark or air calibration bundle.
struct CalibrationFrames {
  vision::CalibrationKind kind = vision::CalibrationKind::kDark;  ///< dark or air
  std::string scanId;                                             ///< its bundle
  vision::CalibrationCheck check;  ///< per-channel means, what was measured, the problem if any
};

/// "dark" or "air".
std::string_view calibrationKindName(vision::CalibrationKind kind);

/// A bundle's `"calibration"` field (Contract 1 bundles a scanner writes on a dark or air
/// command): nullopt for a scan, the kind for a calibration bundle, or why the JSON is
/// not a bundle at all (`name` names it in messages).
tl::expected<std::optional<vision::CalibrationKind>, std::string> calibrationKindOf(
    std::string_view jsonText, const std::string& name);

/// What became of a calibration bundle handed to the store.
struct CalibrationStored {
  std::string version;  ///< the stamp its files are stored under
  bool usable = false;  ///< it passed its checks (and replaced the previous one of its kind)
  std::string made;     ///< the new calibration file, when a dark and an air now make one
  std::string error;    ///< why it is not used, or why no calibration could be made of it
};

/// What `lanegatectl status` shows of a scanner's calibration.
struct CalibrationStatus {
  std::string file;            ///< the calibration in use ("" = none)
  std::string problem;         ///< the last calibration problem ("" = none)
  std::optional<double> ageH;  ///< age of the calibration in use, hours
};

/// The calibrations of one scanner; lives on the daemon's io thread.
class CalibrationStore {
 public:
  /// `dir` names this scanner's calibration directory in messages until open() is called.
  explicit CalibrationStore(std::string dir);

  /// Uses `dir` (opened by the caller) for every file from now on; without it, the
  /// directory is opened by its path when first needed.
  void open(Dir dir);
  /// Uses the newest stored calibration again; an error text when it cannot be read.
  std::string loadLatest();
  /// Records a checked bundle taken at `now`: writes its check record and, when it is
  /// usable and a dark and an air are at hand, a new calibration.
  CalibrationStored record(const CalibrationFrames& frames,
                           std::chrono::system_clock::time_point now);
  /// A raw scan arrived: from now on a missing calibration is a problem.
  void noteRawScan() { sawRaw_ = true; }
  /// True when raw scans need a calibration and the one in use is missing or older than
  /// `maxAgeHours` at `now`; `why` says which.
  [[nodiscard]] bool due(std::chrono::system_clock::time_point now, double maxAgeHours,
                         std::string& why) const;

  /// The calibration raw scans are analysed with (null: none yet).
  [[nodiscard]] std::shared_ptr<const vision::Calibration> calibration() const {
    return calibration_;
  }
  /// The latest usable dark frame, which air frames are checked against (null: none).
  [[nodiscard]] std::shared_ptr<const CalibrationFrames> dark() const { return dark_; }
  /// For the status at `now`.
  [[nodiscard]] CalibrationStatus status(std::chrono::system_clock::time_point now) const;
  /// The directory's path.
  [[nodiscard]] const std::string& dir() const { return path_; }
  /// The directory (open once open() was called).
  [[nodiscard]] const Dir& directory() const { return dir_; }

 private:
  bool ensureOpen();
  std::string path_;
  Dir dir_;
  std::shared_ptr<const CalibrationFrames> dark_, air_;
  std::shared_ptr<const vision::Calibration> calibration_;
  std::chrono::system_clock::time_point calibratedAt_{};
  std::string file_, problem_;
  bool sawRaw_ = false;
};

}  // namespace lanegate::lane
