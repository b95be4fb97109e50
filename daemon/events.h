#pragma once
// Topics and CloudEvents envelopes (Contract 5).

#include <chrono>
#include <cstdint>
#include <string>

#include "daemon/config.h"

namespace lanegate {

/// lanegate/v1/{site}/{lane}/{suffix}
std::string laneTopic(const Config& config, const std::string& suffix);
/// A random UUID (version 4), the CloudEvents id of a new event.
std::string newEventId();
/// RFC 3339 UTC time with milliseconds.
std::string rfc3339(std::chrono::system_clock::time_point t);
/// A structured-mode CloudEvent JSON text.
std::string makeCloudEvent(const Config& config, const std::string& type, const std::string& id,
                           std::uint64_t seq, const std::string& device,
                           std::chrono::system_clock::time_point time, const std::string& dataJson);
/// The `org.lanegate.test` alert a technician fires with `lanegatectl test-alert`.
std::string makeTestAlert(const Config& config, const std::string& id, std::uint64_t seq,
                          std::chrono::system_clock::time_point time);

}  // namespace lanegate
