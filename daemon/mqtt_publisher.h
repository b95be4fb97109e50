#pragma once
// Publisher over one MqttClient: a persistent MQTT session (clean start off, so that acks
// sent while the lane is offline wait at the broker), the lane's retained status (`online`
// on connect, a delayed will that sets `offline`, both with the session number),
// reconnection with jittered exponential backoff, and an in-flight window capped at the
// broker's Receive Maximum.

#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "daemon/asio.h"
#include "daemon/config.h"
#include "daemon/publisher.h"

namespace lanegate {

/// The daemon's MQTT side.
class MqttPublisher final : public Publisher {
 public:
  /// `onlineStatus` renders the retained status payload published on each connect;
  /// `session` is this start's number (the outbox keeps it), carried by the will.
  MqttPublisher(asio::io_context& io, const Config& config, std::uint64_t session,
                std::function<std::string()> onlineStatus);
  ~MqttPublisher() override;

  /// Starts connecting; returns at once (the daemon runs while the broker is away).
  void start();
  /// Publishes `offline` (retained) and disconnects, waiting at most about a second.
  void stop();

  void publish(MqttMessage msg, PublishDone done) override;
  [[nodiscard]] bool connected() const override { return connected_; }
  void onConnected(std::function<void()> hook) override { hooks_.push_back(std::move(hook)); }
  /// Subscribes on every connection; `handler` runs on the io thread per message.
  void subscribe(std::string filter, std::function<void(const std::string& topic, const std::string& payload)> handler);

  /// Republishes the retained lane status now (e.g. after a device changed).
  void publishStatus();
  /// Number of completed connections so far.
  [[nodiscard]] std::uint64_t connections() const { return connections_; }
  /// The last connection error, or "".
  [[nodiscard]] const std::string& lastError() const { return lastError_; }
  /// How long publishes have been in flight without one completing (zero when none is in
  /// flight, or while disconnected: reconnecting is progress of its own).
  [[nodiscard]] std::chrono::steady_clock::duration stalledFor(
      std::chrono::steady_clock::time_point now) const {
    return connected_ && inflight_ > 0 ? now - lastProgress_
                                       : std::chrono::steady_clock::duration{};
  }
  /// Beyond this, a publish in flight means the publisher is stuck (the watchdog stops):
  /// the keepalive would have noticed a dead connection long before.
  [[nodiscard]] std::chrono::steady_clock::duration publishTimeout() const {
    return std::chrono::seconds(std::max(60, static_cast<int>(4 * config_.broker.keepAliveS)));
  }
  /// The lane status topic.
  [[nodiscard]] const std::string& statusTopic() const { return statusTopic_; }

  /// The offline status payload (also the will).
  static std::string offlinePayload(const Config& config, std::uint64_t session,
                                    const std::string& reason);
  /// How long the broker keeps the lane's session (and the acks for it) while it is away.
  static constexpr std::uint32_t kSessionExpiryS = 7 * 86400;
  /// The will waits this long: a lane that reconnects within it never shows offline.
  static constexpr std::uint32_t kWillDelayS = 5;

 private:
  void handleConnected(int receiveMaximum);
  void handleDown(const std::string& why);
  void scheduleReconnect();
  void checkLiveness(std::uint64_t connection);
  void pump();

  struct Queued {
    MqttMessage msg;
    PublishDone done;
  };

  asio::io_context& io_;
  const Config config_;
  const std::uint64_t session_;
  std::function<std::string()> onlineStatus_;
  std::string statusTopic_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<MqttClient> client_;
  asio::steady_timer reconnectTimer_;
  asio::steady_timer livenessTimer_;  // checks that a connection we count on still exists
  std::mt19937_64 rng_{std::random_device{}()};
  std::vector<std::function<void()>> hooks_;
  std::vector<std::pair<std::string, std::function<void(const std::string&, const std::string&)>>> subscriptions_;
  std::deque<Queued> queue_;
  int window_ = 20, inflight_ = 0;  // publishes in flight: at most window_
  unsigned attempt_ = 0;            // reconnect attempts since the last connection
  bool connected_ = false, connecting_ = false, stopping_ = false;
  std::uint64_t connections_ = 0;
  std::chrono::steady_clock::time_point lastProgress_{};  // a publish began from idle or completed
  std::string lastError_;
};

/// Reads a credentials file (username on the first line, password on the second).
tl::expected<std::pair<std::string, std::string>, std::string> readCredentials(const std::string& path);

}  // namespace lanegate
