// A scan image as an X-ray scanner's writer could leave it in the inbox: any bytes, run
// through the TIFF validator and decoder exactly as the X-ray pipeline calls them.

#include "tests/fuzz/fuzz.h"
#include "vision/decode.h"

#include <opencv2/core.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Tighter limits than the daemon's so that one input cannot take the fuzzer's memory
  // budget; the limits themselves are what is being exercised.
  lanegate::vision::DecodeLimits limits;
  limits.maxWidth = 2048;
  limits.maxHeight = 512;
  limits.maxTiffBytes = 1u << 22;
  const auto bytes = lanegate::fuzz::text(data, size);
  const auto info = lanegate::vision::inspectTiff(bytes, "fuzz.tiff", limits);
  const auto planes = lanegate::vision::decodePlanes(bytes, "/nonexistent/fuzz.tiff", limits);
  if (planes && !info) std::abort();  // decoded what the validator refused
  if (planes) {
    for (const cv::Mat& p : *planes) {
      if (p.type() != CV_16UC1 || p.cols != info->width || p.rows != info->height) std::abort();
    }
  }
  return 0;
}
