#pragma once
// The daemon's side of Contract 5: the lane's identity and topics from its config, event
// ids, and the test alert. Payloads themselves are lane/payloads.h.

#include <chrono>
#include <cstdint>
#include <string>

#include "daemon/alert_sink.h"
#include "daemon/config.h"
#include "lane/payloads.h"

namespace lanegate {

/// The lane's site and lane names.
lane::LaneIdentity identityOf(const Config& config);
/// lanegate/v1/{site}/{lane}/{suffix}
std::string laneTopic(const Config& config, const std::string& suffix);
/// A random UUID (version 4), the CloudEvents id of a new event.
std::string newEventId();
/// The `org.lanegate.test` alert a technician fires with `lanegatectl test-alert`, as
/// requested at `time`, numbered by the outbox (`info`).
std::string makeTestAlert(const lane::LaneIdentity& identity, const RenderInfo& info,
                          std::chrono::system_clock::time_point time);

}  // namespace lanegate
