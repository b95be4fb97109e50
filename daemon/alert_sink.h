#pragma once
// Where accepted records go: the durable outbox (outbox.h) implements this; the lane
// and the control socket only see the interface.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>


namespace lanegate {

/// What kind of record, which decides priority and eviction.
enum class RecordKind { alert, status, telemetry };

/// Something published just before its record (an alert's overlay image).
struct Attachment {
  std::string topic;
  std::string contentType;
  std::string payload;
};

/// A record to accept. Its payload is rendered once the sink has given it a sequence
/// number, since the number is part of the CloudEvent. `render` may run on another
/// thread: it must capture what it needs by value.
struct RecordDraft {
  std::string id;  ///< CloudEvents id: the dedup key
  RecordKind kind = RecordKind::alert;
  std::string topic;
  std::string contentType = "application/cloudevents+json";
  std::function<std::string(std::uint64_t seq)> render;
  std::vector<Attachment> attachments;  ///< stored with the record, published before it
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

}  // namespace lanegate
