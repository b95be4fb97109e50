#include <string>

#include <gtest/gtest.h>

#include "trace/spectrum.h"

namespace lanegate::trace {
namespace {

std::string pointsArray(std::size_t n, int value = 100) {
  std::string s = "[";
  for (std::size_t i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(value);
  return s + "]";
}

std::string doc(const std::string& points, const std::string& rest = R"("period_ns": 12500, "mode": "positive")") {
  return R"({"points": )" + points + ", " + rest + "}";
}

std::string errorOf(const std::string& text) {
  auto r = parseSpectrumJson(text);
  EXPECT_FALSE(r.has_value()) << "parsed unexpectedly: " << text.substr(0, 80);
  return r ? std::string() : r.error();
}

TEST(SpectrumJson, ParsesEveryField) {
  auto s = parseSpectrumJson(
      R"({"points": [0, 1, 65535], "period_ns": 12500, "mode": "negative", "calibrant_k0": 1.86,
          "drift_temp_k": 383.2, "pressure_hpa": 1013.2, "vendor_extra": true})");
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(s->points, (std::vector<std::uint16_t>{0, 1, 65535}));
  EXPECT_DOUBLE_EQ(s->periodNs, 12500.0);
  EXPECT_EQ(s->mode, IonMode::kNegative);
  EXPECT_DOUBLE_EQ(*s->calibrantK0, 1.86);
  EXPECT_DOUBLE_EQ(*s->driftTempK, 383.2);
  EXPECT_DOUBLE_EQ(*s->pressureHpa, 1013.2);
}

TEST(SpectrumJson, OptionalFieldsMayBeAbsentOrNull) {
  auto s = parseSpectrumJson(doc("[1,2,3]", R"("period_ns": 10000, "mode": "positive", "calibrant_k0": null)"));
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_FALSE(s->calibrantK0);
  EXPECT_FALSE(s->driftTempK);
  EXPECT_FALSE(s->pressureHpa);
}

TEST(SpectrumJson, AcceptsIntegralFloatsAsPoints) {
  auto s = parseSpectrumJson(doc("[1.0, 2.0]"));
  ASSERT_TRUE(s.has_value()) << s.error();
  EXPECT_EQ(s->points, (std::vector<std::uint16_t>{1, 2}));
}

TEST(SpectrumJson, RoundTrips) {
  Spectrum s;
  s.points = {5, 6, 7, 65535};
  s.periodNs = 12500;
  s.mode = IonMode::kNegative;
  s.calibrantK0 = 1.7;
  s.driftTempK = 380.5;
  s.pressureHpa = 990.0;
  const std::string text = spectrumToJson(s);
  EXPECT_NE(text.find("\"period_ns\":12500"), std::string::npos) << text;
  auto back = parseSpectrumJson(text);
  ASSERT_TRUE(back.has_value()) << back.error();
  EXPECT_EQ(back->points, s.points);
  EXPECT_EQ(back->periodNs, s.periodNs);
  EXPECT_EQ(back->mode, s.mode);
  EXPECT_EQ(back->calibrantK0, s.calibrantK0);
  EXPECT_EQ(back->driftTempK, s.driftTempK);
  EXPECT_EQ(back->pressureHpa, s.pressureHpa);
}

TEST(SpectrumJson, RejectsBadSyntaxAndShape) {
  EXPECT_EQ(errorOf("{\"points\": [1,2"), "not valid JSON");
  EXPECT_EQ(errorOf("[1, 2, 3]"), "expected a JSON object");
}

TEST(SpectrumJson, PointsErrorsNameTheField) {
  EXPECT_EQ(errorOf(R"({"period_ns": 1, "mode": "positive"})"), "points: missing");
  EXPECT_EQ(errorOf(doc("\"abc\"")), "points: expected an array of integers 0..65535");
  EXPECT_EQ(errorOf(doc("[]")), "points: empty");
  EXPECT_EQ(errorOf(doc("[1, 65536]")),
            "points: expected an array of integers 0..65535 (element 1 is 65536)");
  EXPECT_EQ(errorOf(doc("[-1]")), "points: expected an array of integers 0..65535 (element 0 is -1)");
  EXPECT_EQ(errorOf(doc("[1, 2.5]")),
            "points: expected an array of integers 0..65535 (element 1 is 2.5)");
  EXPECT_EQ(errorOf(doc("[1, \"2\"]")),
            "points: expected an array of integers 0..65535 (element 1 is \"2\")");
}

TEST(SpectrumJson, AtMost4000Points) {
  EXPECT_TRUE(parseSpectrumJson(doc(pointsArray(4000))).has_value());
  EXPECT_EQ(errorOf(doc(pointsArray(4001))), "points: 4001 points, at most 4000");
}

TEST(SpectrumJson, PeriodAndModeErrors) {
  EXPECT_EQ(errorOf(doc("[1]", R"("mode": "positive")")), "period_ns: missing");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 0, "mode": "positive")")),
            "period_ns: expected a positive number of nanoseconds up to 1e6, got 0");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": "12500", "mode": "positive")")),
            "period_ns: expected a positive number of nanoseconds up to 1e6, got \"12500\"");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 12500)")), "mode: missing");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 12500, "mode": "pos")")),
            "mode: expected \"positive\" or \"negative\", got \"pos\"");
}

TEST(SpectrumJson, ConditionErrorsCatchUnitMistakes) {
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 1, "mode": "positive", "drift_temp_k": 110)")),
            "drift_temp_k: 110.0 is outside 200.0..800.0 (drift-tube temperature in kelvin)");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 1, "mode": "positive", "pressure_hpa": "x")")),
            "pressure_hpa: expected a number (ambient pressure in hPa)");
  EXPECT_EQ(errorOf(doc("[1]", R"("period_ns": 1, "mode": "positive", "calibrant_k0": -1)")),
            "calibrant_k0: -1.0 is outside 0.1..5.0 (cm^2/(V s))");
}

}  // namespace
}  // namespace lanegate::trace
