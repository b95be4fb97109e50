// The outbox's acks and alert states: an ack applied to exactly one published alert (the
// first wins, later ones are notes), held while its alert's publication is unrecorded, and
// each alert's retained state queued as a record of its own until the alert closes.
#include <nlohmann/json.hpp>

#include "daemon/alert_ids.h"
#include "daemon/log.h"
#include "daemon/outbox.h"
#include "daemon/outbox_sql.h"
#include "lane/payloads.h"

namespace lanegate {

using namespace outbox_sql;

namespace {
constexpr int kAckLogsPerMinute = 10;
// Acks that wait for their alert's (re)publication to be recorded, at most.
constexpr std::size_t kMaxHeldAcks = 10'000;
}  // namespace

void Outbox::queueState(const std::string& alertId, std::int64_t now) {
  Stmt alert(
      db_, "SELECT topic, payload, ack_info FROM records WHERE id=? AND kind=0 AND parent IS NULL");
  alert.bind(1, alertId);
  if (alert.step() != SQLITE_ROW) return;
  const std::string topic = alert.text(0) + "/" + alertTopicLevel(alertId) + "/state";
  nlohmann::json state;
  if (alert.isNull(2)) {
    state = {{"state", "open"}, {"time", lane::rfc3339(timeOfMs(now))}};
  } else {
    state = nlohmann::json::parse(alert.text(2), nullptr, false);
    if (!state.is_object()) state = nlohmann::json::object();
    state["state"] = "acked";
    // An ack recorded without its details (a salvaged outbox): when is all we can say.
    if (!state.contains("time")) state["time"] = lane::rfc3339(timeOfMs(now));
  }
  // The alert is our own CloudEvent, already JSON: it goes in as it was published.
  std::string payload = lane::dumpJson(state);
  payload.pop_back();
  payload += ",\"alert\":" + alert.text(1) + "}";
  alert.reset();
  // A newer state supersedes one not yet sent (one in flight may still arrive first).
  Stmt old(db_,
           "DELETE FROM records WHERE parent=? AND kind=? AND state=0 RETURNING length(payload)");
  old.bind(1, alertId).bind(2, kStateKind);
  while (old.step() == SQLITE_ROW) c_.payloadBytes -= static_cast<std::uint64_t>(old.i64(0));
  old.reset();
  const std::uint64_t seq = c_.nextSeq++;
  Stmt ins(db_,
           "INSERT INTO records(seq,id,kind,topic,content_type,payload,created_ms,parent) "
           "VALUES(?,?,?,?,'application/json',?,?,?)");
  ins.bind(1, static_cast<std::int64_t>(seq)).bind(2, alertId + ":state." + std::to_string(seq));
  ins.bind(3, kStateKind).bind(4, topic).blob(5, payload).bind(6, now).bind(7, alertId).run();
  c_.payloadBytes += payload.size();
  newRecords_ = true;
  saveCounters();
}

void Outbox::closeAlerts(std::int64_t ackedBefore) {
  // An acked alert past its retention leaves the outbox, and the broker forgets its image
  // and state: an empty retained message on each (itself a record, so a crash loses none).
  std::vector<std::pair<std::string, std::string>> closing;  // id, alert topic
  {
    Stmt pick(db_,
              "SELECT id, topic FROM records WHERE state=2 AND kind=0 AND parent IS NULL AND "
              "acked_ms < ? LIMIT 256");
    pick.bind(1, ackedBefore);
    while (pick.step() == SQLITE_ROW) closing.emplace_back(pick.text(0), pick.text(1));
  }
  if (!closing.empty()) {
    Stmt kids(db_, "SELECT topic FROM records WHERE parent=? AND kind=0");
    Stmt del(db_, "DELETE FROM records WHERE id=?1 OR parent=?1 RETURNING length(payload)");
    Stmt ins(db_,
             "INSERT INTO records(seq,id,kind,topic,content_type,payload,created_ms,parent) "
             "VALUES(?,?,?,?,'',x'',?,?)");
    const std::int64_t now = nowMs();
    for (const auto& [id, alertTopic] : closing) {
      std::vector<std::string> topics;
      kids.bind(1, id);
      while (kids.step() == SQLITE_ROW) topics.push_back(kids.text(0));
      kids.reset();
      topics.push_back(alertTopic + "/" + alertTopicLevel(id) + "/state");
      del.bind(1, id);
      while (del.step() == SQLITE_ROW) c_.payloadBytes -= static_cast<std::uint64_t>(del.i64(0));
      del.reset();
      for (const auto& topic : topics) {
        const std::uint64_t seq = c_.nextSeq++;
        ins.bind(1, static_cast<std::int64_t>(seq)).bind(2, id + ":clear." + std::to_string(seq));
        ins.bind(3, kStateKind).bind(4, topic).bind(5, now).bind(6, id).run();
        newRecords_ = true;
      }
    }
    saveCounters();
  }
  // Acked records no alert links (attachments of the first outboxes): plain retention.
  Stmt old(db_,
           "DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE state=2 AND acked_ms "
           "< ? LIMIT 256) RETURNING length(payload)");
  old.bind(1, ackedBefore);
  while (old.step() == SQLITE_ROW) c_.payloadBytes -= static_cast<std::uint64_t>(old.i64(0));
}

void Outbox::applyAck(const Ack& ack, std::int64_t now) {
  // Exactly one alert, by its exact id (never a prefix, never an attachment).
  Stmt find(db_,
            "SELECT state, ack_token, ack_info FROM records WHERE id=? AND kind=0 AND parent IS "
            "NULL");
  find.bind(1, ack.id);
  if (find.step() != SQLITE_ROW) return rejectAck(ack, "no alert has this id");
  const auto state = find.i64(0);
  if (state == kPending) {
    // Its token proves the control room received it: it was published, by this start or
    // one before it, and the daemon stopped (or was killed) before the PUBACK was recorded.
    // It is sent again (a duplicate, with the same id); the ack waits until that is
    // recorded, so that an alert never counts as acked before it is on record as sent.
    if (find.isNull(1) || !sameToken(find.text(1), ack.token))
      return rejectAck(ack, "the alert has not been published yet");
    if (heldAcks_.size() >= kMaxHeldAcks && !heldAcks_.count(ack.id))
      return rejectAck(ack, "the alert has not been published yet, and too many acks wait");
    heldAcks_[ack.id] = ack;
    if (heldAcks_.size() <= 10)
      log::get("outbox")->info(
          "ack for \"{}\" waits until the alert is published again (its earlier publication was "
          "not recorded)",
          escaped(ack.id));
    return;
  }
  // Alerts accepted before version 2 carried no token: their exact id is all there is.
  if (!find.isNull(1) && !sameToken(find.text(1), ack.token))
    return rejectAck(ack, "wrong ack_token");
  nlohmann::json entry{{"time", lane::rfc3339(timeOfMs(now))}};
  entry["by"] = ack.detail.by.empty() ? nlohmann::json() : nlohmann::json(ack.detail.by);
  entry["disposition"] =
      ack.detail.disposition.empty() ? nlohmann::json() : nlohmann::json(ack.detail.disposition);
  nlohmann::json info;
  if (state == kAcked) {
    // The first ack won; a later one is kept as a note on the state, up to a bound.
    info = find.isNull(2) ? nlohmann::json::object()
                          : nlohmann::json::parse(find.text(2), nullptr, false);
    if (!info.is_object()) info = nlohmann::json::object();
    auto& notes = info["notes"];
    if (!notes.is_array()) notes = nlohmann::json::array();
    const bool kept = notes.size() < kMaxAckNotes;
    if (!kept) {
      info["notes_dropped"] = info.value("notes_dropped", 0) + 1;
      log::get("outbox")->debug("alert {}: a later ack beyond {} notes is only counted",
                                escaped(ack.id), kMaxAckNotes);
    } else {
      notes.push_back(entry);
      log::get("outbox")->info("alert {} was already acknowledged; a later ack is kept as a note",
                               escaped(ack.id));
    }
    find.reset();
    Stmt note(db_, "UPDATE records SET ack_info=? WHERE id=? AND kind=0 AND parent IS NULL");
    note.bind(1, lane::dumpJson(info)).bind(2, ack.id).run();
    if (kept) queueState(ack.id, now);
    return;
  }
  find.reset();
  info = entry;
  Stmt up(db_,
          "UPDATE records SET state=2, acked_ms=?1, published_ms=COALESCE(published_ms, ?1) "
          "WHERE (id=?2 OR parent=?2) AND kind=0");
  up.bind(1, now).bind(2, ack.id).run();
  Stmt first(db_, "UPDATE records SET ack_info=? WHERE id=? AND kind=0 AND parent IS NULL");
  first.bind(1, lane::dumpJson(info)).bind(2, ack.id).run();
  ++c_.acksApplied;
  queueState(ack.id, now);
}

void Outbox::rejectAck(const Ack& ack, const char* why) {
  ++c_.acksRejected;
  // Anyone who may publish on the acks topic can send these: log a bounded number.
  const auto now = std::chrono::steady_clock::now();
  auto logger = log::get("outbox");
  if (now - ackLogWindow_ >= std::chrono::minutes(1)) {
    if (ackLogsSuppressed_ > 0)
      logger->warn("{} more ack(s) ignored in the last minute were not logged", ackLogsSuppressed_);
    ackLogWindow_ = now;
    ackLogsInWindow_ = ackLogsSuppressed_ = 0;
  }
  if (ackLogsInWindow_++ < kAckLogsPerMinute)
    logger->warn("ignored an ack for \"{}\": {}", escaped(ack.id), why);
  else
    ++ackLogsSuppressed_;
}
}  // namespace lanegate
