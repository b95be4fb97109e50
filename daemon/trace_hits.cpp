#include "daemon/trace_hits.h"

#include <algorithm>
#include <chrono>
#include <set>

#include <nlohmann/json.hpp>

#include "daemon/events.h"
#include "trace/analysis.h"
#include "trace/spectrum.h"

namespace lanegate {

tl::expected<TraceOutcome, std::string> evaluateTraceSample(const std::string& sampleJson,
                                                            const trace::SubstanceLibrary& library,
                                                            const std::string& idPrefix) {
  const auto s = nlohmann::json::parse(sampleJson, nullptr, false);
  if (!s.is_object()) return tl::unexpected(std::string("trace sample is not a JSON object"));
  for (const char* key : {"device", "sample_seq", "sample_time", "mode", "points", "period_ns", "alarms"})
    if (!s.contains(key)) return tl::unexpected("trace sample has no '" + std::string(key) + "'");

  // The spectrum part is Contract 6's SPECTRUM.json: parse it with the same code as
  // `lanegatectl ims analyze`, so both see the same limits and errors.
  nlohmann::json spectrumJson{{"points", s["points"]}, {"period_ns", s["period_ns"]}, {"mode", s["mode"]}};
  if (s.contains("drift_temp_k")) spectrumJson["drift_temp_k"] = s["drift_temp_k"];
  if (s.contains("pressure_hpa")) spectrumJson["pressure_hpa"] = s["pressure_hpa"];
  const auto spectrum = trace::parseSpectrumJson(spectrumJson.dump());
  if (!spectrum) return tl::unexpected("trace sample from " + s["device"].dump() + ": " + spectrum.error());
  const trace::Analysis ours = trace::analyze(*spectrum, library);

  nlohmann::json deviceSubstances = nlohmann::json::array();
  std::set<std::string> deviceNames;
  for (const auto& a : s["alarms"]) {
    deviceSubstances.push_back({{"code", a.value("code", 0)},
                                {"substance", a.contains("substance") ? a["substance"] : nlohmann::json()},
                                {"amplitude", a.value("amplitude", 0)}});
    if (a.contains("substance") && a["substance"].is_string()) deviceNames.insert(a["substance"].get<std::string>());
  }
  const bool deviceAlarm = !deviceSubstances.empty() || (s.value("status", 0) & 0x4) != 0;
  const bool ourHit = ours.verdict == trace::Verdict::kHit;

  nlohmann::json ourSubstances = nlohmann::json::array();
  std::set<std::string> ourNames;
  for (const auto& h : ours.substances) {
    ourSubstances.push_back({{"name", h.name}, {"k0", h.k0}, {"library_k0", h.libraryK0}, {"amplitude", h.amplitude},
                             {"snr", h.snr}, {"drift_ms", h.driftMs}, {"overlapped", h.overlapped}});
    ourNames.insert(h.name);
  }
  std::set<std::string> all = ourNames;
  all.insert(deviceNames.begin(), deviceNames.end());

  TraceOutcome out;
  out.alert = deviceAlarm || ourHit;
  out.verdict = out.alert ? "hit" : std::string(trace::verdictName(ours.verdict));
  const auto seconds = s["sample_time"].get<std::int64_t>();
  out.id = "trace:" + idPrefix + "/" + s["device"].get<std::string>() + "/" + std::to_string(seconds) + "/" +
           std::to_string(s["sample_seq"].get<std::int64_t>());
  nlohmann::json readings{{"drift_temp_k", s.value("drift_temp_k", 0.0)}, {"pressure_hpa", s.value("pressure_hpa", 0.0)}};
  if (s.contains("desorber_temp_c")) readings["desorber_temp_c"] = s["desorber_temp_c"];
  const nlohmann::json data{
      {"device", s["device"]},
      {"sample_seq", s["sample_seq"]},
      {"sample_time", rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(seconds)))},
      {"mode", s["mode"]},
      {"verdict", out.verdict},
      {"device_verdict", {{"alarm", deviceAlarm}, {"substances", deviceSubstances}}},
      {"our_verdict", {{"verdict", trace::verdictName(ours.verdict)}, {"substances", ourSubstances}}},
      // Agreement: both alarmed on the same substances, or neither alarmed.
      {"agree", deviceAlarm == ourHit && (!deviceAlarm || deviceNames == ourNames)},
      {"substances", std::vector<std::string>(all.begin(), all.end())},
      {"readings", readings},
      {"spectrum", nlohmann::json::parse(trace::spectrumToJson(*spectrum))},
      {"priority", "normal"}};
  out.dataJson = data.dump();
  return out;
}

}  // namespace lanegate
