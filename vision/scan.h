#pragma once

// The in-memory form of a Contract 1 scan bundle, shared by decoding, analysis, the
// phantom generator and the evaluation. Kept free of I/O so tests build bundles directly.

#include <opencv2/core/mat.hpp>

#include <optional>
#include <string>
#include <vector>

namespace lanegate::vision {

/// What the 16-bit pixels mean (Contract 1 `signal`).
enum class Signal { kTransmission, kRaw };

/// The manifest declaration that travels with a conveyance (all optional).
struct Declared {
  std::optional<bool> empty;         ///< declared empty
  std::string description;           ///< free-text goods description
  std::optional<double> grossKg;     ///< declared gross mass, kg
  std::vector<std::string> hsCodes;  ///< HS tariff codes
};

/// Contract 1 `conveyance`.
struct Conveyance {
  std::string kind = "container";  ///< container|truck|rail_wagon|uld|vehicle|parcel
  std::vector<std::string> ids;    ///< ISO 6346 container numbers
  std::string plate;               ///< licence plate
  std::string awb;                 ///< air waybill
  Declared declared;               ///< manifest declaration
};

/// Contract 1 JSON metadata.
struct ScanMeta {
  std::string scanId;                ///< `[A-Za-z0-9._-]{1,64}`
  std::string time;                  ///< RFC 3339
  std::string scanner;               ///< device name
  Signal signal = Signal::kTransmission;  ///< pixel meaning
  std::vector<double> energiesMev;   ///< [high] or [high, low] endpoint energies
  double pixelAlongMm = 5.0;         ///< column pitch (direction of travel)
  double pixelVerticalMm = 5.0;      ///< row pitch (detector channel pitch)
  Conveyance conveyance;             ///< what was scanned
};

/// A decoded bundle: metadata plus one (single energy) or two (high, low) CV_16UC1 planes.
struct ScanBundle {
  ScanMeta meta;                ///< the JSON side
  std::vector<cv::Mat> planes;  ///< [high] or [high, low], CV_16UC1, same size
};

/// Per-channel dark (beam off) and air (open beam) counts for one energy, one value per row.
struct ChannelCalibration {
  std::vector<float> dark;  ///< mean dark counts per detector row
  std::vector<float> air;   ///< mean open-beam counts per detector row
};

/// The scanner's stored calibration, needed for `signal: raw` bundles.
struct Calibration {
  std::vector<ChannelCalibration> energies;  ///< [high] or [high, low]
};

}  // namespace lanegate::vision
