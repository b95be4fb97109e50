#pragma once
// The narrow interface between the daemon and MQTT. The outbox and the lane publish
// through it; tests can put a fake behind it; only MqttPublisher knows Paho exists.

#include <functional>
#include <string>

#include "daemon/mqtt_client.h"

namespace lanegate {

/// Publishes messages to the broker; every callback runs on the daemon's io thread.
class Publisher {
 public:
  virtual ~Publisher() = default;
  /// Publishes; `done` gets "" once the broker has it (PUBACK for QoS 1), else why not.
  virtual void publish(MqttMessage msg, PublishDone done) = 0;
  /// True while connected to the broker.
  [[nodiscard]] virtual bool connected() const = 0;
  /// Registers a hook run after every (re)connection, e.g. to resume an outbox.
  virtual void onConnected(std::function<void()> hook) = 0;
};

}  // namespace lanegate
