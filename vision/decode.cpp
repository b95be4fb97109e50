#include "vision/decode.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lanegate::vision {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

tl::unexpected<std::string> fail(const std::string& name, const std::string& problem) {
  return tl::unexpected(name + ": " + problem);
}

bool validScanId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (const char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// A bounds-checked reader over the TIFF bytes; every read reports overrun instead of
// touching memory past the end, which is what a truncated file looks like.
class TiffReader {
 public:
  TiffReader(std::string_view bytes, bool little) : bytes_(bytes), little_(little) {}
  bool u16(std::uint64_t at, std::uint32_t& v) const {
    if (at + 2 > bytes_.size()) return false;
    const auto b0 = static_cast<std::uint8_t>(bytes_[at]);
    const auto b1 = static_cast<std::uint8_t>(bytes_[at + 1]);
    v = little_ ? (b0 | (std::uint32_t{b1} << 8)) : ((std::uint32_t{b0} << 8) | b1);
    return true;
  }
  bool u32(std::uint64_t at, std::uint32_t& v) const {
    std::uint32_t a = 0;
    std::uint32_t b = 0;
    if (!u16(at, a) || !u16(at + 2, b)) return false;
    v = little_ ? (a | (b << 16)) : ((a << 16) | b);
    return true;
  }
  std::uint64_t size() const { return bytes_.size(); }

 private:
  std::string_view bytes_;
  bool little_;
};

struct IfdEntry {
  std::uint32_t type = 0;
  std::uint32_t count = 0;
  std::uint64_t valueAt = 0;  // where the value (or array) starts in the file
};

std::uint32_t typeSize(std::uint32_t type) {
  switch (type) {
    case 1: case 2: case 6: case 7: return 1;
    case 3: case 8: return 2;
    case 4: case 9: case 11: return 4;
    case 5: case 10: case 12: return 8;
    default: return 0;
  }
}

bool readValue(const TiffReader& r, const IfdEntry& e, std::uint32_t index, std::uint64_t& out) {
  std::uint32_t v = 0;
  if (e.type == 3) {
    if (!r.u16(e.valueAt + 2ull * index, v)) return false;
  } else if (e.type == 4) {
    if (!r.u32(e.valueAt + 4ull * index, v)) return false;
  } else {
    return false;
  }
  out = v;
  return true;
}

struct PageInfo {
  std::uint64_t width = 0, height = 0, bits = 1, samples = 1;
  std::uint64_t dataEnd = 0;  // furthest byte the image data claims
  // What the direct (uncompressed) path needs; anything else goes to OpenCV's decoder.
  std::uint64_t compression = 1, rowsPerStrip = 0, sampleFormat = 1;
  bool tiled = false;
  std::vector<std::uint64_t> offsets, counts;  // strips (or tiles)
};

tl::expected<TiffInfo, std::string> parseTiff(std::string_view bytes, const std::string& name,
                                              const DecodeLimits& limits, std::vector<PageInfo>& pages);

// Uncompressed, little-endian, 16-bit unsigned strips, each holding its rows: what scanners
// write and what lanegate-sim writes. Such a page is copied straight out of the bytes already
// read (no second read of the file, no codec); a copy of 13 MB takes about a millisecond,
// OpenCV's LZW decoder 100-300 ms.
bool directlyCopyable(std::string_view bytes, const PageInfo& p) {
  if (bytes.size() < 2 || bytes[0] != 'I' || std::endian::native != std::endian::little) return false;
  if (p.compression != 1 || p.tiled || p.sampleFormat != 1 || p.bits != 16 || p.samples != 1) return false;
  const std::uint64_t rps = p.rowsPerStrip == 0 ? p.height : std::min(p.rowsPerStrip, p.height);
  if (rps == 0 || p.offsets.size() != p.counts.size() || p.offsets.size() != (p.height + rps - 1) / rps)
    return false;
  for (std::size_t k = 0; k < p.offsets.size(); ++k) {
    const std::uint64_t rows = std::min(rps, p.height - k * rps);
    const std::uint64_t need = rows * p.width * 2;
    if (p.counts[k] < need || p.offsets[k] + need > bytes.size()) return false;
  }
  return true;
}

cv::Mat copyPage(std::string_view bytes, const PageInfo& p) {
  cv::Mat m(static_cast<int>(p.height), static_cast<int>(p.width), CV_16UC1);
  const std::uint64_t rps = p.rowsPerStrip == 0 ? p.height : std::min(p.rowsPerStrip, p.height);
  const std::uint64_t rowBytes = p.width * 2;
  for (std::size_t k = 0; k < p.offsets.size(); ++k) {
    const std::uint64_t rows = std::min(rps, p.height - k * rps);
    std::memcpy(m.ptr(static_cast<int>(k * rps)), bytes.data() + p.offsets[k], rows * rowBytes);
  }
  return m;
}

}  // namespace

tl::expected<ScanMeta, std::string> parseMeta(std::string_view jsonText, const std::string& name) {
  const json doc = json::parse(jsonText.begin(), jsonText.end(), nullptr, false);
  if (doc.is_discarded()) return fail(name, "not valid JSON");
  if (!doc.is_object()) return fail(name, "metadata must be a JSON object");
  ScanMeta meta;
  auto str = [&](const json& obj, const char* key, std::string& out,
                  bool required) -> tl::expected<void, std::string> {
    if (!obj.contains(key)) {
      if (required) return fail(name, std::string("missing field \"") + key + "\"");
      return {};
    }
    if (!obj[key].is_string()) return fail(name, std::string("field \"") + key + "\" must be a string");
    out = obj[key].get<std::string>();
    return {};
  };
  if (auto r = str(doc, "scan_id", meta.scanId, true); !r) return tl::unexpected(r.error());
  if (!validScanId(meta.scanId)) return fail(name, "scan_id must match [A-Za-z0-9._-]{1,64}");
  if (auto r = str(doc, "time", meta.time, false); !r) return tl::unexpected(r.error());
  if (auto r = str(doc, "scanner", meta.scanner, false); !r) return tl::unexpected(r.error());
  std::string signal;
  if (auto r = str(doc, "signal", signal, true); !r) return tl::unexpected(r.error());
  if (signal == "transmission") {
    meta.signal = Signal::kTransmission;
  } else if (signal == "raw") {
    meta.signal = Signal::kRaw;
  } else {
    return fail(name, "signal must be \"transmission\" or \"raw\", not \"" + signal + "\"");
  }
  if (!doc.contains("energies_mev")) return fail(name, "missing field \"energies_mev\"");
  const json& energies = doc["energies_mev"];
  if (!energies.is_array() || energies.empty() || energies.size() > 2)
    return fail(name, "energies_mev must be [high] or [high, low]");
  for (const json& e : energies) {
    if (!e.is_number()) return fail(name, "energies_mev must hold numbers");
    const double mev = e.get<double>();
    if (!(mev > 0.02 && mev <= 30.0)) return fail(name, "energies_mev value out of range (0.02–30 MeV)");
    meta.energiesMev.push_back(mev);
  }
  if (!doc.contains("pixel_mm")) return fail(name, "missing field \"pixel_mm\"");
  const json& pixel = doc["pixel_mm"];
  if (!pixel.is_object() || !pixel.contains("along") || !pixel.contains("vertical") ||
      !pixel["along"].is_number() || !pixel["vertical"].is_number())
    return fail(name, "pixel_mm must be {\"along\": number, \"vertical\": number}");
  meta.pixelAlongMm = pixel["along"].get<double>();
  meta.pixelVerticalMm = pixel["vertical"].get<double>();
  if (!(meta.pixelAlongMm >= 0.1 && meta.pixelAlongMm <= 200.0) ||
      !(meta.pixelVerticalMm >= 0.1 && meta.pixelVerticalMm <= 200.0))
    return fail(name, "pixel_mm values must lie in 0.1–200 mm");
  if (!doc.contains("conveyance")) return fail(name, "missing field \"conveyance\"");
  const json& conv = doc["conveyance"];
  if (!conv.is_object()) return fail(name, "conveyance must be an object");
  if (auto r = str(conv, "kind", meta.conveyance.kind, true); !r)
    return fail(name, "missing field \"conveyance.kind\"");
  static const char* kKinds[] = {"container", "truck", "rail_wagon", "uld", "vehicle", "parcel"};
  bool known = false;
  for (const char* k : kKinds) known = known || meta.conveyance.kind == k;
  if (!known) return fail(name, "conveyance.kind \"" + meta.conveyance.kind + "\" is not one of Contract 1's");
  if (conv.contains("ids") && conv["ids"].is_array()) {
    for (const json& id : conv["ids"])
      if (id.is_string()) meta.conveyance.ids.push_back(id.get<std::string>());
  }
  if (auto r = str(conv, "plate", meta.conveyance.plate, false); !r) return tl::unexpected(r.error());
  if (auto r = str(conv, "awb", meta.conveyance.awb, false); !r) return tl::unexpected(r.error());
  if (conv.contains("declared")) {
    const json& d = conv["declared"];
    if (!d.is_object()) return fail(name, "conveyance.declared must be an object");
    Declared& out = meta.conveyance.declared;
    if (d.contains("empty")) {
      if (!d["empty"].is_boolean()) return fail(name, "declared.empty must be true or false");
      out.empty = d["empty"].get<bool>();
    }
    if (auto r = str(d, "description", out.description, false); !r) return tl::unexpected(r.error());
    if (d.contains("gross_kg")) {
      if (!d["gross_kg"].is_number() || d["gross_kg"].get<double>() < 0)
        return fail(name, "declared.gross_kg must be a non-negative number");
      out.grossKg = d["gross_kg"].get<double>();
    }
    if (d.contains("hs_codes") && d["hs_codes"].is_array()) {
      for (const json& h : d["hs_codes"])
        if (h.is_string()) out.hsCodes.push_back(h.get<std::string>());
    }
  }
  return meta;
}

std::string metaToJson(const ScanMeta& meta) {
  json doc;
  doc["scan_id"] = meta.scanId;
  doc["time"] = meta.time;
  doc["scanner"] = meta.scanner;
  doc["signal"] = meta.signal == Signal::kRaw ? "raw" : "transmission";
  doc["energies_mev"] = meta.energiesMev;
  doc["pixel_mm"] = {{"along", meta.pixelAlongMm}, {"vertical", meta.pixelVerticalMm}};
  json conv;
  conv["kind"] = meta.conveyance.kind;
  if (!meta.conveyance.ids.empty()) conv["ids"] = meta.conveyance.ids;
  if (!meta.conveyance.plate.empty()) conv["plate"] = meta.conveyance.plate;
  if (!meta.conveyance.awb.empty()) conv["awb"] = meta.conveyance.awb;
  const Declared& d = meta.conveyance.declared;
  json dj = json::object();
  if (d.empty) dj["empty"] = *d.empty;
  if (!d.description.empty()) dj["description"] = d.description;
  if (d.grossKg) dj["gross_kg"] = *d.grossKg;
  if (!d.hsCodes.empty()) dj["hs_codes"] = d.hsCodes;
  conv["declared"] = dj;
  doc["conveyance"] = conv;
  return doc.dump(2) + "\n";
}

tl::expected<TiffInfo, std::string> inspectTiff(std::string_view bytes, const std::string& name,
                                                const DecodeLimits& limits) {
  std::vector<PageInfo> pages;
  return parseTiff(bytes, name, limits, pages);
}

namespace {

tl::expected<TiffInfo, std::string> parseTiff(std::string_view bytes, const std::string& name,
                                              const DecodeLimits& limits, std::vector<PageInfo>& pages) {
  pages.clear();
  if (bytes.size() < 8) return fail(name, "truncated TIFF (shorter than its 8-byte header)");
  const bool little = bytes[0] == 'I' && bytes[1] == 'I';
  const bool big = bytes[0] == 'M' && bytes[1] == 'M';
  if (!little && !big) return fail(name, "not a TIFF (bad byte-order mark)");
  const TiffReader r(bytes, little);
  std::uint32_t magic = 0;
  std::uint32_t ifd = 0;
  r.u16(2, magic);
  if (magic == 43) return fail(name, "BigTIFF is not supported (Contract 1 wants classic TIFF)");
  if (magic != 42) return fail(name, "not a TIFF (bad magic number)");
  r.u32(4, ifd);
  constexpr int kMaxPages = 16;
  while (ifd != 0) {
    if (static_cast<int>(pages.size()) >= kMaxPages)
      return fail(name, "more than " + std::to_string(kMaxPages) + " pages (or an IFD loop)");
    std::uint32_t count = 0;
    if (!r.u16(ifd, count))
      return fail(name, "truncated TIFF (directory at byte " + std::to_string(ifd) +
                            " lies past the end of the " + std::to_string(r.size()) + "-byte file)");
    PageInfo page;
    std::vector<std::uint64_t>& offsets = page.offsets;
    std::vector<std::uint64_t>& counts = page.counts;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint64_t at = ifd + 2ull + 12ull * i;
      std::uint32_t tag = 0;
      IfdEntry e;
      std::uint32_t inlineValue = 0;
      if (!r.u16(at, tag) || !r.u16(at + 2, e.type) || !r.u32(at + 4, e.count) ||
          !r.u32(at + 8, inlineValue))
        return fail(name, "truncated TIFF (directory entries cut off)");
      const std::uint64_t bytesNeeded = std::uint64_t{typeSize(e.type)} * e.count;
      e.valueAt = bytesNeeded <= 4 ? at + 8 : inlineValue;
      if (e.valueAt + bytesNeeded > r.size())
        return fail(name, "truncated TIFF (a tag's data lies past the end of the file)");
      std::uint64_t v = 0;
      switch (tag) {
        case 256: if (readValue(r, e, 0, v)) page.width = v; break;
        case 257: if (readValue(r, e, 0, v)) page.height = v; break;
        case 258: if (readValue(r, e, 0, v)) page.bits = v; break;
        case 277: if (readValue(r, e, 0, v)) page.samples = v; break;
        case 259: if (readValue(r, e, 0, v)) page.compression = v; break;
        case 278: if (readValue(r, e, 0, v)) page.rowsPerStrip = v; break;
        case 339: if (readValue(r, e, 0, v)) page.sampleFormat = v; break;
        case 322: case 323: page.tiled = true; break;
        case 273: case 324:
          if (tag == 324) page.tiled = true;
          for (std::uint32_t k = 0; k < e.count && readValue(r, e, k, v); ++k) offsets.push_back(v);
          break;
        case 279: case 325:
          if (tag == 325) page.tiled = true;
          for (std::uint32_t k = 0; k < e.count && readValue(r, e, k, v); ++k) counts.push_back(v);
          break;
        default: break;
      }
    }
    for (std::size_t k = 0; k < offsets.size() && k < counts.size(); ++k)
      page.dataEnd = std::max(page.dataEnd, offsets[k] + counts[k]);
    pages.push_back(std::move(page));
    if (!r.u32(ifd + 2ull + 12ull * count, ifd))
      return fail(name, "truncated TIFF (directory cut off before its next-page link)");
  }
  if (pages.empty()) return fail(name, "TIFF has no pages");
  const PageInfo& first = pages.front();
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const PageInfo& p = pages[i];
    const std::string which = "page " + std::to_string(i + 1);
    if (p.width == 0 || p.height == 0) return fail(name, which + " has no width or height");
    if (p.width > static_cast<std::uint64_t>(limits.maxWidth) ||
        p.height > static_cast<std::uint64_t>(limits.maxHeight))
      return fail(name, which + " claims " + std::to_string(p.width) + "x" + std::to_string(p.height) +
                            " pixels, beyond the limit of " + std::to_string(limits.maxWidth) + "x" +
                            std::to_string(limits.maxHeight));
    if (p.samples != 1) return fail(name, which + " is not grayscale (" + std::to_string(p.samples) + " samples per pixel)");
    if (p.bits != 16)
      return fail(name, which + " is " + std::to_string(p.bits) + "-bit; Contract 1 wants 16-bit unsigned grayscale");
    if (p.width != first.width || p.height != first.height)
      return fail(name, "mismatched page sizes: page 1 is " + std::to_string(first.width) + "x" +
                            std::to_string(first.height) + ", " + which + " is " + std::to_string(p.width) +
                            "x" + std::to_string(p.height));
    if (p.dataEnd > r.size())
      return fail(name, "truncated TIFF (" + which + "'s image data ends at byte " + std::to_string(p.dataEnd) +
                            " but the file has " + std::to_string(r.size()) + ")");
  }
  return TiffInfo{static_cast<int>(pages.size()), static_cast<int>(first.width),
                  static_cast<int>(first.height), static_cast<int>(first.bits)};
}

}  // namespace

tl::expected<std::string, std::string> readFileCapped(const std::string& path, std::uintmax_t maxBytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return fail(path, "cannot read (" + ec.message() + ")");
  if (size > maxBytes)
    return fail(path, "file is " + std::to_string(size) + " bytes, beyond the limit of " + std::to_string(maxBytes));
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(path, "cannot open");
  std::string text(static_cast<std::size_t>(size), '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  if (static_cast<std::uintmax_t>(in.gcount()) != size) return fail(path, "short read");
  return text;
}

tl::expected<void, std::string> writeFileAtomic(const std::string& path, std::string_view text) {
  const std::string tmp = path + ".part";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return fail(tmp, "cannot create");
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) return fail(tmp, "write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return fail(path, "rename failed (" + ec.message() + ")");
  return {};
}

tl::expected<std::vector<cv::Mat>, std::string> decodePlanes(std::string_view bytes, const std::string& path,
                                                             const DecodeLimits& limits) {
  if (bytes.size() > limits.maxTiffBytes)
    return fail(path, "file is " + std::to_string(bytes.size()) + " bytes, beyond the limit of " +
                          std::to_string(limits.maxTiffBytes));
  std::vector<PageInfo> pages;
  auto info = parseTiff(bytes, path, limits, pages);
  if (!info) return tl::unexpected(info.error());
  if (info->pages > 2)
    return fail(path, "has " + std::to_string(info->pages) +
                          " pages; Contract 1 wants 1 (single energy) or 2 (high, low)");
  std::vector<cv::Mat> planes;
  if (std::all_of(pages.begin(), pages.end(), [&](const PageInfo& p) { return directlyCopyable(bytes, p); })) {
    for (const PageInfo& p : pages) planes.push_back(copyPage(bytes, p));
    return planes;
  }
  // Compressed, tiled or big-endian: OpenCV's decoder, which reads the file itself.
  try {
    if (!cv::imreadmulti(path, planes, cv::IMREAD_UNCHANGED) || planes.empty())
      return fail(path, "the TIFF decoder could not read the image data (corrupt or unsupported compression)");
  } catch (const cv::Exception& e) {
    return fail(path, std::string("the TIFF decoder failed: ") + e.what());
  }
  if (static_cast<int>(planes.size()) != info->pages)
    return fail(path, "decoded " + std::to_string(planes.size()) + " of " + std::to_string(info->pages) + " pages");
  for (const cv::Mat& p : planes) {
    if (p.type() != CV_16UC1) return fail(path, "decoded page is not 16-bit single-channel");
  }
  return planes;
}

tl::expected<std::vector<cv::Mat>, std::string> readPlanes(const std::string& path,
                                                           const DecodeLimits& limits) {
  auto bytes = readFileCapped(path, limits.maxTiffBytes);
  if (!bytes) return tl::unexpected(bytes.error());
  return decodePlanes(*bytes, path, limits);
}

bool writeTiff(const std::string& path, const std::vector<cv::Mat>& planes) {
  return cv::imwritemulti(path, planes, {cv::IMWRITE_TIFF_COMPRESSION, 1});  // 1: none
}

tl::expected<ScanBundle, std::string> loadBundle(const std::string& path, const DecodeLimits& limits) {
  const fs::path p(path);
  const std::string ext = p.extension().string();
  fs::path jsonPath;
  fs::path tiffPath;
  if (ext == ".json") {
    jsonPath = p;
    tiffPath = fs::path(p).replace_extension(".tiff");
    if (!fs::exists(tiffPath) && fs::exists(fs::path(p).replace_extension(".tif")))
      tiffPath = fs::path(p).replace_extension(".tif");
  } else if (ext == ".tiff" || ext == ".tif") {
    tiffPath = p;
    jsonPath = fs::path(p).replace_extension(".json");
  } else {
    return fail(path, "expected a .json or .tiff file of a scan bundle");
  }
  auto text = readFileCapped(jsonPath.string(), limits.maxJsonBytes);
  if (!text) return tl::unexpected(text.error());
  auto meta = parseMeta(*text, jsonPath.string());
  if (!meta) return tl::unexpected(meta.error());
  auto tiff = readFileCapped(tiffPath.string(), limits.maxTiffBytes);
  if (!tiff) return tl::unexpected(tiff.error());
  return decodeBundle(*text, jsonPath.string(), *tiff, tiffPath.string(), limits);
}

tl::expected<ScanBundle, std::string> decodeBundle(std::string_view jsonText, const std::string& jsonPath,
                                                   std::string_view tiffBytes, const std::string& tiffPath,
                                                   const DecodeLimits& limits) {
  if (jsonText.size() > limits.maxJsonBytes)
    return fail(jsonPath, "file is " + std::to_string(jsonText.size()) + " bytes, beyond the limit of " +
                              std::to_string(limits.maxJsonBytes));
  auto meta = parseMeta(jsonText, jsonPath);
  if (!meta) return tl::unexpected(meta.error());
  auto planes = decodePlanes(tiffBytes, tiffPath, limits);
  if (!planes) return tl::unexpected(planes.error());
  if (planes->size() != meta->energiesMev.size())
    return fail(tiffPath, "has " + std::to_string(planes->size()) + " page(s) but energies_mev lists " +
                              std::to_string(meta->energiesMev.size()) + " energies");
  return ScanBundle{std::move(*meta), std::move(*planes)};
}

tl::expected<void, std::string> writeBundle(const ScanBundle& bundle, const std::string& dir) {
  const fs::path base = fs::path(dir) / bundle.meta.scanId;
  const std::string tiff = base.string() + ".tiff";
  // imwrite picks the codec from the extension, so the temporary keeps ".tiff".
  const std::string tmp = (fs::path(dir) / (".part-" + bundle.meta.scanId + ".tiff")).string();
  try {
    if (!writeTiff(tmp, bundle.planes)) return fail(tiff, "the TIFF encoder refused the planes");
  } catch (const cv::Exception& e) {
    return fail(tiff, std::string("the TIFF encoder failed: ") + e.what());
  }
  std::error_code ec;
  fs::rename(tmp, tiff, ec);
  if (ec) return fail(tiff, "rename failed (" + ec.message() + ")");
  return writeFileAtomic(base.string() + ".json", metaToJson(bundle.meta));
}

tl::expected<Calibration, std::string> loadCalibration(const std::string& path) {
  auto text = readFileCapped(path, 64ull << 20);
  if (!text) return tl::unexpected(text.error());
  const json doc = json::parse(*text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("energies") || !doc["energies"].is_array())
    return fail(path, "calibration must be {\"energies\": [{\"dark\": [...], \"air\": [...]}, ...]}");
  Calibration cal;
  for (const json& e : doc["energies"]) {
    if (!e.is_object() || !e.contains("dark") || !e.contains("air") || !e["dark"].is_array() ||
        !e["air"].is_array() || e["dark"].size() != e["air"].size())
      return fail(path, "each energy needs equally long \"dark\" and \"air\" arrays");
    ChannelCalibration c;
    for (const json& v : e["dark"]) {
      if (!v.is_number()) return fail(path, "calibration values must be numbers");
      c.dark.push_back(v.get<float>());
    }
    for (const json& v : e["air"]) {
      if (!v.is_number()) return fail(path, "calibration values must be numbers");
      c.air.push_back(v.get<float>());
    }
    cal.energies.push_back(std::move(c));
  }
  return cal;
}

std::string calibrationToJson(const Calibration& calibration) {
  json doc;
  doc["energies"] = json::array();
  for (const ChannelCalibration& c : calibration.energies)
    doc["energies"].push_back({{"dark", c.dark}, {"air", c.air}});
  return doc.dump() + "\n";
}

}  // namespace lanegate::vision
