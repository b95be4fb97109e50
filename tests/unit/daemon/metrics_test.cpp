// The Prometheus text format as daemon/metrics.cpp writes it: cumulative histogram
// buckets, numbers, and label values that hold any bytes.
#include "daemon/metrics.h"

#include <gtest/gtest.h>

namespace lanegate {
namespace {

TEST(Metrics, AHistogramIsWrittenCumulativelyWithSumAndCount) {
  Histogram h({0.01, 0.1, 1});
  for (double v : {0.005, 0.05, 0.05, 0.5, 5.0}) h.observe(v);
  h.observe(0.1);  // on a bound: le is "less than or equal"
  MetricsPage page;
  page.family("x_seconds", "histogram", "How long x took.");
  page.histogram("x_seconds", {{"device", "ims-1"}}, h);
  EXPECT_EQ(page.text(),
            "# HELP x_seconds How long x took.\n"
            "# TYPE x_seconds histogram\n"
            "x_seconds_bucket{device=\"ims-1\",le=\"0.01\"} 1\n"
            "x_seconds_bucket{device=\"ims-1\",le=\"0.1\"} 4\n"
            "x_seconds_bucket{device=\"ims-1\",le=\"1\"} 5\n"
            "x_seconds_bucket{device=\"ims-1\",le=\"+Inf\"} 6\n"
            "x_seconds_sum{device=\"ims-1\"} 5.705\n"
            "x_seconds_count{device=\"ims-1\"} 6\n");
}

TEST(Metrics, NumbersAreTheShortestThatReadBack) {
  MetricsPage page;
  page.sample("a", {}, 0.0025);
  page.sample("b", {}, 1e20);
  page.sample("c", {}, 42);
  EXPECT_EQ(page.text(), "a 0.0025\nb 1e+20\nc 42\n");
}

TEST(Metrics, LabelValuesAreEscapedAndBadUtf8Replaced) {
  EXPECT_EQ(escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(escapeLabelValue("ims-\xff\xfe"), "ims-\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(escapeLabelValue("\xC3\xA9t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");  // été stays
  EXPECT_EQ(escapeLabelValue("\xE2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD");    // cut short
}

}  // namespace
}  // namespace lanegate
