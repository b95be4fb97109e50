#include "daemon/events.h"

#include <array>
#include <cstdio>
#include <random>

namespace lanegate {

lane::LaneIdentity identityOf(const Config& config) { return {config.site, config.lane}; }

std::string laneTopic(const Config& config, const std::string& suffix) {
  return lane::laneTopic(identityOf(config), suffix);
}

std::string newEventId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::array<unsigned char, 16> b{};
  for (std::size_t i = 0; i < b.size(); i += 8) {
    const auto v = rng();
    for (std::size_t k = 0; k < 8; ++k) b[i + k] = static_cast<unsigned char>(v >> (8 * k));
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  std::snprintf(out, sizeof out,
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

std::string makeTestAlert(const lane::LaneIdentity& identity, const RenderInfo& info,
                          std::chrono::system_clock::time_point time) {
  const lane::EventHead head{"org.lanegate.test",
                             info.id,
                             info.seq,
                             "lanegated",
                             time,
                             "",
                             lane::dataSchemaUri("test-alert-data"),
                             info.ackToken};
  return lane::cloudEvent(identity, head, lane::testAlertData(identity));
}

}  // namespace lanegate
