#include "daemon/mqtt_publisher.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "daemon/events.h"
#include "daemon/log.h"

namespace lanegate {
namespace {
// Paho's own buffer is transport only: beyond the broker's window we queue here, and
// the outbox above us is what survives a crash.
constexpr int kDefaultWindow = 20;  // mosquitto's default Receive Maximum
}  // namespace

tl::expected<std::pair<std::string, std::string>, std::string> readCredentials(const std::string& path) {
  std::ifstream in(path);
  if (!in) return tl::unexpected("cannot read credentials file " + path);
  std::pair<std::string, std::string> out;
  std::getline(in, out.first);
  std::getline(in, out.second);
  if (out.first.empty()) return tl::unexpected("credentials file " + path + ": first line (username) is empty");
  return out;
}

std::string MqttPublisher::offlinePayload(const Config& config, std::uint64_t session,
                                          const std::string& reason) {
  nlohmann::json j{{"state", "offline"},
                   {"site", config.site},
                   {"lane", config.lane},
                   {"session", session},
                   {"reason", reason}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

MqttPublisher::MqttPublisher(asio::io_context& io, const Config& config, std::uint64_t session,
                             std::function<std::string()> onlineStatus)
    : io_(io),
      config_(config),
      session_(session),
      onlineStatus_(std::move(onlineStatus)),
      statusTopic_(laneTopic(config, "status")),
      reconnectTimer_(io),
      livenessTimer_(io) {
  MqttOptions o;
  o.uri = config.broker.uri;
  // Paho spells the TLS schemes ssl:// and tcp://.
  if (o.uri.rfind("mqtts://", 0) == 0) o.uri = "ssl://" + o.uri.substr(8);
  if (o.uri.rfind("mqtt://", 0) == 0) o.uri = "tcp://" + o.uri.substr(7);
  o.clientId = config.broker.clientId;
  o.keepAliveS = config.broker.keepAliveS;
  o.caFile = config.broker.caFile;
  o.certFile = config.broker.certFile;
  o.keyFile = config.broker.keyFile;
  if (!config.broker.credentialsFile.empty()) {
    auto cred = readCredentials(config.broker.credentialsFile);
    if (!cred) throw std::runtime_error(cred.error());
    o.username = cred->first;
    o.password = cred->second;
  }
  // A persistent session (Contract 5): what the control room sends while the lane is
  // away (acks) waits at the broker for the lane's return.
  o.cleanStart = false;
  o.sessionExpiryS = kSessionExpiryS;
  o.will = MqttMessage{
      statusTopic_, offlinePayload(config, session, "connection lost"), 1, true, "application/json",
      std::nullopt};
  o.willDelayS = kWillDelayS;

  // Paho threads only post; all state lives on the io thread. `alive` guards against
  // a callback that arrives after this object is gone.
  std::weak_ptr<bool> alive = alive_;
  MqttHandlers h;
  h.connected = [this, alive](int receiveMax, bool) {
    asio::post(io_, [this, alive, receiveMax] {
      if (alive.lock()) handleConnected(receiveMax);
    });
  };
  h.connectFailed = [this, alive](const std::string& why) {
    asio::post(io_, [this, alive, why] {
      if (alive.lock()) handleDown(why);
    });
  };
  h.connectionLost = h.connectFailed;
  h.message = [this, alive](const std::string& topic, const std::string& payload) {
    asio::post(io_, [this, alive, topic, payload] {
      if (!alive.lock()) return;
      for (auto& [filter, handler] : subscriptions_)
        if (filter == topic) handler(topic, payload);
    });
  };
  client_ = std::make_unique<MqttClient>(std::move(o), std::move(h));
}

MqttPublisher::~MqttPublisher() { *alive_ = false; }

void MqttPublisher::start() {
  if (connecting_ || connected_) return;
  connecting_ = true;
  log::get("mqtt")->info("connecting to {} as {}", config_.broker.uri, config_.broker.clientId);
  client_->connect();
}

void MqttPublisher::handleConnected(int receiveMaximum) {
  connecting_ = false;
  // Paho C++ 1.2.0 may report one connect twice; act on it once.
  if (stopping_ || connected_) return;
  connected_ = true;
  attempt_ = 0;
  ++connections_;
  lastError_.clear();
  window_ = std::clamp(receiveMaximum, 1, 1000);
  if (receiveMaximum >= 65535) window_ = kDefaultWindow;
  log::get("mqtt")->info("connected to {} (in-flight window {})", config_.broker.uri, window_);
  publishStatus();
  for (auto& [filter, handler] : subscriptions_)
    client_->subscribe(filter, 1, [filter = filter](const std::string& err) {
      if (!err.empty()) log::get("mqtt")->error("subscribe to {} failed: {}", filter, err);
    });
  for (auto& hook : hooks_) hook();
  pump();
  checkLiveness(connections_);
}

// Paho C 1.3.12 can lose a connection without calling connection_lost: when the broker
// goes away right after its CONNACK (a broker restarted twice in quick succession), the
// connect succeeded, the first SUBSCRIBE failed with "Disconnected", and nothing else ever
// came; the daemon counted itself connected, with no socket, and delivered nothing until
// restarted (found by tests/reliability/faults). Paho's own state is checked every second.
void MqttPublisher::checkLiveness(std::uint64_t connection) {
  livenessTimer_.expires_after(std::chrono::seconds(1));
  livenessTimer_.async_wait(
      [this, connection, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
        if (ec || !alive.lock() || stopping_ || !connected_ || connection != connections_) return;
        if (!client_->isConnected()) {
          handleDown("connection lost (not reported by the MQTT library)");
          return;
        }
        checkLiveness(connection);
      });
}

void MqttPublisher::handleDown(const std::string& why) {
  const bool wasConnected = connected_;
  connected_ = false;
  connecting_ = false;
  lastError_ = why;
  inflight_ = 0;
  // Whatever was in flight may or may not have arrived; its owner resends (same id).
  client_->failPending("connection lost before PUBACK: " + why);
  while (!queue_.empty()) {
    auto q = std::move(queue_.front());
    queue_.pop_front();
    if (q.done) q.done("broker not connected");
  }
  if (stopping_) return;
  if (wasConnected)
    log::get("mqtt")->warn("lost connection to {}: {}", config_.broker.uri, why);
  else if (attempt_ == 0 || attempt_ % 10 == 0)
    log::get("mqtt")->warn("{} (attempt {})", why, attempt_ + 1);
  scheduleReconnect();
}

void MqttPublisher::scheduleReconnect() {
  // Exponential backoff with full jitter, so that a site's lanes do not reconnect in
  // step after the broker comes back.
  const double cap = std::min(config_.broker.reconnectMaxS,
                              config_.broker.reconnectMinS * std::pow(2.0, std::min(attempt_, 20u)));
  std::uniform_real_distribution<double> d(config_.broker.reconnectMinS, std::max(cap, config_.broker.reconnectMinS));
  const auto delay = std::chrono::duration<double>(d(rng_));
  ++attempt_;
  reconnectTimer_.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay));
  reconnectTimer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](const boost::system::error_code& ec) {
    if (ec || !alive.lock() || stopping_) return;
    start();
  });
}

void MqttPublisher::subscribe(std::string filter,
                              std::function<void(const std::string&, const std::string&)> handler) {
  // Exact topics only (the daemon's own acks topic): no wildcard matching needed.
  subscriptions_.emplace_back(std::move(filter), std::move(handler));
}

void MqttPublisher::publish(MqttMessage msg, PublishDone done) {
  if (!connected_ || stopping_) {
    asio::post(io_, [done = std::move(done)] {
      if (done) done("broker not connected");
    });
    return;
  }
  queue_.push_back({std::move(msg), std::move(done)});
  pump();
}

void MqttPublisher::pump() {
  while (connected_ && inflight_ < window_ && !queue_.empty()) {
    auto q = std::move(queue_.front());
    queue_.pop_front();
    if (inflight_++ == 0) lastProgress_ = std::chrono::steady_clock::now();
    std::weak_ptr<bool> alive = alive_;
    client_->publish(q.msg, [this, alive, done = std::move(q.done)](const std::string& err) {
      asio::post(io_, [this, alive, done, err] {
        if (!alive.lock()) return;
        if (inflight_ > 0) --inflight_;
        lastProgress_ = std::chrono::steady_clock::now();
        if (done) done(err);
        pump();
      });
    });
  }
}

void MqttPublisher::publishStatus() {
  if (!connected_) return;
  MqttMessage m{statusTopic_, onlineStatus_(), 1, true, "application/json", std::nullopt};
  publish(std::move(m), [](const std::string& err) {
    if (!err.empty()) log::get("mqtt")->warn("status publish failed: {}", err);
  });
}

void MqttPublisher::stop() {
  if (stopping_) return;
  reconnectTimer_.cancel();
  livenessTimer_.cancel();
  if (connected_) {
    // A clean disconnect does not fire the will, so say offline ourselves.
    client_->publish({statusTopic_, offlinePayload(config_, session_, "stopped"), 1, true,
                      "application/json", std::nullopt},
                     nullptr);
    client_->disconnect(500);
  }
  stopping_ = true;
  connected_ = false;
}

}  // namespace lanegate
