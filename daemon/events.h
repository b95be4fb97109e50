#pragma once
// The daemon's side of Contract 5: the lane's identity and topics from its config, event
// ids, and the test alert. Payloads themselves are lane/payloads.h.

#include <chrono>
#include <cstdint>
#include <string>

#include "daemon/config.h"
#include "lane/payloads.h"

namespace lanegate {

/// The lane's site and lane names.
lane::LaneIdentity identityOf(const Config& config);
/// lanegate/v1/{site}/{lane}/{suffix}
std::string laneTopic(const Config& config, const std::string& suffix);
/// A random UUID (version 4), the CloudEvents id of a new event.
std::string newEventId();
/// The `org.lanegate.test` alert a technician fires with `lanegatectl test-alert`.
std::string makeTestAlert(const lane::LaneIdentity& identity, const std::string& id,
                          std::uint64_t seq, std::chrono::system_clock::time_point time);

}  // namespace lanegate
