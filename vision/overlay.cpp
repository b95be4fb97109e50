#include "vision/overlay.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>

namespace lanegate::vision {
namespace {

// BGR hues of the classic dual-energy palette.
cv::Vec3f hue(Material m) {
  switch (m) {
    case Material::kOrganic: return {0.2f, 0.6f, 1.0f};    // orange
    case Material::kInorganic: return {0.3f, 0.9f, 0.3f};  // green
    case Material::kMetal: return {1.0f, 0.6f, 0.3f};      // blue
    case Material::kUnknown: return {0.9f, 0.3f, 0.8f};    // violet
    case Material::kNone: break;
  }
  return {1.0f, 1.0f, 1.0f};
}

}  // namespace

std::vector<std::uint8_t> renderOverlay(const Findings& f, std::size_t maxBytes) {
  std::vector<std::uint8_t> jpeg;
  if (f.alphaHigh.empty() || f.materialMap.empty()) return jpeg;
  try {
    // Brightness: transmission with a log-like stretch so dense and thin matter both show.
    cv::Mat lum;
    cv::Mat a;
    cv::max(f.alphaHigh, 0.0f, a);
    cv::exp(a * -0.3, lum);
    lum = lum * 0.85 + 0.15;
    cv::Mat mat;
    cv::resize(f.materialMap, mat, lum.size(), 0, 0, cv::INTER_NEAREST);
    cv::Mat img(lum.size(), CV_8UC3);
    for (int y = 0; y < img.rows; ++y) {
      const float* l = lum.ptr<float>(y);
      const std::uint8_t* m = mat.ptr<std::uint8_t>(y);
      auto* o = img.ptr<cv::Vec3b>(y);
      for (int x = 0; x < img.cols; ++x) {
        const cv::Vec3f h = hue(static_cast<Material>(m[x]));
        for (int k = 0; k < 3; ++k) o[x][k] = cv::saturate_cast<std::uint8_t>(255.0f * l[x] * h[k]);
      }
    }
    const int thick = std::max(2, img.cols / 900);
    const double fontScale = std::max(0.5, img.cols / 3000.0);
    for (const Finding& x : f.findings) {
      const cv::Rect r(x.boxPx[0], x.boxPx[1], x.boxPx[2], x.boxPx[3]);
      const cv::Scalar colour = x.kind == "opaque" ? cv::Scalar(0, 255, 255) : x.score >= 0.5 ? cv::Scalar(0, 0, 255)
                                                                                                : cv::Scalar(0, 200, 255);
      cv::rectangle(img, r, colour, thick);
      char label[96];
      std::snprintf(label, sizeof label, "%s %.2f", x.kind.c_str(), x.score);
      cv::putText(img, label, cv::Point(r.x, std::max(14, r.y - 4)), cv::FONT_HERSHEY_SIMPLEX, fontScale, colour, thick);
    }
    cv::putText(img, f.scanId + "  " + f.verdict, cv::Point(10, static_cast<int>(30 * fontScale) + 10),
                cv::FONT_HERSHEY_SIMPLEX, fontScale, cv::Scalar(0, 0, 0), thick);
    // Quality gives way first, then size: the control room needs the whole scan.
    for (int attempt = 0; attempt < 8; ++attempt) {
      for (const int q : {85, 70, 55, 40}) {
        cv::imencode(".jpg", img, jpeg, {cv::IMWRITE_JPEG_QUALITY, q, cv::IMWRITE_JPEG_OPTIMIZE, 1});
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
