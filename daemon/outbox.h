#pragma once
// The durable outbox (DESIGN "Delivery guarantee"): an SQLite database in WAL mode in the
// state directory. accept() completes only after the record is committed with fsync;
// concurrent accepts share one transaction (group commit) on the writer thread. Records
// go pending → published (on PUBACK) → acked (the control room's ack, which must name a
// published alert by its exact id and carry that alert's ack_token), per lane in seq
// order, alerts before status before telemetry. Ids are unique.
// Each published alert's retained state (Contract 5 `alerts/{id}/state`: open, then acked
// by the first ack, later acks as notes) is a record here too, written in the transaction
// that marks the alert published or acked, so that no state change is lost in a crash;
// when an acked alert leaves the outbox, records with empty retained payloads clear its
// image and state topics. The numbers a record is
// published with (the alert-only `seq`, trace id counters, the session number) are kept
// in the database and assigned in the transaction that accepts it.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "daemon/alert_sink.h"
#include "daemon/asio.h"

// SQLite's connection handle; only the outbox's own files include <sqlite3.h> (outbox_sql.h).
struct sqlite3;

namespace lanegate {

/// Limits and retention.
struct OutboxOptions {
  std::string path;                           ///< the database file
  std::uint64_t maxBytes = 1ull << 30;        ///< payload budget; telemetry is evicted past it
  std::uint64_t minFreeBytes = 100ull << 20;  ///< below this free disk, nothing more is accepted
  std::uint32_t ackedRetentionS = 7 * 86400;  ///< acked alerts are deleted after this
  std::size_t maxBatch = 512;                 ///< records per group commit
  int maxPages = 0;  ///< SQLite's hard cap on the file's pages (PRAGMA max_page_count); 0 = none
};

/// One stored record, as the publisher needs it.
struct OutboxRecord {
  std::uint64_t seq = 0;
  std::string id;
  RecordKind kind = RecordKind::alert;
  std::string topic;
  std::string contentType;
  std::string payload;
  bool retained = false;  ///< an alert's image, state, or the empty message that clears them
};

/// Who acknowledged and what they decided (both optional; the ack is checked before).
struct AckDetail {
  std::string by;
  std::string disposition;
};

/// Counts for `lanegatectl outbox` and the lane status.
struct OutboxStats {
  /// Records by state: alerts, their images, telemetry (not the retained state messages).
  std::uint64_t pending = 0, published = 0, acked = 0;
  std::uint64_t payloadBytes = 0;  ///< sum of stored payloads (what the budget counts)
  std::uint64_t fileBytes = 0;     ///< database + WAL on disk
  double oldestPendingAgeS = 0;
  std::uint64_t unackedOlderThan = 0;  ///< published alerts unacked for at least as long as asked
  double oldestUnackedAgeS = 0;
  std::uint64_t evicted = 0;        ///< telemetry records evicted since start
  bool diskFault = false;           ///< alerts alone exceed the budget
  std::string refusing;             ///< why new records are refused now (disk full); "" = not
  std::uint64_t acksApplied = 0;    ///< acks that acknowledged an alert, since start
  std::uint64_t acksRejected = 0;   ///< acks ignored (unknown id, pending alert, wrong token)
};

/// The outbox. Public methods are called on the io thread; callbacks are posted to it.
class Outbox final : public AlertSink {
 public:
  /// Opens (or creates, or recovers) the database; throws std::runtime_error if even a
  /// fresh database cannot be created (start-up only).
  Outbox(asio::io_context& io, OutboxOptions options);
  ~Outbox() override;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;

  void accept(RecordDraft draft, AcceptDone done) override;

  /// Up to `limit` pending records in delivery order, skipping seqs in `skip`.
  std::vector<OutboxRecord> nextPending(std::size_t limit, const std::set<std::uint64_t>& skip);
  /// Marks a record published (its PUBACK arrived). Not waited for: if it is lost in a
  /// crash the record is published again, with the same id.
  void markPublished(std::uint64_t seq);
  /// The control room's ack: acknowledges the alert whose CloudEvents id is exactly `id`
  /// if it was published and `ackToken` is the token it carried; anything else changes
  /// nothing and is counted (stats().acksRejected) and logged (a bounded number a minute).
  /// The first ack that counts sets the alert's state to acked with `detail`; later ones
  /// are kept as notes (at most kMaxAckNotes) and republish the state.
  void markAcked(std::string id, std::string ackToken, AckDetail detail = {});
  /// Later acks kept on an alert's state; beyond this they are only counted.
  static constexpr std::size_t kMaxAckNotes = 20;
  /// This start's session number: one more than the last start's (kept in the database).
  [[nodiscard]] std::uint64_t session() const { return session_; }
  /// Counts; `unackedAfterS` sets the age that counts as overdue.
  OutboxStats stats(double unackedAfterS);
  /// Non-empty when the database was damaged at start: what happened to it.
  [[nodiscard]] const std::string& recoveryNote() const { return recoveryNote_; }
  /// Waits until every queued write is committed (tests, shutdown).
  void flush();
  /// Hook run on the io thread after new records were committed (the publisher drains).
  void onCommitted(std::function<void()> hook) { onCommitted_ = std::move(hook); }

 private:
  struct Pending {
    RecordDraft draft;
    AcceptDone done;
    std::string error;      // why it was not accepted ("" = accepted, once committed)
    std::uint64_t seq = 0;  // its RenderInfo::seq
  };
  struct Ack {
    std::string id, token;
    AckDetail detail;
  };
  // The writer's counters, restored when a transaction rolls back.
  struct Counters {
    std::uint64_t nextSeq = 1, nextAlertSeq = 1, nextIdNumber = 1, payloadBytes = 0;
    std::uint64_t evicted = 0, acksApplied = 0, acksRejected = 0;
  };
  void writerLoop();
  void commitBatch(std::vector<Pending>& batch);
  void applyUpdates(const std::vector<std::uint64_t>& published, const std::vector<Ack>& acked);
  void applyAck(const Ack& ack, std::int64_t now);
  void queueState(const std::string& alertId, std::int64_t now);
  void closeAlerts(std::int64_t ackedBefore);
  void saveCounters();
  void rejectAck(const Ack& ack, const char* why);
  void publishCounters();
  void evictTelemetry(std::uint64_t incoming);
  void noteRefusals(bool written, const std::string& writeError);
  std::uint64_t freeDiskBytes() const;
  void openOrRecover();

  asio::io_context& io_;
  OutboxOptions options_;
  sqlite3* db_ = nullptr;      // writer thread's connection
  sqlite3* reader_ = nullptr;  // io thread's connection (WAL: reads never block the writer)
  std::string recoveryNote_;
  std::function<void()> onCommitted_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  std::deque<Pending> queue_;
  std::vector<std::uint64_t> toPublish_;
  std::vector<Ack> toAck_;
  bool busy_ = false;
  bool stop_ = false;
  Counters c_;               // writer thread (and the constructor)
  bool newRecords_ = false;  // writer thread: this transaction queued states or clearings
  std::uint64_t session_ = 0;
  std::set<std::uint64_t> publishing_;  // PUBACKed, commit pending (mutex_)
  std::atomic<std::uint64_t> evicted_{0}, acksApplied_{0}, acksRejected_{0};  // mirrors of c_
  std::chrono::steady_clock::time_point ackLogWindow_{};  // writer thread: rejected-ack log limit
  int ackLogsInWindow_ = 0, ackLogsSuppressed_ = 0;
  std::map<std::string, Ack> heldAcks_;  // writer thread: acks whose alert is to be sent again
  std::atomic<bool> diskFault_{false};
  bool floorRefused_ = false;  // writer thread: the batch refused a record for the free-disk floor
  std::string refusing_;       // mutex_: why accepts fail now ("" = they don't)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::thread writer_;
};

}  // namespace lanegate
