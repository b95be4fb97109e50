#include "daemon/watch.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>

#include "daemon/config.h"
#include "daemon/mqtt_client.h"
#include "lane/sha256.h"

namespace lanegate {

namespace {

constexpr int kOk = 0, kBadInput = 1;

// Prints one alert the way a control-room operator reads it.
void printAlert(const std::string& payload, bool json) {
  if (json) {
    std::cout << payload << std::endl;
    return;
  }
  try {
    const auto e = nlohmann::json::parse(payload);
    std::cout << e.value("time", "?") << "  " << e.value("type", "?") << "  seq "
              << e.value("seq", 0) << "  id " << e.value("id", "?") << "  "
              << e.value("source", "?");
    const auto& d =
        e.contains("data") && e["data"].is_object() ? e["data"] : nlohmann::json::object();
    if (d.contains("message") && d["message"].is_string())
      std::cout << "  \"" << d["message"].get<std::string>() << "\"";
    if (d.contains("substances") && d["substances"].is_array()) {
      std::string names;
      for (const auto& n : d["substances"])
        names += (names.empty() ? "" : ", ") + (n.is_string() ? n.get<std::string>() : n.dump());
      std::cout << "  TRACE " << (names.empty() ? "unnamed" : names) << " (device "
                << (d.value("/device_verdict/alarm"_json_pointer, false) ? "alarmed" : "silent")
                << ", ours " << d.value("/our_verdict/verdict"_json_pointer, std::string("?"))
                << ", " << (d.value("agree", false) ? "agree" : "DISAGREE") << ")";
    }
    if (d.contains("findings") && d["findings"].is_array())
      std::cout << "  XRAY " << d.value("verdict", "?") << ", " << d["findings"].size()
                << " finding(s)";
    // The conveyance an X-ray hit saw, or the one in the lane when a trace hit was taken.
    if (d.contains("conveyance") && d["conveyance"].is_object()) {
      const auto& c = d["conveyance"];
      std::cout << " on " << c.value("kind", "?");
      if (c.contains("ids") && c["ids"].is_array())
        for (const auto& id : c["ids"])
          std::cout << " " << (id.is_string() ? id.get<std::string>() : id.dump());
      if (c.contains("id_checks") && c["id_checks"].is_array())
        for (const auto& k : c["id_checks"])
          if (!k.value("valid", true)) std::cout << " (INVALID " << k.value("id", "?") << ")";
    }
    if (d.value("priority", "normal") == "high") std::cout << "  PRIORITY HIGH";
    if (d.contains("findings") && d["findings"].is_array()) {
      for (const auto& f : d["findings"])
        if (f.is_object())
          std::cout << "\n    " << f.value("kind", "?") << " score " << f.value("score", 0.0)
                    << ": " << f.value("reason", "");
    }
    std::cout << std::endl;
  } catch (const nlohmann::json::exception&) {
    std::cout << "(alert that is not JSON, " << payload.size() << " bytes)" << std::endl;
  }
}

// Saves an alert's overlay (received earlier on its image topic) as DIR/<id>.jpg after
// checking it against the SHA-256 the alert carries; says what it did on stderr.
void saveImage(const std::string& dir, const std::string& payload,
               std::map<std::string, std::string>& images) {
  nlohmann::json e;
  try {
    e = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception&) {
    return;
  }
  if (!e.contains("data") || !e["data"].is_object() || !e["data"].contains("image")) return;
  const std::string id = e.value("id", "");
  const auto& ref = e["data"]["image"];
  const auto found = images.find(id);
  if (found == images.end()) {
    std::cerr << "lanegatectl: alert " << id << ": its image has not arrived on "
              << ref.value("topic", "?") << std::endl;
    return;
  }
  const std::string digest = lane::sha256Hex(found->second);
  if (digest != ref.value("sha256", "")) {
    std::cerr << "lanegatectl: alert " << id << ": IMAGE MISMATCH: SHA-256 " << digest
              << ", the alert says " << ref.value("sha256", "?") << "; not saved" << std::endl;
    images.erase(found);
    return;
  }
  std::string name = id;
  for (char& c : name)
    if (c == '/') c = '_';
  const std::string path = dir + "/" + name + ".jpg";
  // Written under a temporary name and renamed: whoever watches the directory sees whole images.
  const std::string part = dir + "/." + name + ".jpg.part";
  bool ok = false;
  {
    std::ofstream out(part, std::ios::binary);
    out.write(found->second.data(), static_cast<std::streamsize>(found->second.size()));
    ok = static_cast<bool>(out.flush());
  }
  std::error_code ec;
  if (ok) std::filesystem::rename(part, path, ec);
  if (ok && !ec)
    std::cerr << "lanegatectl: saved " << path << " (" << found->second.size()
              << " bytes, SHA-256 verified)" << std::endl;
  else
    std::cerr << "lanegatectl: cannot write " << path
              << (ec ? " (" + ec.message() + ")" : std::string()) << std::endl;
  images.erase(found);
}

}  // namespace

int watchAlerts(const WatchOptions& options) {
  const std::string& uri = options.uri;
  const std::string& site = options.site;
  const std::string& lane = options.lane;
  const std::string& imageDir = options.imageDir;
  const bool json = options.json, ack = options.ack;
  const long long maxCount = options.count;
  std::string clientId = options.clientId;
  if (!imageDir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(imageDir, ec);
    if (ec) {
      std::cerr << "lanegatectl: --save-images " << imageDir << ": " << ec.message() << "\n";
      return kBadInput;
    }
  }
  if (auto u = parseBrokerUri(uri); !u) {
    std::cerr << "lanegatectl: bad broker uri '" << uri << "': " << u.error() << "\n";
    return kBadInput;
  }
  if (clientId.empty()) {
    char host[256] = "host";
    ::gethostname(host, sizeof host - 1);
    clientId = "lanegatectl-watch-" + site + "-" + lane + "-" + host;
  }
  const std::string prefix = "lanegate/v1/" + site + "/" + lane + "/";

  // Signals are taken synchronously by this thread; block them before Paho starts its own.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::atomic<bool> up{false}, down{true};
  std::atomic<long long> received{0};
  std::mutex outMutex;
  std::map<std::string, std::string> images;  // alert id → JPEG, until its alert arrives
  std::unique_ptr<MqttClient> client;
  MqttOptions o;
  o.uri = uri;
  o.clientId = clientId;
  o.cleanStart = false;          // a persistent session: alerts published while we are away
  o.sessionExpiryS = 7 * 86400;  // wait for us at the broker for a week
  MqttHandlers h;
  h.connected = [&](int, bool sessionPresent) {
    if (up) return;  // Paho C++ 1.2.0 may report one connect twice
    up = true;
    down = false;
    client->subscribe(prefix + "alerts", 1, [&, sessionPresent](const std::string& err) {
      if (!err.empty()) {
        std::cerr << "lanegatectl: subscribe to " << prefix << "alerts failed: " << err
                  << std::endl;
        return;
      }
      std::cerr << "lanegatectl: watching " << prefix << "alerts on " << uri
                << (sessionPresent ? " (resumed session)" : "") << std::endl;
    });
    // Images are retained until their alert closes: only those of alerts still to come
    // (or queued for this session) are wanted, not every open alert's at each connect.
    if (!imageDir.empty())
      client->subscribe(
          prefix + "alerts/+/image", 1,
          [&](const std::string& err) {
            if (!err.empty())
              std::cerr << "lanegatectl: subscribe to images failed: " << err << std::endl;
          },
          true);
  };
  h.connectFailed = [&](const std::string& why) {
    std::cerr << "lanegatectl: " << why << "; retrying" << std::endl;
    up = false;
    down = true;
  };
  h.connectionLost = h.connectFailed;
  h.message = [&](const std::string& topic, const std::string& payload) {
    const std::string imagePrefix = prefix + "alerts/";
    if (!imageDir.empty() && topic.starts_with(imagePrefix) && topic.ends_with("/image")) {
      std::lock_guard lock(outMutex);
      if (images.size() > 256) images.erase(images.begin());  // images whose alert never came
      images[topic.substr(imagePrefix.size(), topic.size() - imagePrefix.size() - 6)] = payload;
      return;
    }
    if (topic != prefix + "alerts") return;
    {
      std::lock_guard lock(outMutex);
      printAlert(payload, json);
      if (!imageDir.empty()) saveImage(imageDir, payload, images);
    }
    if (ack) {
      // Contract 5 v1.1: the alert's exact id and the ack_token it carried.
      const auto e = nlohmann::json::parse(payload, nullptr, false);
      const auto token = e.is_object() ? e.value("/data/ack_token"_json_pointer, nlohmann::json())
                                       : nlohmann::json();
      if (e.is_object() && e.contains("id") && e["id"].is_string() && token.is_string()) {
        const nlohmann::json a{{"id", e["id"]}, {"ack_token", token}, {"by", clientId}};
        client->publish(
            {prefix + "acks", a.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 1,
             false, "application/json", std::nullopt},
            nullptr);
      } else {
        // An alert without an id or token cannot be acknowledged; it was printed all the same.
        std::cerr << "lanegatectl: an alert without an id and ack_token: not acknowledged"
                  << std::endl;
      }
    }
    ++received;
  };
  try {
    client = std::make_unique<MqttClient>(o, h);
  } catch (const std::exception& e) {
    std::cerr << "lanegatectl: " << e.what() << "\n";
    return kBadInput;
  }
  auto lastAttempt = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto backoff = std::chrono::milliseconds(500);
  const timespec tick{0, 200'000'000};
  while (maxCount == 0 || received < maxCount) {
    if (down && std::chrono::steady_clock::now() - lastAttempt > backoff) {
      if (lastAttempt.time_since_epoch().count() > 0 && backoff < std::chrono::seconds(10))
        backoff *= 2;
      lastAttempt = std::chrono::steady_clock::now();
      down = false;
      client->connect();
    }
    if (up) backoff = std::chrono::milliseconds(500);
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  client->disconnect(1000);
  return kOk;
}

}  // namespace lanegate
