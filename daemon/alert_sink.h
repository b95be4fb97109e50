#pragma once
// Where accepted records go. The durable SQLite outbox sits behind this interface;
// until it lands, DirectSink publishes straight to the broker and reports a record
// accepted only once the broker's PUBACK arrives.

#include <cstdint>
#include <functional>
#include <string>

#include "daemon/publisher.h"

namespace lanegate {

/// What kind of record, which decides priority and eviction.
enum class RecordKind { alert, status, telemetry };

/// A record to accept. Its payload is rendered once the sink has given it a sequence
/// number, since the number is part of the CloudEvent.
struct RecordDraft {
  std::string id;  ///< CloudEvents id: the dedup key
  RecordKind kind = RecordKind::alert;
  std::string topic;
  std::string contentType = "application/cloudevents+json";
  std::function<std::string(std::uint64_t seq)> render;
};

/// Outcome of accept: an empty error and the record's sequence number, or why not.
using AcceptDone = std::function<void(const std::string& error, std::uint64_t seq)>;

/// Accepts records for delivery; callbacks run on the daemon's io thread.
class AlertSink {
 public:
  virtual ~AlertSink() = default;
  /// Takes a record; `done` runs once it is safe (or could not be made safe).
  virtual void accept(RecordDraft draft, AcceptDone done) = 0;
};

/// Publishes each record at once; accepted means acknowledged by the broker.
class DirectSink final : public AlertSink {
 public:
  explicit DirectSink(Publisher& publisher) : publisher_(publisher) {}
  void accept(RecordDraft draft, AcceptDone done) override {
    const std::uint64_t seq = ++seq_;
    MqttMessage m{draft.topic, draft.render(seq), 1, false, draft.contentType, std::nullopt};
    publisher_.publish(std::move(m), [seq, done = std::move(done)](const std::string& err) {
      done(err, seq);
    });
  }

 private:
  Publisher& publisher_;
  std::uint64_t seq_ = 0;
};

}  // namespace lanegate
