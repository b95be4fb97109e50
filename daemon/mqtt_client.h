#pragma once
// A thin wrapper over one Paho MQTT C++ async client (MQTT 5). This header keeps Paho
// out of the rest of the code: only mqtt_client.cpp includes <mqtt/async_client.h>.
// Every handler runs on a Paho thread; callers post to their own loop.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace lanegate {

/// An MQTT message to publish.
struct MqttMessage {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = false;
  std::string contentType;             ///< MQTT 5 content type, when set
  std::optional<std::uint32_t> expiryS;  ///< MQTT 5 message expiry, when set
};

/// How to connect.
struct MqttOptions {
  std::string uri;
  std::string clientId;
  std::string username;
  std::string password;
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  int keepAliveS = 30;
  int connectTimeoutS = 10;
  bool cleanStart = true;
  std::uint32_t sessionExpiryS = 0;  ///< with cleanStart false: how long the broker keeps the session
  std::optional<MqttMessage> will;   ///< sent with its content type (MQTT 5 will properties)
  std::uint32_t willDelayS = 0;      ///< MQTT 5 will delay: a reconnection within it sends no will
};

/// Callbacks from the client, run on Paho's threads.
struct MqttHandlers {
  /// Connected; `receiveMaximum` is the broker's in-flight limit for our QoS 1 publishes.
  std::function<void(int receiveMaximum, bool sessionPresent)> connected;
  /// A connect attempt failed.
  std::function<void(const std::string& why)> connectFailed;
  /// An established connection dropped.
  std::function<void(const std::string& why)> connectionLost;
  /// A message arrived on a subscription.
  std::function<void(const std::string& topic, const std::string& payload)> message;
};

/// Completion of one publish: empty error on PUBACK (or on send for QoS 0).
using PublishDone = std::function<void(const std::string& error)>;

/// One MQTT client for the life of the process (Paho must not be destroyed and
/// re-created: paho.mqtt.c #1669). Thread-safe as Paho is.
class MqttClient {
 public:
  /// Creates the client; throws std::runtime_error on bad options (start-up only).
  MqttClient(MqttOptions options, MqttHandlers handlers);
  ~MqttClient();
  MqttClient(const MqttClient&) = delete;
  MqttClient& operator=(const MqttClient&) = delete;

  /// Starts one connect attempt; the outcome arrives as connected or connectFailed.
  void connect();
  /// Publishes; `done` runs once, with an error if the publish could not complete.
  void publish(const MqttMessage& msg, PublishDone done);
  /// Subscribes; `done` gets "" on SUBACK, else why not. Messages arrive via the handler.
  /// `skipRetained`: the broker sends no retained messages at subscribe time (MQTT 5
  /// retain handling 2), only what is published (or queued) afterwards.
  void subscribe(const std::string& filter, int qos, PublishDone done, bool skipRetained = false);
  /// Disconnects cleanly, waiting at most `timeoutMs`.
  void disconnect(int timeoutMs);
  /// Fails every publish still waiting for its PUBACK (after a connection loss).
  void failPending(const std::string& why);
  /// True while connected.
  [[nodiscard]] bool isConnected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lanegate
