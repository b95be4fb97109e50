#include "daemon/mqtt_client.h"

#include <algorithm>
#include <climits>
#include <map>
#include <mutex>
#include <stdexcept>

#include <mqtt/async_client.h>

namespace lanegate {

struct MqttClient::Impl final : public mqtt::callback {
  // Publish completions are keyed by an id carried as Paho's user context, so that a
  // late or missing callback from Paho can neither double-free nor leak.
  class Listener final : public mqtt::iaction_listener {
   public:
    explicit Listener(Impl& impl) : impl_(impl) {}
    void on_success(const mqtt::token& tok) override {
      impl_.complete(reinterpret_cast<std::uintptr_t>(tok.get_user_context()), "");
    }
    void on_failure(const mqtt::token& tok) override {
      impl_.complete(reinterpret_cast<std::uintptr_t>(tok.get_user_context()),
                     "failed (code " + std::to_string(tok.get_return_code()) + ")");
    }

   private:
    Impl& impl_;
  };

  class ConnectListener final : public mqtt::iaction_listener {
   public:
    explicit ConnectListener(Impl& impl) : impl_(impl) {}
    void on_success(const mqtt::token& tok) override {
      int receiveMax = 65535;
      bool sessionPresent = false;
      try {
        const auto rsp = tok.get_connect_response();
        sessionPresent = rsp.is_session_present();
        const auto& props = rsp.get_properties();
        if (props.contains(mqtt::property::RECEIVE_MAXIMUM))
          receiveMax = mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
      } catch (const std::exception&) {
        // No CONNACK properties: the broker's default applies (65535 under MQTT 5).
      }
      if (impl_.handlers.connected) impl_.handlers.connected(receiveMax, sessionPresent);
    }
    void on_failure(const mqtt::token& tok) override {
      if (!impl_.handlers.connectFailed) return;
      std::string why = "connect to " + impl_.options.uri + " failed (code " +
                        std::to_string(tok.get_return_code()) + ")";
      // Paho C 1.3 reports a refused TLS handshake with no more than a code: say what to
      // check (never the content of a file).
      if (impl_.tls() && tok.get_return_code() == MQTTASYNC_FAILURE)
        why +=
            ": no TLS session (the broker is unreachable, or the handshake failed); check that "
            "the broker's certificate is signed by broker.tls.ca_file and names the uri's "
            "host, and that the broker accepts our client certificate (broker.tls.cert_file, "
            "not expired)";
      impl_.handlers.connectFailed(why);
    }

   private:
    Impl& impl_;
  };

  Impl(MqttOptions o, MqttHandlers h)
      : options(std::move(o)),
        handlers(std::move(h)),
        // MQTT 5 must be chosen when the client is created; no Paho persistence and a
        // small buffer, because our own outbox is the durable queue.
        listener(*this),
        connectListener(*this),
        client(options.uri, options.clientId, mqtt::create_options(MQTTVERSION_5, 100)) {
    client.set_callback(*this);  // once, before connect (paho.mqtt.cpp #519)
    buildConnectOptions();
  }

  bool tls() const {
    return options.uri.rfind("ssl://", 0) == 0 || options.uri.rfind("mqtts://", 0) == 0;
  }

  void connection_lost(const std::string& cause) override {
    if (handlers.connectionLost) handlers.connectionLost(cause.empty() ? "connection lost" : cause);
  }
  void message_arrived(mqtt::const_message_ptr msg) override {
    if (handlers.message) handlers.message(msg->get_topic(), msg->to_string());
  }

  std::uintptr_t add(PublishDone done) {
    std::lock_guard lock(mutex);
    const auto id = ++nextId;
    pending.emplace(id, std::move(done));
    return id;
  }

  void complete(std::uintptr_t id, const std::string& error) {
    PublishDone done;
    {
      std::lock_guard lock(mutex);
      auto it = pending.find(id);
      if (it == pending.end()) return;
      done = std::move(it->second);
      pending.erase(it);
    }
    if (done) done(error);
  }

  // Paho C++ 1.2.0's connect_options copies keep pointers into the source object's
  // properties (fixed upstream in 1.3.0, #445): a copy of a temporary made MQTTAsync_connect
  // read freed memory. So the options are built once, in place, in a member that
  // outlives every connect() (which copies its argument).
  void buildConnectOptions() {
    connOpts.set_mqtt_version(MQTTVERSION_5);
    connOpts.set_clean_start(options.cleanStart);
    connOpts.set_keep_alive_interval(std::chrono::seconds(options.keepAliveS));
    connOpts.set_connect_timeout(std::chrono::seconds(options.connectTimeoutS));
    connOpts.set_automatic_reconnect(false);  // we reconnect ourselves, with jitter
    mqtt::properties props;
    if (options.sessionExpiryS > 0)
      props.add({mqtt::property::SESSION_EXPIRY_INTERVAL,
                 static_cast<int32_t>(std::min<std::uint32_t>(options.sessionExpiryS, INT32_MAX))});
    connOpts.set_properties(std::move(props));
    if (!options.username.empty()) connOpts.set_user_name(options.username);
    if (!options.password.empty()) connOpts.set_password(options.password);
    if (options.will) {
      mqtt::properties willProps;
      if (!options.will->contentType.empty())
        willProps.add({mqtt::property::CONTENT_TYPE, options.will->contentType});
      if (options.willDelayS > 0)
        willProps.add(
            {mqtt::property::WILL_DELAY_INTERVAL,
             static_cast<int32_t>(std::min<std::uint32_t>(options.willDelayS, INT32_MAX))});
      connOpts.set_will(mqtt::will_options(options.will->topic, options.will->payload,
                                           options.will->qos, options.will->retain, willProps));
    }
    if (tls()) {
      // No error or PSK handlers: they dangle in 1.2.0 (#439). A CA file, not a path (#337).
      // The config requires ca_file with ssl://: only that CA is trusted, not the system
      // store. The chain is checked (server cert auth) and so is the host name (verify:
      // Paho checks the uri's host against the certificate's names or IP addresses).
      mqtt::ssl_options ssl;
      if (!options.caFile.empty()) ssl.set_trust_store(options.caFile);
      if (!options.certFile.empty()) ssl.set_key_store(options.certFile);
      if (!options.keyFile.empty()) ssl.set_private_key(options.keyFile);
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);
      connOpts.set_ssl(std::move(ssl));
    }
  }

  MqttOptions options;
  MqttHandlers handlers;
  Listener listener;
  ConnectListener connectListener;
  std::mutex mutex;
  std::uintptr_t nextId = 0;
  std::map<std::uintptr_t, PublishDone> pending;
  mqtt::connect_options connOpts;
  // Last, so it is destroyed first: Paho's threads must stop before the listeners go.
  mqtt::async_client client;
};

MqttClient::MqttClient(MqttOptions options, MqttHandlers handlers) {
  try {
    impl_ = std::make_unique<Impl>(std::move(options), std::move(handlers));
  } catch (const mqtt::exception& e) {
    throw std::runtime_error(std::string("cannot create MQTT client: ") + e.what());
  }
}

MqttClient::~MqttClient() {
  if (!impl_) return;
  try {
    if (impl_->client.is_connected()) impl_->client.disconnect(0)->wait_for(std::chrono::milliseconds(500));
  } catch (const std::exception&) {
    // Shutting down: nothing useful to do with a failed disconnect.
  }
  std::lock_guard lock(impl_->mutex);
  impl_->pending.clear();  // the owners are going away too: no completions now
}

void MqttClient::connect() {
  try {
    impl_->client.connect(impl_->connOpts, nullptr, impl_->connectListener);
  } catch (const mqtt::exception& e) {
    if (impl_->handlers.connectFailed) impl_->handlers.connectFailed(e.what());
  }
}

void MqttClient::publish(const MqttMessage& msg, PublishDone done) {
  const auto id = impl_->add(std::move(done));
  try {
    auto m = mqtt::make_message(msg.topic, msg.payload, msg.qos, msg.retain);
    if (!msg.contentType.empty() || msg.expiryS) {
      mqtt::properties props;
      if (!msg.contentType.empty()) props.add({mqtt::property::CONTENT_TYPE, msg.contentType});
      if (msg.expiryS) props.add({mqtt::property::MESSAGE_EXPIRY_INTERVAL, static_cast<int32_t>(std::min<std::uint32_t>(*msg.expiryS, INT32_MAX))});
      m->set_properties(props);
    }
    impl_->client.publish(m, reinterpret_cast<void*>(id), impl_->listener);
  } catch (const mqtt::exception& e) {
    impl_->complete(id, std::string("publish refused: ") + e.what());
  }
}

void MqttClient::subscribe(const std::string& filter, int qos, PublishDone done,
                           bool skipRetained) {
  const auto id = impl_->add(std::move(done));
  try {
    const mqtt::subscribe_options opts(false, false,
                                       skipRetained
                                           ? mqtt::subscribe_options::DONT_SEND_RETAINED
                                           : mqtt::subscribe_options::SEND_RETAINED_ON_SUBSCRIBE);
    impl_->client.subscribe(filter, qos, reinterpret_cast<void*>(id), impl_->listener, opts);
  } catch (const mqtt::exception& e) {
    impl_->complete(id, std::string("subscribe refused: ") + e.what());
  }
}

void MqttClient::disconnect(int timeoutMs) {
  try {
    if (impl_->client.is_connected())
      impl_->client.disconnect(timeoutMs)->wait_for(std::chrono::milliseconds(timeoutMs + 100));
  } catch (const std::exception&) {
    // Already gone: a disconnect that fails leaves us where we wanted to be.
  }
}

void MqttClient::failPending(const std::string& why) {
  std::map<std::uintptr_t, PublishDone> pending;
  {
    std::lock_guard lock(impl_->mutex);
    pending.swap(impl_->pending);
  }
  for (auto& [id, done] : pending)
    if (done) done(why);
}

bool MqttClient::isConnected() const { return impl_->client.is_connected(); }

}  // namespace lanegate
