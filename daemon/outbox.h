#pragma once
// The durable outbox (DESIGN "Delivery guarantee"): an SQLite database in WAL mode in the
// state directory. accept() completes only after the record is committed with fsync;
// concurrent accepts share one transaction (group commit) on the writer thread. Records
// go pending → published (on PUBACK) → acked (the control room's ack), per lane in seq
// order, alerts before status before telemetry.

#include <atomic>
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

// SQLite's connection handle; only outbox.cpp includes <sqlite3.h>.
struct sqlite3;

namespace lanegate {

/// Limits and retention.
struct OutboxOptions {
  std::string path;                            ///< the database file
  std::uint64_t maxBytes = 1ull << 30;         ///< payload budget; telemetry is evicted past it
  std::uint64_t minFreeBytes = 100ull << 20;   ///< below this free disk, nothing more is accepted
  std::uint32_t ackedRetentionS = 7 * 86400;   ///< acked alerts are deleted after this
  std::size_t maxBatch = 512;                  ///< records per group commit
};

/// One stored record, as the publisher needs it.
struct OutboxRecord {
  std::uint64_t seq = 0;
  std::string id;
  RecordKind kind = RecordKind::alert;
  std::string topic;
  std::string contentType;
  std::string payload;
};

/// Counts for `lanegatectl outbox` and the lane status.
struct OutboxStats {
  std::uint64_t pending = 0, published = 0, acked = 0;
  std::uint64_t payloadBytes = 0;   ///< sum of stored payloads (what the budget counts)
  std::uint64_t fileBytes = 0;      ///< database + WAL on disk
  double oldestPendingAgeS = 0;
  std::uint64_t unackedOlderThan = 0;  ///< published alerts unacked for at least as long as asked
  double oldestUnackedAgeS = 0;
  std::uint64_t evicted = 0;        ///< telemetry records evicted since start
  bool diskFault = false;           ///< alerts alone exceed the budget
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
  /// Marks the alert with this CloudEvents id acknowledged by the control room.
  void markAcked(const std::string& id);
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
  };
  void writerLoop();
  void commitBatch(std::vector<Pending>& batch);
  void applyUpdates(std::vector<std::uint64_t>& published, std::vector<std::string>& acked);
  void evictTelemetry(std::uint64_t incoming);
  std::uint64_t freeDiskBytes() const;
  void openOrRecover();

  asio::io_context& io_;
  OutboxOptions options_;
  sqlite3* db_ = nullptr;       // writer thread's connection
  sqlite3* reader_ = nullptr;   // io thread's connection (WAL: reads never block the writer)
  std::string recoveryNote_;
  std::function<void()> onCommitted_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable idle_;
  std::deque<Pending> queue_;
  std::vector<std::uint64_t> toPublish_;
  std::vector<std::string> toAck_;
  bool busy_ = false;
  bool stop_ = false;
  std::uint64_t nextSeq_ = 1;
  std::uint64_t payloadBytes_ = 0;  // writer thread; mirrored for stats
  std::set<std::uint64_t> publishing_;  // PUBACKed, commit pending (mutex_)
  std::atomic<std::uint64_t> evicted_{0};
  std::atomic<bool> diskFault_{false};
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::thread writer_;
};

}  // namespace lanegate
