#include "lane/calibration_store.h"

#include <cstdio>
#include <ctime>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "lane/payloads.h"
#include "vision/decode.h"

namespace lanegate::lane {

namespace fs = std::filesystem;

namespace {

// A sortable UTC stamp for versioned file names: 20261127T153012.345Z.
std::string stamp(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d%02d%02dT%02d%02d%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((ms % 1000 + 1000) % 1000));
  return buf;
}

std::optional<std::chrono::system_clock::time_point> parseStamp(const std::string& s) {
  std::tm tm{};
  int msec = 0;
  if (std::sscanf(s.c_str(), "%4d%2d%2dT%2d%2d%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec) != 7)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(::timegm(&tm)) + std::chrono::milliseconds(msec);
}

// What was checked, per energy, as the record file keeps it.
nlohmann::json checksJson(const vision::CalibrationCheck& check) {
  nlohmann::json out = nlohmann::json::array();
  for (const vision::PlaneCheck& p : check.planes) {
    nlohmann::json c{{"channels", p.channels},
                     {"saturated", p.saturated},
                     {"noisy", p.noisy},
                     {"median_sd", p.medianSd}};
    if (p.medianLevel) c["median_level"] = *p.medianLevel;
    if (p.medianSignal) c["median_signal"] = *p.medianSignal;
    if (p.dead) c["dead"] = *p.dead;
    out.push_back(std::move(c));
  }
  return out;
}

double hoursBetween(std::chrono::system_clock::time_point from,
                    std::chrono::system_clock::time_point to) {
  return std::chrono::duration<double, std::ratio<3600>>(to - from).count();
}

}  // namespace

std::string_view calibrationKindName(vision::CalibrationKind kind) {
  return kind == vision::CalibrationKind::kDark ? "dark" : "air";
}

tl::expected<std::optional<vision::CalibrationKind>, std::string> calibrationKindOf(
    std::string_view jsonText, const std::string& name) {
  const auto meta = nlohmann::json::parse(jsonText.begin(), jsonText.end(), nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    return tl::make_unexpected(name + ": not a JSON object");
  const auto it = meta.find("calibration");
  if (it == meta.end()) return std::optional<vision::CalibrationKind>();
  if (*it == "dark") return std::optional(vision::CalibrationKind::kDark);
  if (*it == "air") return std::optional(vision::CalibrationKind::kAir);
  return tl::make_unexpected(name + ": \"calibration\" must be \"dark\" or \"air\"");
}

CalibrationStore::CalibrationStore(std::string dir) : path_(std::move(dir)) {}

void CalibrationStore::open(Dir dir) {
  path_ = dir.path();
  dir_ = std::move(dir);
}

bool CalibrationStore::ensureOpen() {
  if (dir_.isOpen()) return true;
  auto dir = Dir::open(path_, false);
  if (!dir) {
    problem_ = dir.error().message;
    return false;
  }
  dir_ = std::move(*dir);
  return true;
}

std::string CalibrationStore::loadLatest() {
  if (!ensureOpen()) return problem_;
  auto entries = dir_.list();
  if (!entries) return problem_ = entries.error().message;
  // The newest calibration that is a regular file; anything else under such a name (a
  // link, say) is reported and never opened.
  std::string latest, refused;
  for (const DirEntry& e : *entries) {
    if (!e.name.starts_with("calibration-") || !e.name.ends_with(".json")) continue;
    if (!e.regular) {
      refused = printableName(path_ + "/" + e.name) +
                ": not a regular file (a link is never followed); ignored";
      continue;
    }
    if (e.name > latest) latest = e.name;
  }
  if (latest.empty()) {
    if (!refused.empty()) problem_ = refused;
    return refused;
  }
  const std::string path = (fs::path(path_) / latest).string();
  constexpr std::uint64_t kMaxCalibrationBytes = 64ull << 20;
  auto text = dir_.read(latest, kMaxCalibrationBytes);
  auto cal =
      text ? vision::parseCalibration(*text, path)
           : tl::expected<vision::Calibration, std::string>(tl::unexpect, text.error().message);
  const auto when = parseStamp(latest.substr(12));
  if (!cal || !when) {
    problem_ = cal ? path + ": no time in its name" : cal.error();
    return problem_;
  }
  calibration_ = std::make_shared<vision::Calibration>(std::move(*cal));
  calibratedAt_ = *when;
  file_ = path;
  problem_ = refused;
  return refused;
}

CalibrationStored CalibrationStore::record(const CalibrationFrames& frames,
                                           std::chrono::system_clock::time_point now) {
  CalibrationStored out;
  out.version = stamp(now);
  const std::string kind(calibrationKindName(frames.kind));
  out.usable = frames.check.problem.empty();
  if (!ensureOpen()) {
    out.usable = false;
    out.error = problem_;
    return out;
  }
  const nlohmann::json record{{"kind", kind},
                              {"scan_id", frames.scanId},
                              {"time", rfc3339(now)},
                              {"valid", out.usable},
                              {"problem", frames.check.problem},
                              {"checks", checksJson(frames.check)}};
  if (auto w = dir_.replace(kind + "-" + out.version + ".json", record.dump(1) + "\n"); !w)
    out.error = "cannot keep the check record: " + w.error().message;
  if (!out.usable) {
    out.error = problem_ =
        kind + " calibration " + frames.scanId + " rejected: " + frames.check.problem;
    return out;
  }
  (frames.kind == vision::CalibrationKind::kDark ? dark_ : air_) =
      std::make_shared<CalibrationFrames>(frames);
  if (!dark_ || !air_) return out;
  const auto& dark = dark_->check.means;
  const auto& air = air_->check.means;
  if (dark.size() != air.size()) {
    out.error = problem_ =
        "dark and air calibrations have different numbers of energies; take both again";
    return out;
  }
  auto cal = std::make_shared<vision::Calibration>();
  for (std::size_t e = 0; e < dark.size(); ++e) {
    if (dark[e].size() != air[e].size()) {
      out.error = problem_ =
          "dark and air calibrations have different numbers of channels; take both again";
      return out;
    }
    cal->energies.push_back({dark[e], air[e]});
  }
  const std::string name = "calibration-" + out.version + ".json";
  if (auto w = dir_.replace(name, vision::calibrationToJson(*cal)); !w) {
    // Not durable, so not used: a restart would not find it.
    out.error = problem_ = "cannot store the new calibration: " + w.error().message;
    return out;
  }
  const fs::path file = fs::path(path_) / name;
  calibration_ = std::move(cal);
  calibratedAt_ = now;
  file_ = out.made = file.string();
  problem_.clear();
  return out;
}

bool CalibrationStore::due(std::chrono::system_clock::time_point now, double maxAgeHours,
                           std::string& why) const {
  if (!calibration_) {
    if (!sawRaw_) return false;
    why =
        "no valid dark/air calibration: raw scans cannot be analysed (lanegatectl calibrate xray "
        "dark, then air)";
    return true;
  }
  const double ageH = hoursBetween(calibratedAt_, now);
  if (ageH <= maxAgeHours) return false;
  why = "calibration is " + std::to_string(static_cast<int>(ageH)) + " h old (limit " +
        std::to_string(static_cast<int>(maxAgeHours)) +
        " h): lanegatectl calibrate xray dark, then air";
  return true;
}

CalibrationStatus CalibrationStore::status(std::chrono::system_clock::time_point now) const {
  CalibrationStatus s{file_, problem_, std::nullopt};
  if (calibration_) s.ageH = hoursBetween(calibratedAt_, now);
  return s;
}

}  // namespace lanegate::lane
