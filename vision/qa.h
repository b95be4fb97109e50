#pragma once

// Image-quality figures from a scan of the QA test object (vision/qa_object.h): penetration,
// contrast sensitivity, spatial resolution and wire detection, per energy plane. The object
// is located by its carrier plate; the measuring areas come from its drawing.

#include "vision/qa_object.h"
#include "vision/scan.h"

#include <tl/expected.hpp>

#include <string>
#include <vector>

namespace lanegate::vision {

/// What `lanegatectl qa` reports for one scan.
struct QaReport {
  std::string scanId;               ///< from the metadata
  double objectXMm = 0;             ///< where the carrier plate's top-left corner was found
  double objectYMm = 0;             ///< (mm from the scan's top-left pixel corner)
  std::vector<QaFigures> energies;  ///< [high] or [high, low]
};

/// Measures a scan of the test object; an error says why the scan is not one (or cannot be read).
tl::expected<QaReport, std::string> analyzeQa(const ScanBundle& bundle,
                                              const Calibration* calibration = nullptr);

/// The report as JSON: {"scan_id", "object_mm", "criteria", "energies": [...]}.
std::string qaReportToJson(const QaReport& report);

/// The report for a technician: one line per energy, then the criteria.
std::string qaReportToText(const QaReport& report);

}  // namespace lanegate::vision
