#pragma once

// Decoding of Contract 1 scan bundles (TIFF + JSON). The only I/O in the vision module:
// every failure comes back as a message naming the file and the problem.

#include "vision/scan.h"

#include <tl/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace lanegate::vision {

/// Limits that keep a hostile or broken bundle from exhausting memory. Every count and size
/// a TIFF claims is checked against them before anything is allocated for it (the daemon's
/// `decode:` config section sets them).
struct DecodeLimits {
  int maxWidth = 40000;                      ///< columns (a 60 m train at 1.5 mm pitch)
  int maxHeight = 8192;                      ///< rows (detector channels)
  std::uint64_t maxPixels = 1ull << 27;      ///< width × height × pages (2 bytes each decoded)
  std::uintmax_t maxTiffBytes = 1ull << 30;  ///< file size cap for the image
  std::uintmax_t maxJsonBytes = 1ull << 20;  ///< file size cap for the metadata
};

/// The most pages (IFDs) the TIFF walker follows before it calls the file broken.
inline constexpr int kMaxTiffPages = 16;

/// Parses Contract 1 metadata; `name` is used in messages.
tl::expected<ScanMeta, std::string> parseMeta(std::string_view jsonText, const std::string& name);

/// Serialises metadata as Contract 1 JSON.
std::string metaToJson(const ScanMeta& meta);

/// Header facts read from a TIFF without decoding it.
struct TiffInfo {
  int pages = 0;          ///< number of IFDs
  int width = 0;          ///< of the first page
  int height = 0;         ///< of the first page
  int bitsPerSample = 0;  ///< of the first page
};

/// Checks a TIFF held in memory: structure, page sizes, bit depth, limits, truncation.
tl::expected<TiffInfo, std::string> inspectTiff(std::string_view bytes, const std::string& name,
                                                const DecodeLimits& limits);

/// Reads `<path>` (a TIFF) once and decodes its bytes into CV_16UC1 planes.
tl::expected<std::vector<cv::Mat>, std::string> readPlanes(const std::string& path,
                                                           const DecodeLimits& limits);

/// Decodes TIFF bytes already in memory (`name` only names them in messages: nothing is
/// ever read from a file here). The hand-written walker checks the structure against
/// `limits` first; uncompressed little-endian strips are then copied straight out of
/// `bytes`, and anything else (LZW, Deflate, tiles, big-endian) is decoded by libtiff
/// from the same bytes, so what is analysed is exactly what was hashed.
tl::expected<std::vector<cv::Mat>, std::string> decodePlanes(std::string_view bytes,
                                                             const std::string& name,
                                                             const DecodeLimits& limits);

/// Writes planes as one uncompressed multi-page 16-bit TIFF (what decodePlanes copies directly).
bool writeTiff(const std::string& path, const std::vector<cv::Mat>& planes);

/// Loads a bundle given either its .json or its .tiff path (the sibling is derived).
tl::expected<ScanBundle, std::string> loadBundle(const std::string& path,
                                                 const DecodeLimits& limits = {});

/// A bundle from its two files' bytes, already read (e.g. to hash them): never a second
/// read (see decodePlanes); the paths only name the files in messages.
tl::expected<ScanBundle, std::string> decodeBundle(std::string_view jsonText,
                                                   const std::string& jsonPath,
                                                   std::string_view tiffBytes,
                                                   const std::string& tiffPath,
                                                   const DecodeLimits& limits = {});

/// Writes `<dir>/<scan_id>.tiff` then `<dir>/<scan_id>.json` (temporary name, then rename).
tl::expected<void, std::string> writeBundle(const ScanBundle& bundle, const std::string& dir);

/// Reads a calibration file: {"energies": [{"dark": [...], "air": [...]}, ...]}.
tl::expected<Calibration, std::string> loadCalibration(const std::string& path);

/// Parses a calibration file's text (`name` names it in messages).
tl::expected<Calibration, std::string> parseCalibration(std::string_view text,
                                                        const std::string& name);

/// Serialises a calibration in the format loadCalibration reads.
std::string calibrationToJson(const Calibration& calibration);

/// Reads a whole small file, refusing files larger than `maxBytes`.
tl::expected<std::string, std::string> readFileCapped(const std::string& path,
                                                      std::uintmax_t maxBytes);

/// Writes text to `path` via a temporary name and a rename.
tl::expected<void, std::string> writeFileAtomic(const std::string& path, std::string_view text);

}  // namespace lanegate::vision
