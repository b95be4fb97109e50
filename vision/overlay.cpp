#include "vision/overlay.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <jpeglib.h>

#ifndef JCS_EXTENSIONS
#error "lanegate needs libjpeg-turbo (JCS_EXT_BGR): install libjpeg62-turbo-dev"
#endif

namespace lanegate::vision {
namespace {

// libjpeg reports errors through a callback that must not return; it jumps back to the
// encoder. Everything the jump crosses lives here, in memory (nothing it changes is left in
// a register that longjmp would restore).
struct JpegJob {
  jpeg_error_mgr err;  // first: libjpeg hands the callback a pointer to it
  std::jmp_buf jump;
  jpeg_compress_struct c;
  unsigned char* buffer;
  unsigned long size;
};

[[noreturn]] void jumpOnJpegError(j_common_ptr c) {
  std::longjmp(reinterpret_cast<JpegJob*>(c->err)->jump, 1);
}

// Encodes an 8-bit BGR image straight from its rows (libjpeg-turbo reads BGR itself;
// cv::imencode would first swap every row to RGB). Same settings as cv::imencode's
// IMWRITE_JPEG_QUALITY / IMWRITE_JPEG_OPTIMIZE, so the same bytes. False when libjpeg fails
// (out of memory).
bool encodeJpeg(const cv::Mat& bgr, int quality, bool optimise, std::vector<std::uint8_t>& out) {
  JpegJob job{};
  job.c.err = jpeg_std_error(&job.err);
  job.err.error_exit = jumpOnJpegError;
  if (setjmp(job.jump) != 0) {
    jpeg_destroy_compress(&job.c);
    std::free(job.buffer);
    return false;
  }
  jpeg_create_compress(&job.c);
  jpeg_mem_dest(&job.c, &job.buffer, &job.size);
  job.c.image_width = static_cast<JDIMENSION>(bgr.cols);
  job.c.image_height = static_cast<JDIMENSION>(bgr.rows);
  job.c.input_components = 3;
  job.c.in_color_space = JCS_EXT_BGR;
  jpeg_set_defaults(&job.c);
  jpeg_set_quality(&job.c, quality, TRUE);
  job.c.optimize_coding = optimise ? TRUE : FALSE;
  jpeg_start_compress(&job.c, TRUE);
  while (job.c.next_scanline < job.c.image_height) {
    // libjpeg's API takes non-const rows; it only reads them.
    JSAMPROW row =
        const_cast<JSAMPROW>(bgr.ptr<std::uint8_t>(static_cast<int>(job.c.next_scanline)));
    jpeg_write_scanlines(&job.c, &row, 1);
  }
  jpeg_finish_compress(&job.c);
  jpeg_destroy_compress(&job.c);
  const std::unique_ptr<unsigned char, void (*)(void*)> owned(job.buffer, std::free);
  out.assign(owned.get(), owned.get() + job.size);
  return true;
}

// BGR hues of the classic dual-energy palette.
cv::Vec3f hue(Material m) {
  switch (m) {
    case Material::kOrganic:
      return {0.2f, 0.6f, 1.0f};  // orange
    case Material::kInorganic:
      return {0.3f, 0.9f, 0.3f};  // green
    case Material::kMetal:
      return {1.0f, 0.6f, 0.3f};  // blue
    case Material::kUnknown:
      return {0.9f, 0.3f, 0.8f};  // violet
    case Material::kNone:
      break;
  }
  return {1.0f, 1.0f, 1.0f};
}

}  // namespace

std::vector<std::uint8_t> renderOverlay(const Findings& f, std::size_t maxBytes) {
  std::vector<std::uint8_t> jpeg;
  if (f.preview.empty() || f.materialMap.empty()) return jpeg;
  try {
    // The cargo-display convention: brightness from transmission (the preview), hue from the
    // material class of the analysis cell, and colour fading to white as attenuation vanishes
    // (air, thin walls: their class is noise). Saturation s = 1 − e^(−α/0.7), with α read
    // back from the preview's brightness 255·(0.15 + 0.85·e^(−0.3α)). A table per class, so
    // each pixel costs one look-up. An entry holds the pixel's three bytes and a spare fourth,
    // so that a pixel is one 4-byte copy (the next pixel overwrites the spare).
    constexpr int kClasses = 5;
    std::array<std::array<std::uint32_t, 256>, kClasses> table{};
    for (int m = 0; m < kClasses; ++m) {
      const cv::Vec3f h = hue(static_cast<Material>(m));
      for (int b = 0; b < 256; ++b) {
        const double t = std::clamp((b / 255.0 - 0.15) / 0.85, 1e-6, 1.0);
        const double alpha = -std::log(t) / 0.3;
        const auto sat = static_cast<float>(1.0 - std::exp(-alpha / 0.7));
        std::array<std::uint8_t, 4> bgr{};
        for (int k = 0; k < 3; ++k)
          bgr[static_cast<std::size_t>(k)] =
              cv::saturate_cast<std::uint8_t>(static_cast<float>(b) * ((1.0f - sat) + sat * h[k]));
        std::memcpy(&table[static_cast<std::size_t>(m)][static_cast<std::size_t>(b)], bgr.data(),
                    4);
      }
    }
    const cv::Mat& pv = f.preview;
    const cv::Mat& mat = f.materialMap;
    // Nearest material cell of each pixel (as INTER_NEAREST resizing would pick it): cell k
    // covers the pixel columns [cellStart[k], cellStart[k + 1]), so a row is coloured run by
    // run with one table per run.
    std::vector<int> cellStart(static_cast<std::size_t>(mat.cols) + 1, pv.cols);
    for (int x = pv.cols - 1; x >= 0; --x)
      cellStart[static_cast<std::size_t>(
          std::min(mat.cols - 1,
                   static_cast<int>(std::floor(x * static_cast<double>(mat.cols) / pv.cols))))] = x;
    for (int k = mat.cols - 1; k >= 0; --k)  // a cell no pixel picks is an empty run
      cellStart[static_cast<std::size_t>(k)] = std::min(cellStart[static_cast<std::size_t>(k)],
                                                        cellStart[static_cast<std::size_t>(k) + 1]);
    cv::Mat img(pv.size(), CV_8UC3);
    for (int y = 0; y < img.rows; ++y) {
      const std::uint8_t* b = pv.ptr<std::uint8_t>(y);
      const int cy = std::min(
          mat.rows - 1, static_cast<int>(std::floor(y * static_cast<double>(mat.rows) / pv.rows)));
      const std::uint8_t* m = mat.ptr<std::uint8_t>(cy);
      std::uint8_t* o = img.ptr<std::uint8_t>(y);
      const int last = img.cols - 1;  // its spare byte would land beyond the row
      for (int k = 0; k < mat.cols; ++k) {
        const std::uint32_t* t = table[std::min<std::size_t>(m[k], kClasses - 1)].data();
        const int end = std::min(cellStart[static_cast<std::size_t>(k) + 1], last);
        for (int x = cellStart[static_cast<std::size_t>(k)]; x < end; ++x)
          std::memcpy(o + 3 * static_cast<std::ptrdiff_t>(x), &t[b[x]], 4);
      }
      const std::uint32_t lastPixel =
          table[std::min<std::size_t>(m[mat.cols - 1], kClasses - 1)][b[last]];
      std::memcpy(o + 3 * static_cast<std::ptrdiff_t>(last), &lastPixel, 3);
    }
    const int thick = std::max(2, img.cols / 900);
    const double fontScale = std::max(0.5, img.cols / 3000.0);
    for (const Finding& x : f.findings) {
      const cv::Rect r(x.boxPx[0], x.boxPx[1], x.boxPx[2], x.boxPx[3]);
      const cv::Scalar colour = x.kind == "opaque" ? cv::Scalar(0, 255, 255)
                                : x.score >= 0.5   ? cv::Scalar(0, 0, 255)
                                                   : cv::Scalar(0, 200, 255);
      cv::rectangle(img, r, colour, thick);
      char label[96];
      std::snprintf(label, sizeof label, "%s %.2f", x.kind.c_str(), x.score);
      cv::putText(img, label, cv::Point(r.x, std::max(14, r.y - 4)), cv::FONT_HERSHEY_SIMPLEX,
                  fontScale, colour, thick);
    }
    cv::putText(img, f.scanId + "  " + f.verdict,
                cv::Point(10, static_cast<int>(30 * fontScale) + 10), cv::FONT_HERSHEY_SIMPLEX,
                fontScale, cv::Scalar(0, 0, 0), thick);
    // Quality gives way first, then size: the control room needs the whole scan. The first
    // try skips the second (Huffman-optimising) pass over the image, which costs as much as
    // the encoding and saves a third of the bytes: only a try that overflows needs it.
    for (int attempt = 0; attempt < 8; ++attempt) {
      for (const int q : {85, 85, 70, 55, 40}) {
        const int optimise = jpeg.empty() ? 0 : 1;
        if (!encodeJpeg(img, q, optimise != 0, jpeg)) return {};
        if (jpeg.size() <= maxBytes) return jpeg;
      }
      cv::resize(img, img, cv::Size(), 0.75, 0.75, cv::INTER_AREA);
    }
  } catch (const cv::Exception&) {
    jpeg.clear();
  }
  return jpeg;
}

}  // namespace lanegate::vision
