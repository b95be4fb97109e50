// The daemon's verdict on itself: what keeps it from being fully healthy (for lanegatectl
// status, systemd's STATUS= and /healthz alike) and what is stuck (for the watchdog).
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/daemon.h"
#include "daemon/log.h"

namespace lanegate {

std::vector<std::string> Daemon::problems(const nlohmann::json& status) {
  std::vector<std::string> out;
  for (const auto& [name, h] : health_)
    if (h.state != "ok")
      out.push_back(name + " " + h.state + (h.detail.empty() ? "" : " (" + h.detail + ")"));
  if (publisher_ && !publisher_->connected())
    out.push_back("broker " + config_.broker.uri + " not connected" +
                  (publisher_->lastError().empty() ? "" : " (" + publisher_->lastError() + ")"));
  if (const auto faults = status.find("faults"); faults != status.end() && faults->is_array())
    for (const auto& f : *faults)
      out.push_back(f.value("kind", std::string("fault")) + ": " +
                    f.value("detail", std::string()));
  if (auto s = stuck(); !s.empty()) out.push_back(s);
  return out;
}

std::vector<std::string> Daemon::problems() { return problems(statusObject()); }

std::string Daemon::summaryLine() { return summaryLine(statusObject()); }

std::string Daemon::summaryLine(const nlohmann::json& status) {
  const auto issues = problems(status);
  if (!issues.empty()) {
    std::string line = "NOT HEALTHY: ";
    for (std::size_t i = 0; i < issues.size(); ++i) line += (i ? "; " : "") + issues[i];
    return line;
  }
  const auto pending =
      status.contains("outbox") ? status["outbox"].value("pending", std::int64_t{0}) : 0;
  return "healthy: " + std::to_string(health_.size()) + " device(s) ok, broker connected, " +
         std::to_string(pending) + " alert(s) pending in the outbox";
}

std::string Daemon::stuck() const {
  const auto now = std::chrono::steady_clock::now();
  const auto seconds = [](std::chrono::steady_clock::duration d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
  };
  if (publisher_) {
    if (const auto d = publisher_->stalledFor(now); d > publisher_->publishTimeout())
      return "the MQTT publisher has waited " + seconds(d) + " s for a PUBACK";
  }
  for (const auto& r : runners_)
    if (const auto w = r->wedged(now))
      return w->device + ": a " + w->call + " call has not returned for " + seconds(w->elapsed) +
             " s (over 3x its timeout)";
  return "";
}

}  // namespace lanegate
