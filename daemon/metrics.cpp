#include "daemon/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace lanegate {
namespace {

// A number as the text format writes it: integers without a fraction, others in full.
std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  // The shortest text that reads back as the same double (0.0025, not 0.0025000000000000001).
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string labelText(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t i = 0; i < labels.size(); ++i)
    out += (i ? "," : "") + labels[i].first + "=\"" + escapeLabelValue(labels[i].second) + "\"";
  return out + "}";
}

// The length of the valid UTF-8 sequence at s[i], or 0.
std::size_t utf8Length(const std::string& s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return 0;
  return n;
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++buckets_[static_cast<std::size_t>(at)];
  sum_ += value;
  ++count_;
}

std::vector<double> durationBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

void MetricsPage::family(const std::string& name, const char* type, const std::string& help) {
  text_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void MetricsPage::sample(const std::string& name, const MetricLabels& labels, double value) {
  text_ += name + labelText(labels) + " " + number(value) + "\n";
}

void MetricsPage::histogram(const std::string& name, const MetricLabels& labels,
                            const Histogram& h) {
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
    cumulative += h.buckets()[i];
    MetricLabels l = labels;
    l.emplace_back("le", i < h.bounds().size() ? number(h.bounds()[i]) : "+Inf");
    sample(name + "_bucket", l, static_cast<double>(cumulative));
  }
  sample(name + "_sum", labels, h.sum());
  sample(name + "_count", labels, static_cast<double>(h.count()));
}

std::string escapeLabelValue(const std::string& value) {
  std::string out;
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t n = utf8Length(value, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const char c = value[i];
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.append(value, i, n);
    i += n;
  }
  return out;
}

}  // namespace lanegate
