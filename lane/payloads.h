#pragma once
// Payloads (Contract 5): typed results to CloudEvent data, serialised once, here. The
// envelope is put around data text already serialised (the data is not parsed again), so
// a spectrum or a finding becomes JSON text exactly once between its device and the outbox.
// Schemas: config/schemas/{trace-hit-data,xray-hit-data,scan-telemetry,test-alert-data,alert}.
// Envelope: Contract 5 v1.1 (time of the scan or sample, subject, dataschema, seq).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "lane/trace_pipeline.h"
#include "lane/xray_pipeline.h"

namespace lanegate::lane {

/// Which lane: part of every topic, event source and alert id.
struct LaneIdentity {
  std::string site;
  std::string lane;
};

/// JSON text of `j`, with invalid UTF-8 (from a file name, a device, a socket) replaced by
/// U+FFFD instead of thrown: every JSON that can carry outside data is serialised by this.
std::string dumpJson(const nlohmann::json& j, int indent = -1);

/// lanegate/v1/{site}/{lane}/{suffix}
std::string laneTopic(const LaneIdentity& identity, const std::string& suffix);
/// RFC 3339 UTC time with milliseconds.
std::string rfc3339(std::chrono::system_clock::time_point t);

/// The alert id of a scan with findings: "xray:{site}:{lane}:{device}:{scan_id}" (no '/',
/// so that it can be part of the image topic); a re-analysis yields the same id.
std::string xrayAlertId(const LaneIdentity& identity, const std::string& device,
                        const std::string& scanId);
/// The telemetry id of a clear scan: "xray-scan:{site}:{lane}:{device}:{scan_id}".
std::string xrayScanId(const LaneIdentity& identity, const std::string& device,
                       const std::string& scanId);

/// org.lanegate.trace.hit data (trace-hit-data.schema.json).
std::string traceHitData(const TraceResult& result);
/// org.lanegate.xray.hit data (xray-hit-data.schema.json) of a scan with findings; its
/// image is published on `imageTopic` before the alert.
std::string xrayHitData(const XrayScan& scan, const std::string& imageTopic);
/// org.lanegate.xray.scan data (scan-telemetry.schema.json) of a clear scan.
std::string scanTelemetryData(const XrayScan& scan);
/// org.lanegate.test data: a technician's test alert.
std::string testAlertData(const LaneIdentity& identity);

/// Parses RFC 3339 date-time text ("2026-11-27T12:00:00.123Z", any offset); nullopt
/// when it is not one.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);

/// The conveyance's id for an event's `subject`: its first container number, else its
/// plate, else its air waybill; "" when it names none.
std::string subjectOf(const ConveyanceRecord& conveyance);

/// The `dataschema` URI of a schema in config/schemas/ ("xray-hit-data" →
/// https://lanegate.org/schemas/v1/xray-hit-data.schema.json).
std::string dataSchemaUri(const std::string& schema);

/// What an event says besides its data (Contract 5 v1.1).
struct EventHead {
  std::string type;       ///< org.lanegate.xray.hit, ...
  std::string id;         ///< the CloudEvents id
  std::uint64_t seq = 0;  ///< extension `seq` (alerts: per lane, contiguous over alerts)
  std::string device;     ///< source = lanegate://{site}/{lane}/{device}
  std::chrono::system_clock::time_point time;  ///< when the scan or sample was taken
  std::string subject;     ///< the conveyance id; "" = none (no `subject` attribute)
  std::string dataschema;  ///< URI of the data's schema
  std::string ackToken;    ///< alerts: put into data as `ack_token`; "" = none
};

/// A structured-mode CloudEvent around `dataJson` (already JSON text, an object).
std::string cloudEvent(const LaneIdentity& identity, const EventHead& head,
                       const std::string& dataJson);

}  // namespace lanegate::lane
