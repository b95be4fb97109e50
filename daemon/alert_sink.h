#pragma once
// Where accepted records go: the durable outbox (outbox.h) implements this; the lane
// and the control socket only see the interface.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
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

/// What the sink assigns to a record in the transaction that accepts it, and the payload
/// is rendered with (Contract 5 v1.1).
struct RenderInfo {
  std::uint64_t seq = 0;  ///< the CloudEvent's `seq`: alerts are numbered 1, 2, 3... with no
                          ///< gap; other records carry their outbox record number
  std::string id;         ///< the final CloudEvents id (the draft's, plus a counter if asked)
  std::string ackToken;   ///< alerts: a random token (hex) only a receiver can know; else ""
};

/// A record to accept. Its payload is rendered once the sink has numbered it, since the
/// numbers are part of the CloudEvent. `render` may run on another thread (and more than
/// once, if an accept is retried): it must capture what it needs by value.
struct RecordDraft {
  std::string id;  ///< CloudEvents id: the dedup key (unique: a repeat is refused)
  /// Append "/<n>" to `id`, n a per-lane counter kept in the sink and committed with the
  /// record, for ids built from a clock that may be reset (a trace detector's).
  bool numberedId = false;
  RecordKind kind = RecordKind::alert;
  std::string topic;
  std::string contentType = "application/cloudevents+json";
  std::function<std::string(const RenderInfo& info)> render;
  std::vector<Attachment> attachments;  ///< stored with the record, published before it
};

/// How the error of an accept refused for its id begins: a record with that id is in the
/// sink already (e.g. a scan analysed again after a crash between its commit and its
/// archiving), so the record is durable, though this copy was not taken.
inline constexpr std::string_view kIdTaken = "id already in the outbox";

/// Outcome of accept: an empty error and the record's `seq` (RenderInfo::seq), or why not.
using AcceptDone = std::function<void(const std::string& error, std::uint64_t seq)>;

/// Accepts records for delivery; callbacks run on the daemon's io thread.
class AlertSink {
 public:
  virtual ~AlertSink() = default;
  /// Takes a record; `done` runs once it is safe (or could not be made safe).
  virtual void accept(RecordDraft draft, AcceptDone done) = 0;
};

}  // namespace lanegate
