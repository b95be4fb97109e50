#include "daemon/events.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <random>

#include <nlohmann/json.hpp>

namespace lanegate {

std::string laneTopic(const Config& config, const std::string& suffix) {
  return "lanegate/v1/" + config.site + "/" + config.lane + "/" + suffix;
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

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

std::string makeCloudEvent(const Config& config, const std::string& type, const std::string& id,
                           std::uint64_t seq, const std::string& device,
                           std::chrono::system_clock::time_point time, const std::string& dataJson) {
  nlohmann::json e{
      {"specversion", "1.0"},
      {"type", type},
      {"id", id},
      {"source", "lanegate://" + config.site + "/" + config.lane + "/" + device},
      {"time", rfc3339(time)},
      {"datacontenttype", "application/json"},
      {"seq", seq},
      {"data", nlohmann::json::parse(dataJson)},
  };
  return e.dump();
}

std::string makeTestAlert(const Config& config, const std::string& id, std::uint64_t seq,
                          std::chrono::system_clock::time_point time) {
  nlohmann::json data{{"site", config.site},
                      {"lane", config.lane},
                      {"message", "test alert requested by a technician; no action needed"}};
  return makeCloudEvent(config, "org.lanegate.test", id, seq, "lanegated", time, data.dump());
}

}  // namespace lanegate
