#include "vision/decode.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <tiffio.h>

#include <algorithm>
#include <bit>
#include <bitset>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
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
    case 1:
    case 2:
    case 6:
    case 7:
      return 1;
    case 3:
    case 8:
      return 2;
    case 4:
    case 9:
    case 11:
      return 4;
    case 5:
    case 10:
    case 12:
      return 8;
    default:
      return 0;
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
  // What the direct (uncompressed) path needs; anything else goes to libtiff.
  std::uint64_t compression = 1, rowsPerStrip = 0, sampleFormat = 1;
  std::uint64_t tileWidth = 0, tileLength = 0;
  bool tiled = false;
  // StripOffsets/TileOffsets and their byte counts: where the arrays lie, read only once
  // the page's geometry has passed the limits (so their length is known to be sane).
  std::optional<IfdEntry> offsetsTag, countsTag;
  std::vector<std::uint64_t> offsets, counts;  // strips (or tiles)
};

tl::expected<TiffInfo, std::string> parseTiff(std::string_view bytes, const std::string& name,
                                              const DecodeLimits& limits,
                                              std::vector<PageInfo>& pages);

// Uncompressed, little-endian, 16-bit unsigned strips, each holding its rows: what scanners
// write and what lanegate-sim writes. Such a page is copied straight out of the bytes already
// read (no codec); a copy of 13 MB takes about a millisecond, a codec 100-300 ms.
bool directlyCopyable(std::string_view bytes, const PageInfo& p) {
  if (bytes.size() < 2 || bytes[0] != 'I' || std::endian::native != std::endian::little)
    return false;
  if (p.compression != 1 || p.tiled || p.sampleFormat != 1 || p.bits != 16 || p.samples != 1)
    return false;
  const std::uint64_t rps = p.rowsPerStrip == 0 ? p.height : std::min(p.rowsPerStrip, p.height);
  if (rps == 0 || p.offsets.size() != p.counts.size() ||
      p.offsets.size() != (p.height + rps - 1) / rps)
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

// The TIFF bytes as libtiff's client "file": reads, seeks and a read-only map over memory.
struct MemoryTiff {
  std::string_view bytes;
  std::uint64_t at = 0;
  std::string error;  // libtiff's first error message
};

tmsize_t memRead(thandle_t h, void* buf, tmsize_t n) {
  auto* f = static_cast<MemoryTiff*>(h);
  if (n <= 0 || f->at >= f->bytes.size()) return 0;
  const std::uint64_t take =
      std::min<std::uint64_t>(static_cast<std::uint64_t>(n), f->bytes.size() - f->at);
  std::memcpy(buf, f->bytes.data() + f->at, take);
  f->at += take;
  return static_cast<tmsize_t>(take);
}
tmsize_t memWrite(thandle_t, void*, tmsize_t) { return -1; }
toff_t memSeek(thandle_t h, toff_t off, int whence) {
  auto* f = static_cast<MemoryTiff*>(h);
  // toff_t is unsigned: a negative SEEK_CUR/SEEK_END offset arrives wrapped, and wraps back.
  const std::uint64_t base = whence == SEEK_CUR ? f->at : whence == SEEK_END ? f->bytes.size() : 0;
  f->at = base + off;
  return f->at;
}
int memClose(thandle_t) { return 0; }
toff_t memSize(thandle_t h) { return static_cast<MemoryTiff*>(h)->bytes.size(); }
int memMap(thandle_t h, void** base, toff_t* size) {
  auto* f = static_cast<MemoryTiff*>(h);
  // Opened read-only: libtiff never writes through the map.
  *base = const_cast<char*>(f->bytes.data());
  *size = f->bytes.size();
  return 1;
}
void memUnmap(thandle_t, void*, toff_t) {}

// libtiff's handler: `fmt` is libtiff's own printf format (the attribute tells the compiler).
__attribute__((format(printf, 4, 0))) int keepError(TIFF*, void* user, const char* module,
                                                    const char* fmt, va_list ap) {
  auto* f = static_cast<MemoryTiff*>(user);
  if (f->error.empty()) {
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    f->error = std::string(module ? module : "libtiff") + ": " + buf;
  }
  return 1;  // handled: nothing goes to stderr
}
int ignoreWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

// Decodes pages the walker has checked (sizes within the limits, strip and tile arrays of
// the lengths their geometry needs) with libtiff, from the bytes in memory.
tl::expected<std::vector<cv::Mat>, std::string> decodeWithLibtiff(
    std::string_view bytes, const std::string& name, const std::vector<PageInfo>& pages) {
  MemoryTiff file{bytes, 0, {}};
  std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> options(TIFFOpenOptionsAlloc(),
                                                                       TIFFOpenOptionsFree);
  if (!options) return fail(name, "out of memory opening the TIFF decoder");
  TIFFOpenOptionsSetErrorHandlerExtR(options.get(), keepError, &file);
  TIFFOpenOptionsSetWarningHandlerExtR(options.get(), ignoreWarning, nullptr);
  // No single allocation beyond what one decoded page needs (plus slack for codec state).
  const PageInfo& first = pages.front();
  TIFFOpenOptionsSetMaxSingleMemAlloc(
      options.get(), static_cast<tmsize_t>(first.width * first.height * 2 + (4u << 20)));
  std::unique_ptr<TIFF, void (*)(TIFF*)> tif(
      TIFFClientOpenExt(name.c_str(), "r", &file, memRead, memWrite, memSeek, memClose, memSize,
                        memMap, memUnmap, options.get()),
      TIFFClose);
  auto libtiffFailed = [&](const std::string& what) {
    return fail(name, what + (file.error.empty() ? std::string() : " (" + file.error + ")"));
  };
  if (!tif) return libtiffFailed("the TIFF decoder could not open the image");
  std::vector<cv::Mat> planes;
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const PageInfo& p = pages[i];
    const std::string which = "page " + std::to_string(i + 1);
    if (i > 0 && !TIFFReadDirectory(tif.get()))
      return libtiffFailed("could not read " + which + "'s directory");
    std::uint32_t w = 0, h = 0;
    TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &h);
    if (w != p.width || h != p.height)
      return fail(name, which + ": the decoder sees " + std::to_string(w) + "x" +
                            std::to_string(h) + ", the walker " + std::to_string(p.width) + "x" +
                            std::to_string(p.height));
    cv::Mat m(static_cast<int>(h), static_cast<int>(w), CV_16UC1);
    const std::uint64_t rowBytes = std::uint64_t{w} * 2;
    if (TIFFIsTiled(tif.get())) {
      std::uint32_t tw = 0, th = 0;
      TIFFGetField(tif.get(), TIFFTAG_TILEWIDTH, &tw);
      TIFFGetField(tif.get(), TIFFTAG_TILELENGTH, &th);
      if (tw != p.tileWidth || th != p.tileLength)
        return fail(name, which + ": tile size disagrees with the walker");
      const tmsize_t tileBytes = TIFFTileSize(tif.get());
      if (tileBytes != static_cast<tmsize_t>(std::uint64_t{tw} * th * 2))
        return fail(name, which + ": unexpected tile layout");
      std::vector<std::uint16_t> tile(std::size_t{tw} * th);
      for (std::uint32_t y = 0; y < h; y += th) {
        for (std::uint32_t x = 0; x < w; x += tw) {
          if (TIFFReadEncodedTile(tif.get(), TIFFComputeTile(tif.get(), x, y, 0, 0), tile.data(),
                                  tileBytes) != tileBytes)
            return libtiffFailed(which + ": could not decode the tile at column " +
                                 std::to_string(x) + ", row " + std::to_string(y));
          const std::uint32_t cols = std::min(tw, w - x), rows = std::min(th, h - y);
          for (std::uint32_t r = 0; r < rows; ++r)
            std::memcpy(m.ptr<std::uint16_t>(static_cast<int>(y + r)) + x,
                        tile.data() + std::size_t{r} * tw, std::size_t{cols} * 2);
        }
      }
    } else {
      std::uint32_t rps = h;
      TIFFGetFieldDefaulted(tif.get(), TIFFTAG_ROWSPERSTRIP, &rps);
      rps = std::clamp<std::uint32_t>(rps, 1, h);
      const std::uint32_t strips = TIFFNumberOfStrips(tif.get());
      if (strips != (h + rps - 1) / rps)
        return fail(name, which + ": strip count disagrees with its rows");
      for (std::uint32_t s = 0; s < strips; ++s) {
        const std::uint32_t rows = std::min(rps, h - s * rps);
        const auto want = static_cast<tmsize_t>(rows * rowBytes);
        // Each strip decodes straight into its rows; libtiff writes no more than `want`.
        if (TIFFReadEncodedStrip(tif.get(), s, m.ptr(static_cast<int>(s * rps)), want) != want)
          return libtiffFailed(which + ": could not decode strip " + std::to_string(s + 1) +
                               " of " + std::to_string(strips));
      }
    }
    planes.push_back(std::move(m));
  }
  return planes;
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
    if (!obj[key].is_string())
      return fail(name, std::string("field \"") + key + "\" must be a string");
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
    if (!(mev > 0.02 && mev <= 30.0))
      return fail(name, "energies_mev value out of range (0.02–30 MeV)");
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
  if (!known)
    return fail(name,
                "conveyance.kind \"" + meta.conveyance.kind + "\" is not one of Contract 1's");
  if (conv.contains("ids") && conv["ids"].is_array()) {
    for (const json& id : conv["ids"])
      if (id.is_string()) meta.conveyance.ids.push_back(id.get<std::string>());
  }
  if (auto r = str(conv, "plate", meta.conveyance.plate, false); !r)
    return tl::unexpected(r.error());
  if (auto r = str(conv, "awb", meta.conveyance.awb, false); !r) return tl::unexpected(r.error());
  if (conv.contains("declared")) {
    const json& d = conv["declared"];
    if (!d.is_object()) return fail(name, "conveyance.declared must be an object");
    Declared& out = meta.conveyance.declared;
    if (d.contains("empty")) {
      if (!d["empty"].is_boolean()) return fail(name, "declared.empty must be true or false");
      out.empty = d["empty"].get<bool>();
    }
    if (auto r = str(d, "description", out.description, false); !r)
      return tl::unexpected(r.error());
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

const char* tagName(std::uint32_t tag) {
  switch (tag) {
    case 273:
      return "StripOffsets";
    case 279:
      return "StripByteCounts";
    case 324:
      return "TileOffsets";
    case 325:
      return "TileByteCounts";
    default:
      return "tag";
  }
}

// Reads the values of a strip or tile array into `out`, after its length has been checked
// against what the page's geometry needs: nothing is allocated for a count the file claims.
tl::expected<void, std::string> readArray(const TiffReader& r, const IfdEntry& e, std::uint32_t tag,
                                          std::uint64_t needed, const std::string& name,
                                          const std::string& which,
                                          std::vector<std::uint64_t>& out) {
  if (e.type != 3 && e.type != 4)
    return fail(name, which + "'s " + tagName(tag) + " must be SHORT or LONG values");
  if (e.count != needed)
    return fail(name, which + "'s " + tagName(tag) + " has " + std::to_string(e.count) +
                          " values; its size needs " + std::to_string(needed));
  out.reserve(needed);
  std::uint64_t v = 0;
  for (std::uint32_t k = 0; k < e.count; ++k) {
    if (!readValue(r, e, k, v))
      return fail(name, "truncated TIFF (" + which + "'s " + tagName(tag) + ")");
    out.push_back(v);
  }
  return {};
}

tl::expected<TiffInfo, std::string> parseTiff(std::string_view bytes, const std::string& name,
                                              const DecodeLimits& limits,
                                              std::vector<PageInfo>& pages) {
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
  std::uint64_t pixels = 0;  // over all pages so far
  while (ifd != 0) {
    if (static_cast<int>(pages.size()) >= kMaxTiffPages)
      return fail(name, "more than " + std::to_string(kMaxTiffPages) + " pages (or an IFD loop)");
    const std::string which = "page " + std::to_string(pages.size() + 1);
    std::uint32_t count = 0;
    if (!r.u16(ifd, count))
      return fail(name, "truncated TIFF (directory at byte " + std::to_string(ifd) +
                            " lies past the end of the " + std::to_string(r.size()) +
                            "-byte file)");
    if (ifd + 2ull + 12ull * count + 4 > r.size())
      return fail(name, "truncated TIFF (" + which + "'s directory of " + std::to_string(count) +
                            " entries runs past the end of the file)");
    PageInfo page;
    std::bitset<65536> seen;  // a TIFF lists each tag once per directory
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint64_t at = ifd + 2ull + 12ull * i;
      std::uint32_t tag = 0;
      IfdEntry e;
      std::uint32_t inlineValue = 0;
      if (!r.u16(at, tag) || !r.u16(at + 2, e.type) || !r.u32(at + 4, e.count) ||
          !r.u32(at + 8, inlineValue))
        return fail(name, "truncated TIFF (directory entries cut off)");
      if (seen.test(tag))
        return fail(name, which + " lists tag " + std::to_string(tag) + " more than once (entry " +
                              std::to_string(i + 1) + " of " + std::to_string(count) + ")");
      seen.set(tag);
      const std::uint64_t bytesNeeded = std::uint64_t{typeSize(e.type)} * e.count;
      e.valueAt = bytesNeeded <= 4 ? at + 8 : inlineValue;
      if (e.valueAt + bytesNeeded > r.size())
        return fail(name, "truncated TIFF (a tag's data lies past the end of the file)");
      std::uint64_t v = 0;
      switch (tag) {
        case 256:
          if (readValue(r, e, 0, v)) page.width = v;
          break;
        case 257:
          if (readValue(r, e, 0, v)) page.height = v;
          break;
        case 258:
          if (readValue(r, e, 0, v)) page.bits = v;
          break;
        case 277:
          if (readValue(r, e, 0, v)) page.samples = v;
          break;
        case 259:
          if (readValue(r, e, 0, v)) page.compression = v;
          break;
        case 278:
          if (readValue(r, e, 0, v)) page.rowsPerStrip = v;
          break;
        case 339:
          if (readValue(r, e, 0, v)) page.sampleFormat = v;
          break;
        case 322:
          page.tiled = true;
          if (readValue(r, e, 0, v)) page.tileWidth = v;
          break;
        case 323:
          page.tiled = true;
          if (readValue(r, e, 0, v)) page.tileLength = v;
          break;
        case 273:
          page.offsetsTag = e;
          break;
        case 279:
          page.countsTag = e;
          break;
        case 324:
          page.tiled = true;
          page.offsetsTag = e;
          break;
        case 325:
          page.tiled = true;
          page.countsTag = e;
          break;
        default:
          break;
      }
    }
    if (seen.test(273) + seen.test(324) > 1 || seen.test(279) + seen.test(325) > 1)
      return fail(name, which + " has both strips and tiles");
    // The page's size against the limits, before anything is allocated for it.
    if (page.width == 0 || page.height == 0) return fail(name, which + " has no width or height");
    if (page.width > static_cast<std::uint64_t>(limits.maxWidth) ||
        page.height > static_cast<std::uint64_t>(limits.maxHeight))
      return fail(name, which + " claims " + std::to_string(page.width) + "x" +
                            std::to_string(page.height) + " pixels, beyond the limit of " +
                            std::to_string(limits.maxWidth) + "x" +
                            std::to_string(limits.maxHeight));
    pixels += page.width * page.height;
    if (pixels > limits.maxPixels)
      return fail(name, "pages 1 to " + std::to_string(pages.size() + 1) + " hold " +
                            std::to_string(pixels) + " pixels, beyond the limit of " +
                            std::to_string(limits.maxPixels));
    if (page.samples != 1)
      return fail(name, which + " is not grayscale (" + std::to_string(page.samples) +
                            " samples per pixel)");
    if (page.bits != 16)
      return fail(name, which + " is " + std::to_string(page.bits) +
                            "-bit; Contract 1 wants 16-bit unsigned grayscale");
    if (page.sampleFormat != 1)
      return fail(name, which + " has sample format " + std::to_string(page.sampleFormat) +
                            "; Contract 1 wants 16-bit unsigned grayscale");
    // How many strips or tiles that size needs: the arrays must hold exactly that many.
    std::uint64_t needed = 0;
    if (page.tiled) {
      // Tiles are multiples of 16 (TIFF 6.0) and no larger than the page needs.
      const auto fits = [](std::uint64_t t, std::uint64_t extent) {
        return t >= 16 && t % 16 == 0 && t < extent + 16;
      };
      if (!fits(page.tileWidth, page.width) || !fits(page.tileLength, page.height))
        return fail(name, which + " has tiles of " + std::to_string(page.tileWidth) + "x" +
                              std::to_string(page.tileLength) + " for a " +
                              std::to_string(page.width) + "x" + std::to_string(page.height) +
                              " image (multiples of 16, at most the image)");
      needed = ((page.width + page.tileWidth - 1) / page.tileWidth) *
               ((page.height + page.tileLength - 1) / page.tileLength);
    } else {
      const std::uint64_t rps =
          page.rowsPerStrip == 0 ? page.height : std::min(page.rowsPerStrip, page.height);
      needed = (page.height + rps - 1) / rps;
    }
    if (!page.offsetsTag || !page.countsTag)
      return fail(name, which + " has no " +
                            (page.tiled ? "TileOffsets and TileByteCounts"
                                        : "StripOffsets and StripByteCounts"));
    const std::uint32_t offsetsTag = page.tiled ? 324 : 273, countsTag = page.tiled ? 325 : 279;
    if (auto a = readArray(r, *page.offsetsTag, offsetsTag, needed, name, which, page.offsets); !a)
      return tl::unexpected(a.error());
    if (auto a = readArray(r, *page.countsTag, countsTag, needed, name, which, page.counts); !a)
      return tl::unexpected(a.error());
    for (std::size_t k = 0; k < page.offsets.size(); ++k) {
      if (page.offsets[k] + page.counts[k] > r.size())
        return fail(name, "truncated TIFF (" + which + "'s image data ends at byte " +
                              std::to_string(page.offsets[k] + page.counts[k]) +
                              " but the file has " + std::to_string(r.size()) + ")");
    }
    pages.push_back(std::move(page));
    if (!r.u32(ifd + 2ull + 12ull * count, ifd))
      return fail(name, "truncated TIFF (directory cut off before its next-page link)");
  }
  if (pages.empty()) return fail(name, "TIFF has no pages");
  const PageInfo& first = pages.front();
  for (std::size_t i = 1; i < pages.size(); ++i) {
    const PageInfo& p = pages[i];
    if (p.width != first.width || p.height != first.height)
      return fail(name, "mismatched page sizes: page 1 is " + std::to_string(first.width) + "x" +
                            std::to_string(first.height) + ", page " + std::to_string(i + 1) +
                            " is " + std::to_string(p.width) + "x" + std::to_string(p.height));
  }
  return TiffInfo{static_cast<int>(pages.size()), static_cast<int>(first.width),
                  static_cast<int>(first.height), static_cast<int>(first.bits)};
}

}  // namespace

tl::expected<std::string, std::string> readFileCapped(const std::string& path,
                                                      std::uintmax_t maxBytes) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) return fail(path, "cannot read (" + ec.message() + ")");
  if (size > maxBytes)
    return fail(path, "file is " + std::to_string(size) + " bytes, beyond the limit of " +
                          std::to_string(maxBytes));
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

tl::expected<std::vector<cv::Mat>, std::string> decodePlanes(std::string_view bytes,
                                                             const std::string& name,
                                                             const DecodeLimits& limits) {
  if (bytes.size() > limits.maxTiffBytes)
    return fail(name, "file is " + std::to_string(bytes.size()) + " bytes, beyond the limit of " +
                          std::to_string(limits.maxTiffBytes));
  std::vector<PageInfo> pages;
  auto info = parseTiff(bytes, name, limits, pages);
  if (!info) return tl::unexpected(info.error());
  if (info->pages > 2)
    return fail(name, "has " + std::to_string(info->pages) +
                          " pages; Contract 1 wants 1 (single energy) or 2 (high, low)");
  // Within the limits an allocation should not fail, but a process short of memory must
  // lose this bundle, not its life.
  try {
    if (std::all_of(pages.begin(), pages.end(),
                    [&](const PageInfo& p) { return directlyCopyable(bytes, p); })) {
      std::vector<cv::Mat> planes;
      for (const PageInfo& p : pages) planes.push_back(copyPage(bytes, p));
      return planes;
    }
    // Compressed, tiled or big-endian: libtiff, from the same bytes.
    return decodeWithLibtiff(bytes, name, pages);
  } catch (const std::bad_alloc&) {
    return fail(name, "out of memory decoding " + std::to_string(info->width) + "x" +
                          std::to_string(info->height) + " pixels");
  } catch (const cv::Exception& e) {
    return fail(name, std::string("decoding failed: ") + e.what());
  }
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

tl::expected<ScanBundle, std::string> loadBundle(const std::string& path,
                                                 const DecodeLimits& limits) {
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

tl::expected<ScanBundle, std::string> decodeBundle(std::string_view jsonText,
                                                   const std::string& jsonPath,
                                                   std::string_view tiffBytes,
                                                   const std::string& tiffPath,
                                                   const DecodeLimits& limits) {
  if (jsonText.size() > limits.maxJsonBytes)
    return fail(jsonPath, "file is " + std::to_string(jsonText.size()) +
                              " bytes, beyond the limit of " + std::to_string(limits.maxJsonBytes));
  auto meta = parseMeta(jsonText, jsonPath);
  if (!meta) return tl::unexpected(meta.error());
  auto planes = decodePlanes(tiffBytes, tiffPath, limits);
  if (!planes) return tl::unexpected(planes.error());
  if (planes->size() != meta->energiesMev.size())
    return fail(tiffPath, "has " + std::to_string(planes->size()) +
                              " page(s) but energies_mev lists " +
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
  return parseCalibration(*text, path);
}

tl::expected<Calibration, std::string> parseCalibration(std::string_view text,
                                                        const std::string& path) {
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("energies") ||
      !doc["energies"].is_array())
    return fail(path,
                "calibration must be {\"energies\": [{\"dark\": [...], \"air\": [...]}, ...]}");
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
