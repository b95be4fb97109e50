#pragma once
// The Prometheus text exposition format (version 0.0.4), written by hand: the daemon's
// few families need no registry, and Debian's prometheus-cpp-dev would bring civetweb and
// libcurl's headers to the build for a page of code. Names and help texts are the
// daemon's own; label values may hold any bytes and are escaped here.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lanegate {

/// Label name and value pairs of one sample.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

/// A histogram with fixed upper bounds (cumulative on output, as Prometheus wants).
class Histogram {
 public:
  /// `bounds`: ascending upper bounds; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  /// Counts one observation.
  void observe(double value);
  /// The bounds, counts per bucket (not cumulative), sum and count.
  [[nodiscard]] const std::vector<double>& bounds() const { return bounds_; }
  [[nodiscard]] const std::vector<std::uint64_t>& buckets() const { return buckets_; }
  [[nodiscard]] double sum() const { return sum_; }
  [[nodiscard]] std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> buckets_;  // one per bound, then +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

/// Buckets for durations from a millisecond to a minute, in seconds.
std::vector<double> durationBuckets();

/// Builds one exposition page, family by family.
class MetricsPage {
 public:
  /// Starts a family: its HELP and TYPE lines; `type` is counter, gauge or histogram.
  void family(const std::string& name, const char* type, const std::string& help);
  /// One sample of the current family (for a histogram family use histogram()).
  void sample(const std::string& name, const MetricLabels& labels, double value);
  /// The _bucket, _sum and _count samples of a histogram family called `name`.
  void histogram(const std::string& name, const MetricLabels& labels, const Histogram& h);
  /// The page so far.
  [[nodiscard]] const std::string& text() const { return text_; }

 private:
  std::string text_;
};

/// A label value escaped for the text format (backslash, double quote, newline); bytes
/// that are not valid UTF-8 become U+FFFD, so a strange device name cannot break a page.
std::string escapeLabelValue(const std::string& value);

}  // namespace lanegate
