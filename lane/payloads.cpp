#include "lane/payloads.h"

#include <cmath>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace lanegate::lane {

namespace {

using Json = nlohmann::json;

// Text from devices and bundles may hold invalid UTF-8: replaced, never a throw.

// As vision::toJson rounds them: to 1/`per` of a unit.
double roundTo(double v, double per) { return std::round(v * per) / per; }

// Contract 2, one finding: what the control room reads under the overlay's box.
Json findingJson(const vision::Finding& f) {
  Json box = Json::array();
  for (double v : f.boxMm) box.push_back(std::round(v));
  Json j{{"kind", f.kind},           {"box_px", f.boxPx},
         {"box_mm", std::move(box)}, {"score", roundTo(f.score, 1000.0)},
         {"reason", f.reason},       {"material", std::string(vision::materialName(f.material))}};
  if (f.massKgEst) j["mass_kg_est"] = roundTo(*f.massKgEst, 10.0);
  return j;
}

// The bundle's conveyance (Contract 1's fields, those it set) and its identifier checks.
Json conveyanceJson(const ConveyanceRecord& r) {
  const vision::Conveyance& c = r.conveyance;
  Json j{{"kind", c.kind}};
  for (const auto& [key, value] : {std::pair{"plate", &c.plate}, std::pair{"awb", &c.awb}})
    if (!value->empty()) j[key] = *value;
  if (!c.ids.empty()) j["ids"] = c.ids;
  Json declared = Json::object();
  if (c.declared.empty) declared["empty"] = *c.declared.empty;
  if (c.declared.grossKg) declared["gross_kg"] = *c.declared.grossKg;
  if (!c.declared.description.empty()) declared["description"] = c.declared.description;
  if (!c.declared.hsCodes.empty()) declared["hs_codes"] = c.declared.hsCodes;
  if (!declared.empty()) j["declared"] = std::move(declared);
  Json checks = Json::array();
  for (const IdCheck& k : r.idChecks)
    checks.push_back({{"id", k.id}, {"valid", k.valid}, {"scheme", k.scheme}});
  if (!checks.empty()) j["id_checks"] = std::move(checks);
  return j;
}

// Contract 6 SPECTRUM.json of the plasmagram, so that the centre can analyse it again.
Json spectrumJson(const trace::Spectrum& s) {
  Json j{{"points", s.points}, {"mode", std::string(trace::ionModeName(s.mode))}};
  // Whole nanoseconds print as integers, as Contract 3's register holds them.
  const bool whole = std::floor(s.periodNs) == s.periodNs && s.periodNs < 1.0e15;
  j["period_ns"] = whole ? Json(static_cast<std::int64_t>(s.periodNs)) : Json(s.periodNs);
  for (const auto& [key, value] :
       {std::pair{"calibrant_k0", &s.calibrantK0}, std::pair{"drift_temp_k", &s.driftTempK},
        std::pair{"pressure_hpa", &s.pressureHpa}})
    if (*value) j[key] = **value;
  return j;
}

Json evidenceJson(const XrayScan& scan) {
  return {{"tiff_sha256", scan.tiffSha256}, {"json_sha256", scan.jsonSha256}};
}

Json timingsJson(const XrayScan& scan) {
  Json j(scan.timingsMs);
  if (scan.timingsMs.count("total")) j["total"] = roundTo(scan.timingsMs.at("total"), 100.0);
  return j;
}

}  // namespace

std::string dumpJson(const Json& j, int indent) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

std::string laneTopic(const LaneIdentity& identity, const std::string& suffix) {
  return "lanegate/v1/" + identity.site + "/" + identity.lane + "/" + suffix;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string xrayAlertId(const LaneIdentity& identity, const std::string& device,
                        const std::string& scanId) {
  return "xray:" + identity.site + ":" + identity.lane + ":" + device + ":" + scanId;
}

std::string xrayScanId(const LaneIdentity& identity, const std::string& device,
                       const std::string& scanId) {
  return "xray-scan:" + identity.site + ":" + identity.lane + ":" + device + ":" + scanId;
}

std::string traceHitData(const TraceResult& r) {
  Json deviceSubstances = Json::array();
  for (const DeviceAlarm& a : r.deviceAlarms)
    deviceSubstances.push_back({{"code", a.code},
                                {"substance", a.substance ? Json(*a.substance) : Json()},
                                {"amplitude", a.amplitude}});
  Json ourSubstances = Json::array();
  for (const trace::SubstanceHit& h : r.ours.substances)
    ourSubstances.push_back({{"name", h.name},
                             {"k0", h.k0},
                             {"library_k0", h.libraryK0},
                             {"amplitude", h.amplitude},
                             {"snr", h.snr},
                             {"drift_ms", h.driftMs},
                             {"overlapped", h.overlapped}});
  Json data{
      {"device", r.device},
      {"sample_seq", r.sampleSeq},
      {"sample_time",
       rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(r.sampleTime)))},
      {"mode", std::string(trace::ionModeName(r.spectrum.mode))},
      {"verdict", r.verdict},
      {"device_verdict", {{"alarm", r.deviceAlarm}, {"substances", std::move(deviceSubstances)}}},
      {"our_verdict",
       {{"verdict", trace::verdictName(r.ours.verdict)}, {"substances", std::move(ourSubstances)}}},
      {"agree", r.agree},
      {"substances", r.substances},
      {"readings_valid", r.readingsValid},
      {"readings",
       {{"drift_temp_k", r.driftTempK},
        {"pressure_hpa", r.pressureHpa},
        {"desorber_temp_c", r.desorberTempC}}},
      {"spectrum", spectrumJson(r.spectrum)},
      {"priority", r.highPriority ? "high" : "normal"}};
  if (r.conveyance) data["conveyance"] = conveyanceJson(*r.conveyance);
  if (!r.correlatedAlerts.empty()) data["correlated_alerts"] = r.correlatedAlerts;
  return dumpJson(data);
}

std::string xrayHitData(const XrayScan& scan, const std::string& imageTopic) {
  Json findings = Json::array();
  for (const vision::Finding& f : scan.findings) findings.push_back(findingJson(f));
  const Json data{{"scan_id", scan.scanId},
                  {"verdict", scan.verdict},
                  {"findings", std::move(findings)},
                  {"conveyance", conveyanceJson(scan.conveyance)},
                  {"image",
                   {{"topic", imageTopic},
                    {"sha256", scan.imageSha256},
                    {"bytes", scan.image.size()},
                    {"content_type", "image/jpeg"}}},
                  {"evidence", evidenceJson(scan)},
                  {"timings_ms", timingsJson(scan)},
                  {"priority", "normal"}};
  return dumpJson(data);
}

std::string scanTelemetryData(const XrayScan& scan) {
  return dumpJson(Json{{"scan_id", scan.scanId},
                     {"verdict", scan.verdict},
                     {"conveyance", conveyanceJson(scan.conveyance)},
                     {"evidence", evidenceJson(scan)},
                     {"timings_ms", timingsJson(scan)}});
}

std::string testAlertData(const LaneIdentity& identity) {
  return dumpJson(Json{{"site", identity.site},
                     {"lane", identity.lane},
                     {"message", "test alert requested by a technician; no action needed"}});
}

std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  auto digits = [&](std::size_t at, std::size_t n, int& out) {
    if (at + n > t.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(5, 2, month) || t[7] != '-' ||
      !digits(8, 2, day) || (t[10] != 'T' && t[10] != 't') || !digits(11, 2, hour) ||
      t[13] != ':' || !digits(14, 2, minute) || t[16] != ':' || !digits(17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  std::size_t at = 19;
  std::int64_t micros = 0;
  if (at < t.size() && t[at] == '.') {
    std::size_t n = 0;
    for (++at; at < t.size() && t[at] >= '0' && t[at] <= '9'; ++at, ++n)
      if (n < 6) micros = micros * 10 + (t[at] - '0');
    if (n == 0) return std::nullopt;
    for (; n < 6; ++n) micros *= 10;
  }
  int offsetMin = 0;
  if (at < t.size() && (t[at] == 'Z' || t[at] == 'z') && at + 1 == t.size()) {
    // UTC
  } else if (at + 6 == t.size() && (t[at] == '+' || t[at] == '-') && t[at + 3] == ':') {
    int oh, om;
    if (!digits(at + 1, 2, oh) || !digits(at + 4, 2, om) || oh > 23 || om > 59) return std::nullopt;
    offsetMin = (t[at] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t secs = timegm(&tm);
  std::tm check{};
  gmtime_r(&secs, &check);
  if (second < 60 && check.tm_mday != day) return std::nullopt;  // 31 February and the like
  return std::chrono::system_clock::time_point(
      std::chrono::seconds(secs - std::time_t{offsetMin} * 60) + std::chrono::microseconds(micros));
}

std::string subjectOf(const ConveyanceRecord& r) {
  const vision::Conveyance& c = r.conveyance;
  if (!c.ids.empty() && !c.ids.front().empty()) return c.ids.front();
  if (!c.plate.empty()) return c.plate;
  return c.awb;
}

std::string dataSchemaUri(const std::string& schema) {
  return "https://lanegate.org/schemas/v1/" + schema + ".schema.json";
}

std::string cloudEvent(const LaneIdentity& identity, const EventHead& h,
                       const std::string& dataJson) {
  Json head{{"specversion", "1.0"},
            {"type", h.type},
            {"id", h.id},
            {"source", "lanegate://" + identity.site + "/" + identity.lane + "/" + h.device},
            {"time", rfc3339(h.time)},
            {"datacontenttype", "application/json"},
            {"dataschema", h.dataschema},
            {"seq", h.seq}};
  if (!h.subject.empty()) head["subject"] = h.subject;
  // The data goes in as it was serialised, the alert's ack_token first (hex: no escaping
  // needed); "data" sorts first, as the envelope's keys do.
  std::string data = dataJson;
  if (!h.ackToken.empty() && data.size() >= 2 && data.front() == '{')
    data = "{\"ack_token\":\"" + h.ackToken + "\"" + (data == "{}" ? "" : ",") + data.substr(1);
  const std::string rest = dumpJson(head);
  return "{\"data\":" + data + "," + rest.substr(1);
}

}  // namespace lanegate::lane
