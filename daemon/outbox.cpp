#include "daemon/outbox.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "daemon/alert_ids.h"
#include "daemon/log.h"
#include "daemon/outbox_sql.h"
#include "lane/payloads.h"

namespace lanegate {

using namespace outbox_sql;

namespace {

// Version 2 (PRAGMA user_version; 0 = the first outboxes): unique ids, attachments linked
// to their alert (parent), each alert's ack_token and its alert-only seq (event_seq).
// Version 3: ack_info, an acknowledged alert's first ack and the later ones (notes), as
// JSON, from which its retained state is rendered.
// meta holds next_seq, next_alert_seq, next_id_number and session.
constexpr int kSchemaVersion = 3;
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
  acked_ms INTEGER,
  parent TEXT,
  ack_token TEXT,
  event_seq INTEGER,
  ack_info TEXT);
CREATE INDEX IF NOT EXISTS records_delivery ON records(state, kind, seq);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
)";

// Acked alerts past their retention are closed this often even when nothing else happens.
constexpr auto kHousekeeping = std::chrono::seconds(5);

// Version 0 named an alert's image "<alert id>:attachment" and nothing else linked them.
void linkLegacyAttachments(sqlite3* db) {
  exec(db, R"(UPDATE records SET parent = substr(id, 1, length(id) - 11)
              WHERE parent IS NULL AND id LIKE '%:attachment'
                AND EXISTS (SELECT 1 FROM records a WHERE a.id = substr(records.id, 1, length(records.id) - 11)
                                                      AND a.seq > records.seq))");
}

// Brings an outbox of an older version to kSchemaVersion, in one transaction.
void migrate(sqlite3* db) {
  int version = 0;
  {
    Stmt v(db, "PRAGMA user_version");
    if (v.step() == SQLITE_ROW) version = static_cast<int>(v.i64(0));
  }
  if (version >= kSchemaVersion) return;
  exec(db, "BEGIN IMMEDIATE");
  try {
    std::set<std::string> columns;
    {
      Stmt info(db, "PRAGMA table_info(records)");
      while (info.step() == SQLITE_ROW) columns.insert(info.text(1));
    }
    for (const auto& [name, type] :
         {std::pair{"parent", "TEXT"}, std::pair{"ack_token", "TEXT"},
          std::pair{"event_seq", "INTEGER"}, std::pair{"ack_info", "TEXT"}})
      if (!columns.count(name))
        exec(db, (std::string("ALTER TABLE records ADD COLUMN ") + name + " " + type).c_str());
    linkLegacyAttachments(db);
    // Version 0 allowed a repeated id; the later copies keep their payload under a new key.
    exec(db,
         "UPDATE records SET id = id || '#dup-' || seq "
         "WHERE seq NOT IN (SELECT MIN(seq) FROM records GROUP BY id)");
    exec(db, "DROP INDEX IF EXISTS records_id");
    exec(db, "CREATE UNIQUE INDEX IF NOT EXISTS records_id_unique ON records(id)");
    exec(db, "CREATE INDEX IF NOT EXISTS records_parent ON records(parent)");
    // Alerts published before carried the shared record number as seq: alert numbers
    // continue above it, so that seq never goes back.
    exec(db,
         "INSERT OR IGNORE INTO meta(key,value) VALUES('next_alert_seq', MAX("
         "COALESCE((SELECT value FROM meta WHERE key='next_seq'), 1), "
         "(SELECT COALESCE(MAX(seq), 0) + 1 FROM records)))");
    exec(db, ("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

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

// Opens an existing database and checks it; throws with SQLite's words if damaged. The
// full check, not quick_check: an index that disagrees with its table passes quick_check,
// and then every write fails ("database disk image is malformed") and nothing is ever
// accepted again (found by tests/fuzz/fuzz_outbox.cpp). Damaged, it is salvaged row by row.
sqlite3* openChecked(const std::string& path) {
  sqlite3* db = openDb(path, SQLITE_OPEN_READWRITE);
  try {
    Stmt check(db, "PRAGMA integrity_check(1)");
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

// Whether the tables are ours in every way a write depends on; throws naming what differs.
// An outbox whose integrity is fine can still refuse every write: a hand edit or a damaged
// page can leave `records` without a column, with a column made NOT NULL, with a CHECK, a
// trigger or another unique index (found by tests/fuzz/fuzz_outbox.cpp: a file whose records
// table had lost acked_ms opened, then refused every alert). Such a file is damaged: it is
// moved aside and salvaged like any other.
void checkSchema(sqlite3* db) {
  // name → NOT NULL, as kSchema declares them (seq is the rowid: INTEGER PRIMARY KEY).
  const std::map<std::string, bool> expected = {
      {"seq", false},          {"id", true},        {"kind", true},       {"topic", true},
      {"content_type", true},  {"payload", true},   {"created_ms", true}, {"state", true},
      {"published_ms", false}, {"acked_ms", false}, {"parent", false},    {"ack_token", false},
      {"event_seq", false},    {"ack_info", false}};
  std::set<std::string> seen;
  {
    Stmt info(db, "PRAGMA table_info(records)");
    while (info.step() == SQLITE_ROW) {
      const std::string name = info.text(1);
      const bool notNull = info.i64(3) != 0;
      const auto it = expected.find(name);
      if (it == expected.end()) {
        // Not ours: harmless unless it must be given a value we never give.
        if (notNull && info.isNull(4))
          throw std::runtime_error("schema: records has a column we never fill: " + name);
        continue;
      }
      seen.insert(name);
      if (notNull != it->second)
        throw std::runtime_error("schema: records." + name + " is " +
                                 (notNull ? "NOT NULL" : "nullable") + ", not as written");
      if (name == "seq" && (info.i64(5) != 1 || info.text(2) != "INTEGER"))
        throw std::runtime_error("schema: records.seq is not its INTEGER PRIMARY KEY");
    }
  }
  for (const auto& [name, notNull] : expected)
    if (!seen.count(name)) throw std::runtime_error("schema: records has no column " + name);
  {
    Stmt meta(db, "PRAGMA table_info(meta)");
    std::set<std::string> cols;
    while (meta.step() == SQLITE_ROW) cols.insert(meta.text(1));
    if (!cols.count("key") || !cols.count("value"))
      throw std::runtime_error("schema: meta has no key or no value column");
  }
  {
    // Triggers, CHECK constraints and unique indexes of our own making only.
    Stmt objects(db, "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master");
    while (objects.step() == SQLITE_ROW) {
      const std::string type = objects.text(0);
      const std::string name = objects.text(1);
      std::string sql = objects.text(3);
      for (char& ch : sql) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      if (type == "trigger") throw std::runtime_error("schema: a trigger: " + name);
      if (type == "table" && sql.find("CHECK") != std::string::npos)
        throw std::runtime_error("schema: table " + name + " has a CHECK constraint");
      if (type == "index" && sql.find("UNIQUE") != std::string::npos && name != "records_id_unique")
        throw std::runtime_error("schema: a unique index of its own: " + name);
    }
  }
}

void configure(sqlite3* db) {
  exec(db, "PRAGMA journal_mode=WAL");
  exec(db, "PRAGMA synchronous=FULL");  // the commit is the durability point: fsync it
  exec(db, kSchema);
  migrate(db);
  checkSchema(db);
}

struct Recovered {
  std::int64_t seq, kind, created, state;
  std::string id, topic, contentType, payload;
  std::optional<std::string> parent, ackToken;
  std::optional<std::int64_t> eventSeq;
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
  // A version 0 outbox has no parent, ack_token or event_seq: NULLs stand in for them.
  std::string cols =
      "SELECT seq,id,kind,topic,content_type,payload,created_ms,state,parent,ack_token,event_seq "
      "FROM records ";
  try {
    Stmt probe(db, (cols + "LIMIT 0").c_str());
  } catch (const std::exception&) {
    cols =
        "SELECT seq,id,kind,topic,content_type,payload,created_ms,state,NULL,NULL,NULL FROM "
        "records ";
  }
  auto read = [&](Stmt& s) {
    Recovered r{s.i64(0),  s.i64(2),  s.i64(6), s.i64(7), s.text(1), s.text(3),
                s.text(4), s.text(5), {},       {},       {}};
    if (!s.isNull(8)) r.parent = s.text(8);
    if (!s.isNull(9)) r.ackToken = s.text(9);
    if (!s.isNull(10)) r.eventSeq = s.i64(10);
    out.push_back(std::move(r));
  };
  std::int64_t last = 0;
  bool damaged = false;
  try {
    Stmt scan(db, (cols + "ORDER BY seq").c_str());
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
      Stmt one(db, (cols + "WHERE seq=?").c_str());
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

Outbox::Outbox(asio::io_context& io, OutboxOptions options)
    : io_(io), options_(std::move(options)) {
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
      recoveryNote_ = "outbox " + path + " was damaged (" + e.what() + "); moved aside to " +
                      aside + "; recovered " + std::to_string(rescued.size()) + " record(s)";
      logger->error("{}", recoveryNote_);
    }
  }
  if (!db_) {
    db_ = openDb(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    configure(db_);
  }
  if (options_.maxPages > 0)
    exec(db_, ("PRAGMA max_page_count=" + std::to_string(options_.maxPages)).c_str());
  if (!rescued.empty()) {
    exec(db_, "BEGIN");
    Stmt ins(db_,
             "INSERT OR IGNORE INTO "
             "records(seq,id,kind,topic,content_type,payload,created_ms,state,parent,ack_token,"
             "event_seq) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
    for (const auto& r : rescued) {
      // A version 0 outbox may hold an id twice: the later copy keeps its payload under a new key.
      for (const std::string& id : {r.id, r.id + "#dup-" + std::to_string(r.seq)}) {
        ins.bind(1, r.seq).bind(2, id).bind(3, r.kind).bind(4, r.topic).bind(5, r.contentType);
        ins.blob(6, r.payload).bind(7, r.created).bind(8, r.state == kAcked ? kAcked : r.state);
        if (r.parent) ins.bind(9, *r.parent);
        if (r.ackToken) ins.bind(10, *r.ackToken);
        if (r.eventSeq) ins.bind(11, *r.eventSeq);
        ins.run();
        if (sqlite3_changes(db_) > 0) break;
      }
    }
    linkLegacyAttachments(db_);
    exec(db_, "COMMIT");
  }
  auto metaValue = [&](const char* key, std::uint64_t fallback) {
    Stmt m(db_, "SELECT value FROM meta WHERE key=?");
    m.bind(1, std::string(key));
    return m.step() == SQLITE_ROW ? std::max(fallback, static_cast<std::uint64_t>(m.i64(0)))
                                  : fallback;
  };
  {
    Stmt s(db_, "SELECT COALESCE(MAX(seq),0), COALESCE(SUM(length(payload)),0) FROM records");
    s.step();
    c_.nextSeq = metaValue("next_seq", static_cast<std::uint64_t>(s.i64(0)) + 1);
    c_.payloadBytes = static_cast<std::uint64_t>(s.i64(1));
    Stmt a(db_,
           "SELECT COALESCE(MAX(COALESCE(event_seq, seq)),0) FROM records WHERE kind=0 AND parent "
           "IS NULL");
    a.step();
    c_.nextAlertSeq = metaValue("next_alert_seq", static_cast<std::uint64_t>(a.i64(0)) + 1);
    c_.nextIdNumber = metaValue("next_id_number", 1);
  }
  // One more start: the status and the will carry it, so a late will matches its birth.
  exec(db_,
       "INSERT INTO meta(key,value) VALUES('session',1) ON CONFLICT(key) DO UPDATE SET "
       "value=value+1");
  session_ = metaValue("session", 1);
  reader_ = openDb(path, SQLITE_OPEN_READWRITE);
  logger->info("outbox {}: session {}, next seq {}, next alert seq {}, {} bytes of payload", path,
               session_, c_.nextSeq, c_.nextAlertSeq, c_.payloadBytes);
}

void Outbox::accept(RecordDraft draft, AcceptDone done) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back({std::move(draft), std::move(done), {}, 0});
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

void Outbox::markAcked(std::string id, std::string ackToken, AckDetail detail) {
  {
    std::lock_guard lock(mutex_);
    toAck_.push_back({std::move(id), std::move(ackToken), std::move(detail)});
  }
  cv_.notify_one();
}

void Outbox::flush() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock,
             [this] { return queue_.empty() && toPublish_.empty() && toAck_.empty() && !busy_; });
}

void Outbox::writerLoop() {
  auto logger = log::get("outbox");
  int failures = 0;  // consecutive failed transactions
  while (true) {
    std::vector<Pending> batch;
    std::vector<std::uint64_t> published;
    std::vector<Ack> acked;
    {
      std::unique_lock lock(mutex_);
      // After a failed write (a full disk), wait a little rather than spin on it.
      if (failures > 0) cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
      // Woken by work, or by the housekeeping period (closing acked alerts past retention).
      cv_.wait_for(lock, kHousekeeping, [this] {
        return stop_ || !queue_.empty() || !toPublish_.empty() || !toAck_.empty();
      });
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
    const Counters before = c_;
    const auto heldBefore = heldAcks_;
    bool ok = true;
    newRecords_ = false;
    std::string writeError;
    floorRefused_ = false;
    try {
      exec(db_, "BEGIN IMMEDIATE");
      applyUpdates(published, acked);
      commitBatch(batch);
      exec(db_, "COMMIT");
      failures = 0;
    } catch (const std::exception& e) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      ok = false;
      ++failures;
      c_ = before;  // nothing of this transaction happened: numbers and bytes with it
      heldAcks_ = heldBefore;
      logger->error("outbox {}: write failed: {}", options_.path, e.what());
      writeError = e.what();
      // Not committed, so not accepted: every caller of the batch learns it, including
      // those whose records had been written before the failure.
      const std::string err = std::string("outbox write failed: ") + e.what();
      for (auto& p : batch)
        if (p.error.empty()) p.error = err;
    }
    publishCounters();
    noteRefusals(ok, writeError);
    std::weak_ptr<bool> alive = alive_;
    bool anyAccepted = false;
    for (auto& p : batch) {
      anyAccepted = anyAccepted || p.error.empty();
      if (!p.done) continue;
      asio::post(io_, [alive, done = std::move(p.done), err = std::move(p.error), seq = p.seq] {
        if (alive.lock()) done(err, err.empty() ? seq : 0);
      });
    }
    // New pending records (accepted ones, or the states and clearings of this transaction)
    // wake the delivery.
    if ((anyAccepted || (ok && newRecords_)) && onCommitted_)
      asio::post(io_, [this, alive] {
        if (alive.lock() && onCommitted_) onCommitted_();
      });
    {
      std::lock_guard lock(mutex_);
      busy_ = false;
      if (!ok && failures < 5 && !stop_) {
        // The publish marks and acks were not recorded: they go with the next transaction.
        toPublish_.insert(toPublish_.begin(), published.begin(), published.end());
        toAck_.insert(toAck_.begin(), acked.begin(), acked.end());
      } else {
        if (!ok && (!published.empty() || !acked.empty()))
          logger->error(
              "outbox {}: gave up recording {} publish mark(s) (those records go again) and {} "
              "ack(s)",
              options_.path, published.size(), acked.size());
        for (auto seq : published) publishing_.erase(seq);
      }
    }
    idle_.notify_all();
  }
}

// A full disk (or a failing one) shows in the lane status while it lasts: set by a failed
// transaction or a record refused for the free-disk floor, cleared by the next transaction
// that commits with the floor clear.
void Outbox::noteRefusals(bool written, const std::string& writeError) {
  std::string why;
  if (!written)
    why = "outbox write failed: " + writeError;
  else if (floorRefused_)
    why = "free disk below the floor of " + std::to_string(options_.minFreeBytes) + " bytes";
  else if (freeDiskBytes() < options_.minFreeBytes)
    return;  // nothing was refused this time, but the floor is not clear either
  std::lock_guard lock(mutex_);
  if (why == refusing_) return;
  auto logger = log::get("outbox");
  if (why.empty())
    logger->info("outbox {}: accepting again ({})", options_.path, refusing_);
  else
    logger->critical("outbox {}: new records are refused: {}", options_.path, why);
  refusing_ = std::move(why);
}

void Outbox::publishCounters() {
  evicted_ = c_.evicted;
  acksApplied_ = c_.acksApplied;
  acksRejected_ = c_.acksRejected;
}

void Outbox::applyUpdates(const std::vector<std::uint64_t>& published,
                          const std::vector<Ack>& acked) {
  const std::int64_t now = nowMs();
  if (!published.empty()) {
    // Alerts stay on record until acked; other records are done once the broker has them.
    Stmt up(db_,
            "UPDATE records SET state=?, published_ms=? WHERE seq=? AND state=0 AND kind=0 "
            "RETURNING id, parent IS NULL");
    Stmt del(db_, "DELETE FROM records WHERE seq=? AND kind<>0 RETURNING length(payload)");
    std::vector<std::string> opened;
    for (auto seq : published) {
      up.bind(1, kPublished).bind(2, now).bind(3, static_cast<std::int64_t>(seq));
      while (up.step() == SQLITE_ROW)
        if (up.i64(1) != 0) opened.push_back(up.text(0));
      up.reset();
      del.bind(1, static_cast<std::int64_t>(seq));
      while (del.step() == SQLITE_ROW) c_.payloadBytes -= static_cast<std::uint64_t>(del.i64(0));
      del.reset();
    }
    // The broker has the alert: consoles opened later learn of it from its retained state.
    for (const auto& id : opened) queueState(id, now);
  }
  // Acks held for their alert's publication (see applyAck) go first: the marks above may
  // be the ones they waited for.
  if (!published.empty() && !heldAcks_.empty()) {
    auto held = std::move(heldAcks_);
    heldAcks_.clear();
    for (const auto& [id, ack] : held) applyAck(ack, now);
  }
  for (const auto& ack : acked) applyAck(ack, now);
  closeAlerts(now - static_cast<std::int64_t>(options_.ackedRetentionS) * 1000);
}

void Outbox::saveCounters() {
  Stmt meta(db_,
            "INSERT INTO meta(key,value) VALUES(?,?) ON CONFLICT(key) DO UPDATE SET "
            "value=excluded.value");
  for (const auto& [key, value] :
       {std::pair{"next_seq", c_.nextSeq}, std::pair{"next_alert_seq", c_.nextAlertSeq},
        std::pair{"next_id_number", c_.nextIdNumber}})
    meta.bind(1, std::string(key)).bind(2, static_cast<std::int64_t>(value)).run();
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
  while (c_.payloadBytes + incoming > options_.maxBytes) {
    std::vector<std::pair<std::int64_t, std::int64_t>> victims;
    while (pick.step() == SQLITE_ROW) victims.emplace_back(pick.i64(0), pick.i64(1));
    pick.reset();
    if (victims.empty()) return;
    for (auto [seq, bytes] : victims) {
      if (c_.payloadBytes + incoming <= options_.maxBytes) break;
      del.bind(1, seq).run();
      c_.payloadBytes -= static_cast<std::uint64_t>(bytes);
      ++c_.evicted;
    }
  }
}

void Outbox::commitBatch(std::vector<Pending>& batch) {
  if (batch.empty()) return;
  auto logger = log::get("outbox");
  Stmt ins(db_,
           "INSERT INTO "
           "records(seq,id,kind,topic,content_type,payload,created_ms,parent,ack_token,event_seq) "
           "VALUES(?,?,?,?,?,?,?,?,?,?)");
  Stmt exists(db_, "SELECT 1 FROM records WHERE id=?");
  auto attachmentId = [](const std::string& id, std::size_t i) {
    return id + ":attachment" + (i == 0 ? std::string() : "." + std::to_string(i));
  };
  // True when the record's id or one of its attachments' is in the outbox already.
  auto taken = [&](const std::string& id, std::size_t attachments) {
    for (std::size_t i = 0; i <= attachments; ++i) {
      exists.bind(1, i == 0 ? id : attachmentId(id, i - 1));
      const bool found = exists.step() == SQLITE_ROW;
      exists.reset();
      if (found) return true;
    }
    return false;
  };
  const std::int64_t now = nowMs();
  const std::uint64_t freeBytes = freeDiskBytes();
  for (auto& p : batch) {
    const bool isAlert = p.draft.kind == RecordKind::alert;
    std::uint64_t size = 4096;  // an estimate of the rendered record; attachments counted exactly
    for (const auto& a : p.draft.attachments) size += a.payload.size();
    if (c_.payloadBytes + size > options_.maxBytes) evictTelemetry(size);
    std::string refusal;
    if (c_.payloadBytes + size > options_.maxBytes) {
      if (!isAlert) {
        refusal = "outbox budget of " + std::to_string(options_.maxBytes) +
                  " bytes is full of alerts; telemetry not accepted";
      } else {
        if (!diskFault_)
          logger->error(
              "outbox {}: alerts alone exceed the budget of {} bytes; accepting alerts down to the "
              "free-disk floor",
              options_.path, options_.maxBytes);
        diskFault_ = true;
      }
    } else if (diskFault_ && isAlert) {
      diskFault_ = false;
      logger->info("outbox {}: back under budget", options_.path);
    }
    if (refusal.empty() && freeBytes < options_.minFreeBytes + size) {
      refusal = "free disk below the floor of " + std::to_string(options_.minFreeBytes) +
                " bytes (" + std::to_string(freeBytes) + " bytes free)";
      floorRefused_ = true;
    }
    if (refusal.empty() && !p.draft.render) refusal = "a record with nothing to render";
    std::string id = p.draft.id;
    if (refusal.empty() && p.draft.numberedId) {
      // The counter is committed with the record. After a salvaged outbox it may lag
      // behind ids in use: those numbers are skipped.
      for (int tries = 0; tries < 1000; ++tries) {
        id = p.draft.id + "/" + std::to_string(c_.nextIdNumber++);
        if (!taken(id, p.draft.attachments.size())) break;
      }
    }
    if (refusal.empty() && taken(id, p.draft.attachments.size()))
      refusal = std::string(kIdTaken) + ": \"" + escaped(id) + "\"";
    if (!refusal.empty()) {
      logger->error("outbox {}: not accepted {}: {}", options_.path, escaped(id), refusal);
      p.error = std::move(refusal);
      continue;
    }
    RenderInfo info{0, id, isAlert ? newAckToken() : std::string()};
    for (std::size_t i = 0; i < p.draft.attachments.size(); ++i) {
      const auto& a = p.draft.attachments[i];
      ins.bind(1, static_cast<std::int64_t>(c_.nextSeq++)).bind(2, attachmentId(id, i));
      ins.bind(3, static_cast<std::int64_t>(p.draft.kind)).bind(4, a.topic).bind(5, a.contentType);
      ins.blob(6, a.payload).bind(7, now).bind(8, id).run();
      c_.payloadBytes += a.payload.size();
    }
    const std::uint64_t seq = c_.nextSeq++;
    // Alerts are numbered on their own, without gaps: a gap means a missing alert.
    info.seq = isAlert ? c_.nextAlertSeq++ : seq;
    const std::string payload = p.draft.render(info);
    ins.bind(1, static_cast<std::int64_t>(seq)).bind(2, id);
    ins.bind(3, static_cast<std::int64_t>(p.draft.kind))
        .bind(4, p.draft.topic)
        .bind(5, p.draft.contentType);
    ins.blob(6, payload).bind(7, now);
    if (isAlert) ins.bind(9, info.ackToken);
    ins.bind(10, static_cast<std::int64_t>(info.seq)).run();
    c_.payloadBytes += payload.size();
    p.seq = info.seq;
  }
  saveCounters();
}

std::vector<OutboxRecord> Outbox::nextPending(std::size_t limit,
                                              const std::set<std::uint64_t>& skip) {
  std::vector<OutboxRecord> out;
  std::set<std::uint64_t> done;
  {
    std::lock_guard lock(mutex_);
    done = publishing_;  // PUBACKed, not yet committed as published
  }
  Stmt s(reader_,
         "SELECT seq,id,kind,topic,content_type,payload,parent IS NOT NULL FROM records WHERE "
         "state=0 ORDER BY kind, seq LIMIT ?");
  s.bind(1, static_cast<std::int64_t>(limit + skip.size() + done.size()));
  while (out.size() < limit && s.step() == SQLITE_ROW) {
    const auto seq = static_cast<std::uint64_t>(s.i64(0));
    if (skip.count(seq) || done.count(seq)) continue;
    out.push_back({seq, s.text(1), static_cast<RecordKind>(s.i64(2)), s.text(3), s.text(4),
                   s.text(5), s.i64(6) != 0});
  }
  return out;
}

OutboxStats Outbox::stats(double unackedAfterS) {
  OutboxStats st;
  const std::int64_t now = nowMs();
  {
    // The retained state messages count in bytes, not as records.
    Stmt s(reader_,
           "SELECT state, SUM(NOT (kind=1 AND parent IS NOT NULL)), "
           "COALESCE(SUM(length(payload)),0) FROM records GROUP BY state");
    while (s.step() == SQLITE_ROW) {
      const auto n = static_cast<std::uint64_t>(s.i64(1));
      if (s.i64(0) == kPending)
        st.pending = n;
      else if (s.i64(0) == kPublished)
        st.published = n;
      else
        st.acked = n;
      st.payloadBytes += static_cast<std::uint64_t>(s.i64(2));
    }
  }
  {
    Stmt s(reader_,
           "SELECT MIN(created_ms) FROM records WHERE state=0 AND NOT (kind=1 AND parent IS NOT "
           "NULL)");
    if (s.step() == SQLITE_ROW && s.i64(0) > 0)  // NULL (no pending) reads as 0
      st.oldestPendingAgeS = static_cast<double>(now - s.i64(0)) / 1000.0;
  }
  {
    // Every alert, not its attachments (which are acked with it).
    Stmt s(reader_,
           "SELECT COUNT(*), MIN(published_ms) FROM records WHERE state=1 AND kind=0 AND parent IS "
           "NULL AND published_ms <= ?");
    s.bind(1, now - static_cast<std::int64_t>(unackedAfterS * 1000.0));
    if (s.step() == SQLITE_ROW) {
      st.unackedOlderThan = static_cast<std::uint64_t>(s.i64(0));
      if (st.unackedOlderThan > 0)
        st.oldestUnackedAgeS = static_cast<double>(now - s.i64(1)) / 1000.0;
    }
  }
  for (const char* suffix : {"", "-wal"}) {
    struct stat sb {};
    if (::stat((options_.path + suffix).c_str(), &sb) == 0)
      st.fileBytes += static_cast<std::uint64_t>(sb.st_size);
  }
  st.evicted = evicted_;
  st.acksApplied = acksApplied_;
  st.acksRejected = acksRejected_;
  st.diskFault = diskFault_;
  {
    std::lock_guard lock(mutex_);
    st.refusing = refusing_;
  }
  return st;
}

}  // namespace lanegate
