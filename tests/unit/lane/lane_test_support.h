#pragma once
// What the lane's tests build in memory: a substance library, a plasmagram as a detector
// reports it, and a scan bundle's two files as bytes. No file, no io_context, no broker.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/core.hpp>

#include "drivers/events.h"
#include "lane/xray_pipeline.h"
#include "trace/library.h"
#include "trace/synth.h"
#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/phantom.h"

namespace lanegate::lane::test {

/// A positive-mode library: the reactant ion, the calibrant, cocaine and fentanyl (K0 as
/// in config/ims/substances.yaml).
inline trace::SubstanceLibrary smallLibrary() {
  auto lib = trace::SubstanceLibrary::parse(R"(version: 1
defaults: {window: 0.005, min_amplitude: 50, min_snr: 5}
substances:
  - {name: hydronium, mode: positive, role: reactant, k0: 2.20, window: 0.15}
  - {name: nicotinamide, mode: positive, role: calibrant, k0: 1.860, window: 0.02}
  - {name: cocaine, mode: positive, k0: 1.160}
  - {name: fentanyl, mode: positive, k0: 1.000}
)",
                                            "small.yaml");
  EXPECT_TRUE(lib) << lib.error();
  return lib ? *lib : trace::SubstanceLibrary{};
}

/// A sample as an IMS driver reads it: a synthesised plasmagram with `substance` at
/// `amplitude` ("" for none) and the device's own alarms.
inline TraceSample traceSample(const trace::SubstanceLibrary& lib, const std::string& substance,
                               double amplitude, std::vector<DeviceAlarm> alarms = {},
                               std::uint64_t seed = 3) {
  auto params = trace::synthDefaults(lib, trace::IonMode::kPositive);
  EXPECT_TRUE(params) << params.error();
  params->seed = seed;
  if (!substance.empty()) {
    auto ion = trace::synthIon(lib, substance, amplitude);
    EXPECT_TRUE(ion) << ion.error();
    params->ions.push_back(*ion);
  }
  const trace::Spectrum spectrum = trace::synthesize(*params);
  TraceSample t;
  t.sampleSeq = 42;
  t.sampleTime = 1'790'000'000;
  t.status = alarms.empty() ? 1 : 5;
  t.driftTempK = *spectrum.driftTempK;
  t.pressureHpa = *spectrum.pressureHpa;
  t.desorberTempC = 250.0;
  t.periodNs = spectrum.periodNs;
  t.segments = 16;
  t.alarmed = !alarms.empty();
  t.alarms = std::move(alarms);
  t.points = spectrum.points;
  return t;
}

/// A generated scan the vision module does (or does not) flag, found by trying indices;
/// `raw`: its detector-counts twin (whose calibration the phantom carries).
inline vision::Phantom phantomWith(bool wantAlert, const std::string& scanId, bool raw = false) {
  vision::PhantomOptions o;
  o.pixelMm = 20;
  for (int i = 0; i < 120; ++i) {
    auto p = vision::generatePhantom(77, i, o);
    // A clear scan holds nothing; an alerting one is whatever the analysis does not clear.
    if (!wantAlert && !p.truth.concealments.empty()) continue;
    const auto f = vision::analyzeScan(p.bundle, vision::AnalysisParams{});
    if (!f.error.empty() || wantAlert != (f.verdict != "clear")) continue;
    if (raw) {
      o.raw = true;
      p = vision::generatePhantom(77, i, o);
    }
    p.bundle.meta.scanId = scanId;
    return p;
  }
  ADD_FAILURE() << "no generated scan with alert=" << wantAlert;
  return {};
}

/// A dark or air frame of `cal`'s detector (what a scanner writes on a calibration
/// command): 100 pulses per channel at its dark or air level, with counting noise; an
/// air frame taken with `beamOff` sits at the dark level.
inline std::vector<cv::Mat> calibrationPlanes(const std::string& kind,
                                              const vision::Calibration& cal,
                                              bool beamOff = false) {
  std::vector<cv::Mat> planes;
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  for (const auto& e : cal.energies) {
    cv::Mat plane(static_cast<int>(e.dark.size()), 100, CV_16UC1);
    for (int y = 0; y < plane.rows; ++y) {
      const double dark = static_cast<double>(e.dark[static_cast<std::size_t>(y)]);
      const double level = kind == "air" && !beamOff
                               ? static_cast<double>(e.air[static_cast<std::size_t>(y)])
                               : dark;
      for (int x = 0; x < plane.cols; ++x)
        plane.at<std::uint16_t>(y, x) = static_cast<std::uint16_t>(std::clamp(
            level + noise(rng) * (std::sqrt(std::max(level - dark, 0.0)) + 2.0), 0.0, 65535.0));
    }
    planes.push_back(plane);
  }
  return planes;
}

/// Planes as one uncompressed little-endian TIFF, a page each, one strip a page (what
/// scanners write and what vision::decodePlanes copies straight out of the bytes).
inline std::string tiffBytes(const std::vector<cv::Mat>& planes) {
  std::string out("II*\0\0\0\0\0", 8);
  auto put16 = [&](std::size_t at, std::uint16_t v) { std::memcpy(out.data() + at, &v, 2); };
  auto put32 = [&](std::size_t at, std::uint32_t v) { std::memcpy(out.data() + at, &v, 4); };
  std::size_t link = 4;  // where the offset of the next directory goes
  for (const cv::Mat& p : planes) {
    const auto data = static_cast<std::uint32_t>(out.size());
    for (int y = 0; y < p.rows; ++y)
      out.append(reinterpret_cast<const char*>(p.ptr<std::uint16_t>(y)),
                 static_cast<std::size_t>(p.cols) * 2);
    const auto bytes = static_cast<std::uint32_t>(out.size()) - data;
    const auto ifd = static_cast<std::uint32_t>(out.size());
    put32(link, ifd);
    const std::vector<std::pair<std::uint16_t, std::uint32_t>> tags{
        {256, static_cast<std::uint32_t>(p.cols)},
        {257, static_cast<std::uint32_t>(p.rows)},
        {258, 16},
        {259, 1},
        {262, 1},
        {273, data},
        {277, 1},
        {278, static_cast<std::uint32_t>(p.rows)},
        {279, bytes},
        {339, 1}};
    out.resize(out.size() + 2 + 12 * tags.size() + 4, '\0');
    put16(ifd, static_cast<std::uint16_t>(tags.size()));
    for (std::size_t i = 0; i < tags.size(); ++i) {
      const std::size_t at = ifd + 2 + 12 * i;
      put16(at, tags[i].first);
      put16(at + 2, 4);  // LONG
      put32(at + 4, 1);
      put32(at + 8, tags[i].second);
    }
    link = ifd + 2 + 12 * tags.size();
  }
  return out;
}

/// A bundle's two files, as bytes.
inline BundleBytes bundleBytes(const vision::ScanBundle& b) {
  return {b.meta.scanId, b.meta.scanId + ".json", vision::metaToJson(b.meta),
          b.meta.scanId + ".tiff", tiffBytes(b.planes)};
}

}  // namespace lanegate::lane::test
