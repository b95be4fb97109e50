#include "daemon/outbox.h"

#include <sqlite3.h>

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "daemon/log.h"

namespace lanegate {
namespace {

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& blob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  /// SQLITE_ROW, SQLITE_DONE, or an error code.
  int step() { return sqlite3_step(s_); }
  void run() {
    const int rc = step();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db_));
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  std::string text(int c) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s_, c));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s_, c))) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db);
    sqlite3_free(err);
    throw std::runtime_error("sqlite: " + msg);
  }
}

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS records(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  kind INTEGER NOT NULL,
  topic TEXT NOT NULL,
  content_type TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_ms INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  published_ms INTEGER,
  acked_ms INTEGER);
CREATE INDEX IF NOT EXISTS records_delivery ON records(state, kind, seq);
CREATE INDEX IF NOT EXISTS records_id ON records(id);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
)";

constexpr int kPending = 0, kPublished = 1, kAcked = 2;

sqlite3* openDb(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error(msg);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

// Opens an existing database and checks it; throws with SQLite's words if damaged.
sqlite3* openChecked(const std::string& path) {
  sqlite3* db = openDb(path, SQLITE_OPEN_READWRITE);
  try {
    Stmt check(db, "PRAGMA quick_check");
    const int rc = check.step();
    if (rc != SQLITE_ROW) throw std::runtime_error(sqlite3_errmsg(db));
    const std::string verdict = check.text(0);
    if (verdict != "ok") throw std::runtime_error("integrity check: " + verdict);
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  return db;
}

void configure(sqlite3* db) {
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "PRAGMA synchronous=FULL");  // the commit is the durability point: fsync it
  exec(db, kSchema);
}

struct Recovered {
  std::int64_t seq, kind, created, state;
  std::string id, topic, contentType, payload;
};

// Reads every row SQLite can still give from a damaged database: a scan first, then,
// past the first damaged page, row by row.
std::vector<Recovered> salvage(const std::string& path, std::string& why) {
  std::vector<Recovered> out;
  sqlite3* db = nullptr;
  try {
    db = openDb(path, SQLITE_OPEN_READONLY);
    // A truncated file's header claims more pages than the file has; SQLite refuses to
    // read such a file at all unless the schema is "writable" (it reads, we never write).
    exec(db, "PRAGMA writable_schema=ON");
  } catch (const std::exception& e) {
    why = e.what();
    return out;
  }
  const char* cols = "SELECT seq,id,kind,topic,content_type,payload,created_ms,state FROM records ";
  auto read = [&](Stmt& s) {
    out.push_back({s.i64(0), s.i64(2), s.i64(6), s.i64(7), s.text(1), s.text(3), s.text(4), s.text(5)});
  };
  std::int64_t last = 0;
  bool damaged = false;
  try {
    Stmt scan(db, (std::string(cols) + "ORDER BY seq").c_str());
    int rc;
    while ((rc = scan.step()) == SQLITE_ROW) {
      read(scan);
      last = out.back().seq;
    }
    damaged = rc != SQLITE_DONE;
    if (damaged) why = sqlite3_errmsg(db);
  } catch (const std::exception& e) {
    damaged = true;
    why = e.what();
  }
  if (damaged) {
    try {
      Stmt one(db, (std::string(cols) + "WHERE seq=?").c_str());
      int misses = 0;
      for (std::int64_t seq = last + 1; misses < 20000; ++seq) {
        one.bind(1, seq);
        if (one.step() == SQLITE_ROW) {
          read(one);
          misses = 0;
        } else {
          ++misses;
        }
        one.reset();
      }
    } catch (const std::exception&) {
      // The table itself is unreadable: what the scan gave is all there is.
    }
  }
  sqlite3_close(db);
  return out;
}

}  // namespace

Outbox::Outbox(asio::io_context& io, OutboxOptions options) : io_(io), options_(std::move(options)) {
  openOrRecover();
  writer_ = std::thread([this] { writerLoop(); });
}

Outbox::~Outbox() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  *alive_ = false;
  sqlite3_close(reader_);
  sqlite3_close(db_);
}

void Outbox::openOrRecover() {
  namespace fs = std::filesystem;
  auto logger = log::get("outbox");
  const std::string& path = options_.path;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::vector<Recovered> rescued;
  if (fs::exists(path)) {
    try {
      db_ = openChecked(path);
      configure(db_);
    } catch (const std::exception& e) {
      if (db_) sqlite3_close(db_);
      db_ = nullptr;
      // Never overwrite a damaged outbox: move it aside with its WAL, then salvage.
      const std::string aside = path + ".damaged-" + std::to_string(nowMs());
      fs::rename(path, aside, ec);
      for (const char* suffix : {"-wal", "-shm"})
        if (fs::exists(path + suffix)) fs::rename(path + suffix, aside + suffix, ec);
      std::string why;
      rescued = salvage(aside, why);
      recoveryNote_ = "outbox " + path + " was damaged (" + e.what() + "); moved aside to " + aside +
                      "; recovered " + std::to_string(rescued.size()) + " record(s)";
      logger->error("{}", recoveryNote_);
    }
  }
  if (!db_) {
    db_ = openDb(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    configure(db_);
  }
  if (!rescued.empty()) {
    exec(db_, "BEGIN");
    Stmt ins(db_, "INSERT OR IGNORE INTO records(seq,id,kind,topic,content_type,payload,created_ms,state) VALUES(?,?,?,?,?,?,?,?)");
    for (const auto& r : rescued) {
      ins.bind(1, r.seq).bind(2, r.id).bind(3, r.kind).bind(4, r.topic).bind(5, r.contentType);
      ins.blob(6, r.payload).bind(7, r.created).bind(8, r.state == kAcked ? kAcked : r.state);
      ins.run();
    }
    exec(db_, "COMMIT");
  }
  {
    Stmt s(db_, "SELECT COALESCE(MAX(seq),0), COALESCE(SUM(length(payload)),0) FROM records");
    s.step();
    nextSeq_ = static_cast<std::uint64_t>(s.i64(0)) + 1;
    payloadBytes_ = static_cast<std::uint64_t>(s.i64(1));
    Stmt m(db_, "SELECT value FROM meta WHERE key='next_seq'");
    if (m.step() == SQLITE_ROW) nextSeq_ = std::max(nextSeq_, static_cast<std::uint64_t>(m.i64(0)));
  }
  reader_ = openDb(path, SQLITE_OPEN_READWRITE);
  logger->info("outbox {}: next seq {}, {} bytes of payload", path, nextSeq_, payloadBytes_);
}

void Outbox::accept(RecordDraft draft, AcceptDone done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(draft), std::move(done)});
  }
  cv_.notify_one();
}

void Outbox::markPublished(std::uint64_t seq) {
  {
    std::lock_guard lock(mutex_);
    toPublish_.push_back(seq);
    publishing_.insert(seq);
  }
  cv_.notify_one();
}

void Outbox::markAcked(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    toAck_.push_back(id);
  }
  cv_.notify_one();
}

void Outbox::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && toPublish_.empty() && toAck_.empty() && !busy_; });
}

void Outbox::writerLoop() {
  auto logger = log::get("outbox");
  while (true) {
    std::vector<Pending> batch;
    std::vector<std::uint64_t> published;
    std::vector<std::string> acked;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty() || !toPublish_.empty() || !toAck_.empty(); });
      if (stop_ && queue_.empty() && toPublish_.empty() && toAck_.empty()) return;
      // Everything that queued while the last commit was syncing goes in this one:
      // that is the group commit.
      while (!queue_.empty() && batch.size() < options_.maxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      published.swap(toPublish_);
      acked.swap(toAck_);
      busy_ = true;
    }
    try {
      exec(db_, "BEGIN IMMEDIATE");
      applyUpdates(published, acked);
      commitBatch(batch);
      exec(db_, "COMMIT");
    } catch (const std::exception& e) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      logger->error("outbox {}: write failed: {}", options_.path, e.what());
      // Not committed, so not accepted: every caller learns it now.
      const std::string err = std::string("outbox write failed: ") + e.what();
      std::weak_ptr<bool> alive = alive_;
      for (auto& p : batch)
        if (p.done) asio::post(io_, [alive, done = std::move(p.done), err] {
          if (alive.lock()) done(err, 0);
        });
      batch.clear();
    }
    std::weak_ptr<bool> alive = alive_;
    for (auto& p : batch) {
      if (!p.done) continue;
      asio::post(io_, [alive, done = std::move(p.done)] {
        if (alive.lock()) done("", 0);  // the wrapped callback supplies the seq
      });
    }
    if (!batch.empty() && onCommitted_)
      asio::post(io_, [this, alive] {
        if (alive.lock() && onCommitted_) onCommitted_();
      });
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
      for (auto seq : published) publishing_.erase(seq);
    }
    idle_.notify_all();
  }
}

void Outbox::applyUpdates(std::vector<std::uint64_t>& published, std::vector<std::string>& acked) {
  const std::int64_t now = nowMs();
  if (!published.empty()) {
    // Alerts stay on record until acked; other records are done once the broker has them.
    Stmt up(db_, "UPDATE records SET state=?, published_ms=? WHERE seq=? AND state=0 AND kind=0");
    Stmt del(db_, "DELETE FROM records WHERE seq=? AND kind<>0 RETURNING length(payload)");
    for (auto seq : published) {
      up.bind(1, kPublished).bind(2, now).bind(3, static_cast<std::int64_t>(seq)).run();
      del.bind(1, static_cast<std::int64_t>(seq));
      while (del.step() == SQLITE_ROW) payloadBytes_ -= static_cast<std::uint64_t>(del.i64(0));
      del.reset();
    }
  }
  if (!acked.empty()) {
    // The alert and its attachments (ids "<alert id>:<what>").
    Stmt up(db_, "UPDATE records SET state=2, acked_ms=?, published_ms=COALESCE(published_ms, ?) "
                 "WHERE id=? OR (id > ? AND id < ?)");
    for (const auto& id : acked)
      up.bind(1, now).bind(2, now).bind(3, id).bind(4, id + ":").bind(5, id + ";").run();
  }
  // Retention of acked alerts, a little at a time.
  Stmt old(db_, "DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE state=2 AND acked_ms < ? LIMIT 256) RETURNING length(payload)");
  old.bind(1, now - static_cast<std::int64_t>(options_.ackedRetentionS) * 1000);
  while (old.step() == SQLITE_ROW) payloadBytes_ -= static_cast<std::uint64_t>(old.i64(0));
}

std::uint64_t Outbox::freeDiskBytes() const {
  struct statvfs st {};
  const auto dir = std::filesystem::path(options_.path).parent_path();
  if (::statvfs(dir.c_str(), &st) != 0) return UINT64_MAX;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

void Outbox::evictTelemetry(std::uint64_t incoming) {
  Stmt pick(db_, "SELECT seq, length(payload) FROM records WHERE kind=2 ORDER BY seq LIMIT 64");
  Stmt del(db_, "DELETE FROM records WHERE seq=?");
  while (payloadBytes_ + incoming > options_.maxBytes) {
    std::vector<std::pair<std::int64_t, std::int64_t>> victims;
    while (pick.step() == SQLITE_ROW) victims.emplace_back(pick.i64(0), pick.i64(1));
    pick.reset();
    if (victims.empty()) return;
    for (auto [seq, bytes] : victims) {
      if (payloadBytes_ + incoming <= options_.maxBytes) break;
      del.bind(1, seq).run();
      payloadBytes_ -= static_cast<std::uint64_t>(bytes);
      ++evicted_;
    }
  }
}

void Outbox::commitBatch(std::vector<Pending>& batch) {
  if (batch.empty()) return;
  auto logger = log::get("outbox");
  Stmt ins(db_, "INSERT INTO records(seq,id,kind,topic,content_type,payload,created_ms) VALUES(?,?,?,?,?,?,?)");
  const std::int64_t now = nowMs();
  const std::uint64_t freeBytes = freeDiskBytes();
  std::vector<Pending> refused;
  std::vector<Pending> kept;
  for (auto& p : batch) {
    const bool isAlert = p.draft.kind == RecordKind::alert;
    std::uint64_t size = 4096;  // an estimate of the rendered record; attachments counted exactly
    for (const auto& a : p.draft.attachments) size += a.payload.size();
    if (payloadBytes_ + size > options_.maxBytes) evictTelemetry(size);
    std::string refusal;
    if (payloadBytes_ + size > options_.maxBytes) {
      if (!isAlert) {
        refusal = "outbox budget of " + std::to_string(options_.maxBytes) + " bytes is full of alerts; telemetry not accepted";
      } else {
        if (!diskFault_)
          logger->error("outbox {}: alerts alone exceed the budget of {} bytes; accepting alerts down to the free-disk floor",
                        options_.path, options_.maxBytes);
        diskFault_ = true;
      }
    } else if (diskFault_ && isAlert) {
      diskFault_ = false;
      logger->info("outbox {}: back under budget", options_.path);
    }
    if (refusal.empty() && freeBytes < options_.minFreeBytes + size)
      refusal = "free disk below the floor of " + std::to_string(options_.minFreeBytes) + " bytes";
    if (!refusal.empty()) {
      logger->error("outbox {}: not accepted {}: {}", options_.path, p.draft.id, refusal);
      const std::string err = refusal;
      std::weak_ptr<bool> alive = alive_;
      if (p.done) asio::post(io_, [alive, done = std::move(p.done), err] {
        if (alive.lock()) done(err, 0);
      });
      continue;
    }
    for (const auto& a : p.draft.attachments) {
      ins.bind(1, static_cast<std::int64_t>(nextSeq_++)).bind(2, p.draft.id + ":" + "attachment");
      ins.bind(3, static_cast<std::int64_t>(p.draft.kind)).bind(4, a.topic).bind(5, a.contentType);
      ins.blob(6, a.payload).bind(7, now).run();
      payloadBytes_ += a.payload.size();
    }
    const std::uint64_t seq = nextSeq_++;
    const std::string payload = p.draft.render(seq);
    ins.bind(1, static_cast<std::int64_t>(seq)).bind(2, p.draft.id);
    ins.bind(3, static_cast<std::int64_t>(p.draft.kind)).bind(4, p.draft.topic).bind(5, p.draft.contentType);
    ins.blob(6, payload).bind(7, now).run();
    payloadBytes_ += payload.size();
    // Completions carry the seq: wrap the callback now that we know it.
    if (p.done) p.done = [done = std::move(p.done), seq](const std::string& e, std::uint64_t) { done(e, seq); };
    kept.push_back(std::move(p));
  }
  Stmt meta(db_, "INSERT INTO meta(key,value) VALUES('next_seq',?) ON CONFLICT(key) DO UPDATE SET value=excluded.value");
  meta.bind(1, static_cast<std::int64_t>(nextSeq_)).run();
  batch.swap(kept);
}

std::vector<OutboxRecord> Outbox::nextPending(std::size_t limit, const std::set<std::uint64_t>& skip) {
  std::vector<OutboxRecord> out;
  std::set<std::uint64_t> done;
  {
    std::lock_guard lock(mutex_);
    done = publishing_;  // PUBACKed, not yet committed as published
  }
  Stmt s(reader_, "SELECT seq,id,kind,topic,content_type,payload FROM records WHERE state=0 ORDER BY kind, seq LIMIT ?");
  s.bind(1, static_cast<std::int64_t>(limit + skip.size() + done.size()));
  while (out.size() < limit && s.step() == SQLITE_ROW) {
    const auto seq = static_cast<std::uint64_t>(s.i64(0));
    if (skip.count(seq) || done.count(seq)) continue;
    out.push_back({seq, s.text(1), static_cast<RecordKind>(s.i64(2)), s.text(3), s.text(4), s.text(5)});
  }
  return out;
}

OutboxStats Outbox::stats(double unackedAfterS) {
  OutboxStats st;
  const std::int64_t now = nowMs();
  {
    Stmt s(reader_, "SELECT state, COUNT(*), COALESCE(SUM(length(payload)),0) FROM records GROUP BY state");
    while (s.step() == SQLITE_ROW) {
      const auto n = static_cast<std::uint64_t>(s.i64(1));
      if (s.i64(0) == kPending) st.pending = n;
      else if (s.i64(0) == kPublished) st.published = n;
      else st.acked = n;
      st.payloadBytes += static_cast<std::uint64_t>(s.i64(2));
    }
  }
  {
    Stmt s(reader_, "SELECT MIN(created_ms) FROM records WHERE state=0");
    if (s.step() == SQLITE_ROW && s.i64(0) > 0)  // NULL (no pending) reads as 0
      st.oldestPendingAgeS = static_cast<double>(now - s.i64(0)) / 1000.0;
  }
  {
    Stmt s(reader_, "SELECT COUNT(*), MIN(published_ms) FROM records WHERE state=1 AND kind=0 AND instr(id, ':')=0 AND published_ms <= ?");
    s.bind(1, now - static_cast<std::int64_t>(unackedAfterS * 1000.0));
    if (s.step() == SQLITE_ROW) {
      st.unackedOlderThan = static_cast<std::uint64_t>(s.i64(0));
      if (st.unackedOlderThan > 0) st.oldestUnackedAgeS = static_cast<double>(now - s.i64(1)) / 1000.0;
    }
  }
  for (const char* suffix : {"", "-wal"}) {
    struct stat sb {};
    if (::stat((options_.path + suffix).c_str(), &sb) == 0) st.fileBytes += static_cast<std::uint64_t>(sb.st_size);
  }
  st.evicted = evicted_;
  st.diskFault = diskFault_;
  return st;
}

}  // namespace lanegate
