// Robustness of bundle decoding: every broken input is a clear error naming the problem.
#include "vision/decode.h"

#include "test_support.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <gtest/gtest.h>

#include <filesystem>

namespace lanegate::vision {
namespace {

using test::ScratchDir;
using test::writeText;

const char* kMeta = R"({"scan_id": "s1", "time": "2026-11-27T12:00:00Z", "scanner": "x1",
  "signal": "transmission", "energies_mev": [6, 4], "pixel_mm": {"along": 5, "vertical": 5},
  "conveyance": {"kind": "container", "declared": {"empty": true}}})";

std::string expectError(const std::string& path) {
  auto r = loadBundle(path);
  EXPECT_FALSE(r.has_value());
  return r ? std::string() : r.error();
}

cv::Mat plane(int w, int h, int type = CV_16UC1) {
  cv::Mat m(h, w, type);
  cv::randu(m, 0, type == CV_16UC1 ? 65535 : 255);
  return m;
}

TEST(Decode, RoundTripsABundle) {
  ScratchDir dir;
  ScanBundle b;
  b.meta = *parseMeta(kMeta, "meta");
  b.planes = {plane(64, 32), plane(64, 32)};
  ASSERT_TRUE(writeBundle(b, dir.file("")).has_value());
  auto back = loadBundle(dir.file("s1.json"));
  ASSERT_TRUE(back.has_value()) << back.error();
  ASSERT_EQ(back->planes.size(), 2u);
  EXPECT_EQ(cv::norm(back->planes[0], b.planes[0], cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(back->planes[1], b.planes[1], cv::NORM_INF), 0.0);
  EXPECT_EQ(back->meta.conveyance.declared.empty, true);
  EXPECT_TRUE(loadBundle(dir.file("s1.tiff")).has_value());
}

// Uncompressed strips are copied straight from the bytes in memory; LZW (OpenCV's default)
// goes through OpenCV's decoder. Both must give the same pixels, over sizes that make one
// strip or many and a last strip shorter than the rest.
class DecodeBothPaths : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(DecodeBothPaths, UncompressedAndLzwGiveTheSamePixels) {
  const auto [w, h, pages] = GetParam();
  ScratchDir dir;
  std::vector<cv::Mat> planes;
  for (int i = 0; i < pages; ++i) planes.push_back(plane(w, h));
  planes[0].at<std::uint16_t>(0, 0) = 65535;  // the top bit survives (unsigned, not signed)
  ASSERT_TRUE(writeTiff(dir.file("raw.tiff"), planes));
  ASSERT_TRUE(cv::imwritemulti(dir.file("lzw.tiff"), planes));  // LZW
  ASSERT_NE(std::filesystem::file_size(dir.file("raw.tiff")), std::filesystem::file_size(dir.file("lzw.tiff")));
  for (const char* name : {"raw.tiff", "lzw.tiff"}) {
    auto back = readPlanes(dir.file(name), DecodeLimits{});
    ASSERT_TRUE(back.has_value()) << name << ": " << back.error();
    ASSERT_EQ(back->size(), planes.size()) << name;
    for (std::size_t i = 0; i < planes.size(); ++i) {
      ASSERT_EQ((*back)[i].type(), CV_16UC1) << name;
      EXPECT_EQ(cv::norm((*back)[i], planes[i], cv::NORM_INF), 0.0) << name << " page " << i;
    }
  }
  // The uncompressed file decodes from its bytes alone: the path it names is never read.
  auto bytes = readFileCapped(dir.file("raw.tiff"), 1u << 30);
  ASSERT_TRUE(bytes.has_value());
  std::filesystem::remove(dir.file("raw.tiff"));
  auto direct = decodePlanes(*bytes, dir.file("raw.tiff"), DecodeLimits{});
  ASSERT_TRUE(direct.has_value()) << direct.error();
  EXPECT_EQ(cv::norm((*direct)[0], planes[0], cv::NORM_INF), 0.0);
  // A compressed one needs the decoder, which reads the file: gone, it is a clear error.
  auto lzw = readFileCapped(dir.file("lzw.tiff"), 1u << 30);
  ASSERT_TRUE(lzw.has_value());
  std::filesystem::remove(dir.file("lzw.tiff"));
  auto viaCodec = decodePlanes(*lzw, dir.file("lzw.tiff"), DecodeLimits{});
  ASSERT_FALSE(viaCodec.has_value());
  EXPECT_NE(viaCodec.error().find("lzw.tiff"), std::string::npos) << viaCodec.error();
}

INSTANTIATE_TEST_SUITE_P(Sizes, DecodeBothPaths,
                         ::testing::Values(std::make_tuple(1, 1, 1), std::make_tuple(37, 13, 2),
                                           std::make_tuple(640, 97, 2), std::make_tuple(3600, 300, 1)));

TEST(Decode, TruncatedUncompressedTiffNamesWhereItEnds) {
  ScratchDir dir;
  ASSERT_TRUE(writeTiff(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(200, 100), plane(200, 100)}));
  std::filesystem::resize_file(dir.file("s1.tiff"), std::filesystem::file_size(dir.file("s1.tiff")) - 1000);
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("s1.tiff"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

TEST(Decode, BundleFromBytesChecksTheJsonToo) {
  ScratchDir dir;
  ASSERT_TRUE(writeTiff(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(20, 10)}));
  auto tiff = readFileCapped(dir.file("s1.tiff"), 1u << 30);
  ASSERT_TRUE(tiff.has_value());
  auto r = decodeBundle(kMeta, "s1.json", *tiff, "s1.tiff");
  ASSERT_FALSE(r.has_value()) << "one page against two energies";
  EXPECT_NE(r.error().find("1 page(s) but energies_mev lists 2"), std::string::npos) << r.error();
  r = decodeBundle("{", "s1.json", *tiff, "s1.tiff");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find("s1.json: not valid JSON"), std::string::npos) << r.error();
}

TEST(Decode, TruncatedTiff) {
  ScratchDir dir;
  ASSERT_TRUE(cv::imwritemulti(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(200, 100), plane(200, 100)}));
  std::filesystem::resize_file(dir.file("s1.tiff"), std::filesystem::file_size(dir.file("s1.tiff")) / 2);
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("s1.tiff"), std::string::npos) << e;
}

TEST(Decode, WrongPageCount) {
  ScratchDir dir;
  ASSERT_TRUE(cv::imwritemulti(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(20, 10), plane(20, 10), plane(20, 10)}));
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("has 3 pages"), std::string::npos) << e;
}

TEST(Decode, PagesDisagreeWithEnergies) {
  ScratchDir dir;
  ASSERT_TRUE(cv::imwrite(dir.file("s1.tiff"), plane(20, 10)));
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("energies_mev lists 2"), std::string::npos) << e;
}

TEST(Decode, MismatchedPageSizes) {
  ScratchDir dir;
  ASSERT_TRUE(cv::imwritemulti(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(20, 10), plane(30, 10)}));
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("mismatched page sizes"), std::string::npos) << e;
}

TEST(Decode, EightBitImage) {
  ScratchDir dir;
  ASSERT_TRUE(cv::imwritemulti(dir.file("s1.tiff"), std::vector<cv::Mat>{plane(20, 10, CV_8UC1), plane(20, 10, CV_8UC1)}));
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("8-bit"), std::string::npos) << e;
}

// A hand-made TIFF whose header claims a 1,000,000 × 100,000 image.
std::string absurdTiff() {
  std::string t = "II";
  auto u16 = [&](unsigned v) { t += static_cast<char>(v & 0xff); t += static_cast<char>((v >> 8) & 0xff); };
  auto u32 = [&](unsigned v) { u16(v & 0xffff); u16(v >> 16); };
  u16(42);
  u32(8);
  u16(4);
  u16(256); u16(4); u32(1); u32(1000000);
  u16(257); u16(4); u32(1); u32(100000);
  u16(258); u16(3); u32(1); u32(16);
  u16(277); u16(3); u32(1); u32(1);
  u32(0);
  return t;
}

TEST(Decode, AbsurdHeaderDimensions) {
  ScratchDir dir;
  writeText(dir.file("s1.tiff"), absurdTiff());
  writeText(dir.file("s1.json"), kMeta);
  const std::string e = expectError(dir.file("s1.json"));
  EXPECT_NE(e.find("beyond the limit"), std::string::npos) << e;
}

TEST(Decode, NotATiff) {
  ScratchDir dir;
  writeText(dir.file("s1.tiff"), "GIF89a and then some");
  writeText(dir.file("s1.json"), kMeta);
  EXPECT_NE(expectError(dir.file("s1.json")).find("not a TIFF"), std::string::npos);
}

struct MetaCase {
  const char* json;
  const char* message;
};

class MetaErrors : public ::testing::TestWithParam<MetaCase> {};

TEST_P(MetaErrors, NameTheProblem) {
  auto r = parseMeta(GetParam().json, "scan.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().find(GetParam().message), std::string::npos) << r.error();
  EXPECT_EQ(r.error().rfind("scan.json: ", 0), 0u) << r.error();
}

INSTANTIATE_TEST_SUITE_P(
    Decode, MetaErrors,
    ::testing::Values(
        MetaCase{"{", "not valid JSON"},
        MetaCase{R"({"signal": "raw"})", "missing field \"scan_id\""},
        MetaCase{R"({"scan_id": "a", "energies_mev": [6], "pixel_mm": {"along": 5, "vertical": 5}, "conveyance": {"kind": "truck"}})",
                 "missing field \"signal\""},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "pixel_mm": {"along": 5, "vertical": 5}, "conveyance": {"kind": "truck"}})",
                 "missing field \"energies_mev\""},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "energies_mev": [6], "conveyance": {"kind": "truck"}})",
                 "missing field \"pixel_mm\""},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "energies_mev": [6], "pixel_mm": {"along": 5, "vertical": 5}})",
                 "missing field \"conveyance\""},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "energies_mev": [6], "pixel_mm": {"along": 5, "vertical": 5}, "conveyance": {}})",
                 "conveyance.kind"},
        MetaCase{R"({"scan_id": "a/b", "signal": "raw"})", "scan_id must match"},
        MetaCase{R"({"scan_id": "a", "signal": "log", "energies_mev": [6]})", "signal must be"},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "energies_mev": [6, 4, 2]})", "[high] or [high, low]"},
        MetaCase{R"({"scan_id": "a", "signal": "raw", "energies_mev": [6], "pixel_mm": {"along": 0, "vertical": 5}, "conveyance": {"kind": "truck"}})",
                 "pixel_mm values"}));

TEST(Decode, MissingJsonFileIsNamed) {
  ScratchDir dir;
  const std::string e = expectError(dir.file("nope.json"));
  EXPECT_NE(e.find("nope.json"), std::string::npos) << e;
}

}  // namespace
}  // namespace lanegate::vision
