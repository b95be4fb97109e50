// The outbox against real SQLite files: durability across reopen, delivery order,
// acks, eviction under a budget, and damaged files at start.
#include "daemon/outbox.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <sqlite3.h>
#include <nlohmann/json.hpp>

#include "tests/support/harness.h"

namespace lanegate {
namespace {

using test::TempDir;

RecordDraft draft(const std::string& id, RecordKind kind = RecordKind::alert,
                  std::size_t attachmentBytes = 0) {
  RecordDraft d;
  d.id = id;
  d.kind = kind;
  d.topic = kind == RecordKind::alert ? "t/alerts" : "t/telemetry";
  d.render = [](const RenderInfo& i) {
    return nlohmann::json{{"id", i.id}, {"seq", i.seq}, {"ack_token", i.ackToken}}.dump();
  };
  if (attachmentBytes)
    d.attachments.push_back(
        {"t/alerts/" + id + "/image", "image/jpeg", std::string(attachmentBytes, 'x')});
  return d;
}

struct Accepted {
  std::string error;
  std::uint64_t seq = 0;
  bool done = false;
};

// Accepts every draft at once and runs the loop until all are answered (at most 20 s: an
// answer that never comes shows as done == false).
std::vector<Accepted> acceptAll(asio::io_context& io, Outbox& ob, std::vector<RecordDraft> drafts) {
  auto out = std::make_shared<std::vector<Accepted>>(drafts.size());
  for (std::size_t i = 0; i < drafts.size(); ++i)
    ob.accept(std::move(drafts[i]), [out, i](const std::string& e, std::uint64_t seq) {
      (*out)[i] = {e, seq, true};
    });
  io.restart();
  auto guard = asio::make_work_guard(io);  // completions come from the writer thread
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::all_of(out->begin(), out->end(), [](const Accepted& a) { return a.done; }) &&
         std::chrono::steady_clock::now() < deadline)
    io.run_one_for(std::chrono::milliseconds(50));
  return *out;
}

// The ack token an alert was rendered with (draft() puts it in the payload).
std::string tokenOf(const OutboxRecord& r) { return nlohmann::json::parse(r.payload)["ack_token"]; }

OutboxOptions options(const TempDir& dir) {
  OutboxOptions o;
  o.path = dir.file("outbox.db");
  o.minFreeBytes = 0;
  return o;
}

TEST(Outbox, AcceptedRecordsSurviveReopenInSeqOrder) {
  TempDir dir;
  asio::io_context io;
  std::vector<std::string> ids;
  {
    Outbox ob(io, options(dir));
    std::vector<RecordDraft> drafts;
    for (int i = 0; i < 200; ++i) {
      ids.push_back("a" + std::to_string(i));
      drafts.push_back(draft(ids.back()));
    }
    const auto acc = acceptAll(io, ob, std::move(drafts));
    for (std::size_t i = 0; i < acc.size(); ++i) {
      ASSERT_EQ(acc[i].error, "");
      EXPECT_EQ(acc[i].seq, i + 1) << "seq follows the order of accept";
    }
  }
  Outbox reopened(io, options(dir));
  const auto pending = reopened.nextPending(1000, {});
  ASSERT_EQ(pending.size(), 200u);
  for (std::size_t i = 0; i < pending.size(); ++i) {
    EXPECT_EQ(pending[i].id, ids[i]);
    EXPECT_EQ(pending[i].seq, i + 1);
    const auto payload = nlohmann::json::parse(pending[i].payload);
    EXPECT_EQ(payload["id"], ids[i]);
    EXPECT_EQ(payload["seq"], i + 1);
    EXPECT_EQ(payload["ack_token"].get<std::string>().size(), 32u) << "128 bits in hex";
  }
  // Seq numbers are never reused after a restart.
  const auto more = acceptAll(io, reopened, {[] { return draft("b"); }()});
  EXPECT_EQ(more[0].seq, 201u);
  EXPECT_TRUE(reopened.recoveryNote().empty());
}

TEST(Outbox, AlertsBeforeTelemetryAndImagesBeforeTheirAlert) {
  TempDir dir;
  asio::io_context io;
  Outbox ob(io, options(dir));
  std::vector<RecordDraft> drafts;
  drafts.push_back(draft("t1", RecordKind::telemetry));
  drafts.push_back(draft("a1", RecordKind::alert, 100));
  drafts.push_back(draft("t2", RecordKind::telemetry));
  drafts.push_back(draft("a2"));
  acceptAll(io, ob, std::move(drafts));
  const auto p = ob.nextPending(10, {});
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].id, "a1:attachment");
  EXPECT_EQ(p[0].topic, "t/alerts/a1/image");
  EXPECT_EQ(p[1].id, "a1");
  EXPECT_EQ(p[2].id, "a2");
  EXPECT_EQ(p[3].id, "t1");
  EXPECT_EQ(p[4].id, "t2");
  // Records in flight are skipped.
  const auto rest = ob.nextPending(10, {p[0].seq, p[1].seq});
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0].id, "a2");
}

TEST(Outbox, PublishedThenAcked) {
  TempDir dir;
  asio::io_context io;
  Outbox ob(io, options(dir));
  std::vector<RecordDraft> drafts;
  drafts.push_back(draft("a1", RecordKind::alert, 10));
  drafts.push_back(draft("t1", RecordKind::telemetry));
  acceptAll(io, ob, std::move(drafts));
  const auto records = ob.nextPending(10, {});
  for (const auto& r : records) ob.markPublished(r.seq);
  ob.flush();
  const auto after = ob.nextPending(10, {});
  ASSERT_EQ(after.size(), 1u) << "published records are no longer pending";
  EXPECT_EQ(after[0].topic, "t/alerts/a1/state") << "but the alert's retained state is";
  auto st = ob.stats(0);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.published, 2u) << "the alert and its image stay on record; telemetry is done";
  EXPECT_EQ(st.unackedOlderThan, 1u) << "one alert (not its image) awaits the control room";
  ob.markAcked("a1", tokenOf(records[1]));
  ob.flush();
  st = ob.stats(0);
  EXPECT_EQ(st.acksApplied, 1u);
  EXPECT_EQ(st.published, 0u);
  EXPECT_EQ(st.acked, 2u);
  EXPECT_EQ(st.unackedOlderThan, 0u);
}

TEST(Outbox, BudgetEvictsTelemetryNeverAlerts) {
  TempDir dir;
  asio::io_context io;
  auto o = options(dir);
  o.maxBytes = 1 << 20;  // 1 MiB
  Outbox ob(io, o);
  std::vector<RecordDraft> telemetry;
  for (int i = 0; i < 20; ++i)
    telemetry.push_back(draft("t" + std::to_string(i), RecordKind::telemetry, 100'000));
  for (const auto& a : acceptAll(io, ob, std::move(telemetry))) EXPECT_EQ(a.error, "");
  auto st = ob.stats(0);
  EXPECT_GT(st.evicted, 0u) << "2 MB of telemetry in a 1 MiB budget";
  EXPECT_LE(st.payloadBytes, o.maxBytes);
  EXPECT_FALSE(st.diskFault);

  std::vector<RecordDraft> alerts;
  for (int i = 0; i < 30; ++i)
    alerts.push_back(draft("a" + std::to_string(i), RecordKind::alert, 50'000));
  for (const auto& a : acceptAll(io, ob, std::move(alerts)))
    EXPECT_EQ(a.error, "") << "alerts are always accepted above the floor";
  st = ob.stats(0);
  EXPECT_TRUE(st.diskFault) << "1.5 MB of alerts exceed the budget on their own";
  int alertsLeft = 0, telemetryLeft = 0;
  for (const auto& r : ob.nextPending(1000, {}))
    (r.kind == RecordKind::telemetry ? telemetryLeft : alertsLeft) +=
        r.id.find(':') == std::string::npos;
  EXPECT_EQ(alertsLeft, 30) << "every alert survives";
  EXPECT_EQ(telemetryLeft, 0) << "all telemetry was evicted to make room";

  const auto refused =
      acceptAll(io, ob, {[] { return draft("t-late", RecordKind::telemetry, 10); }()});
  EXPECT_NE(refused[0].error.find("telemetry not accepted"), std::string::npos) << refused[0].error;
}

TEST(Outbox, FreeDiskFloorRefusesInsteadOfDropping) {
  TempDir dir;
  asio::io_context io;
  auto o = options(dir);
  o.minFreeBytes = 1ull << 60;  // more than any disk
  Outbox ob(io, o);
  const auto r = acceptAll(io, ob, {[] { return draft("a"); }()});
  EXPECT_NE(r[0].error.find("free disk below the floor"), std::string::npos) << r[0].error;
  EXPECT_TRUE(ob.nextPending(10, {}).empty());
}

// Fills an outbox with `n` alerts and closes it.
void fill(const TempDir& dir, int n) {
  asio::io_context io;
  Outbox ob(io, options(dir));
  std::vector<RecordDraft> drafts;
  for (int i = 0; i < n; ++i)
    drafts.push_back(draft("a" + std::to_string(i), RecordKind::alert, 2000));
  acceptAll(io, ob, std::move(drafts));
}

std::vector<std::filesystem::path> movedAside(const TempDir& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string().find("outbox.db.damaged-") == 0 &&
        e.path().string().find("-wal") == std::string::npos &&
        e.path().string().find("-shm") == std::string::npos)
      out.push_back(e.path());
  return out;
}

TEST(Outbox, TruncatedFileIsMovedAsideAndReadableRecordsRecovered) {
  TempDir dir;
  fill(dir, 300);
  const auto path = dir.file("outbox.db");
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  const auto truncated = test::readFile(path);

  asio::io_context io;
  Outbox ob(io, options(dir));
  EXPECT_NE(ob.recoveryNote().find("was damaged"), std::string::npos) << ob.recoveryNote();
  const auto aside = movedAside(dir);
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(test::readFile(aside[0].string()), truncated) << "the damaged file is kept as it was";
  const auto recovered = ob.nextPending(1000, {});
  EXPECT_GT(recovered.size(), 0u) << ob.recoveryNote();
  EXPECT_LT(recovered.size(), 600u);
  EXPECT_NE(ob.recoveryNote().find("recovered " + std::to_string(recovered.size()) + " record(s)"),
            std::string::npos)
      << ob.recoveryNote();
  for (std::size_t i = 1; i < recovered.size(); ++i)
    EXPECT_LT(recovered[i - 1].seq, recovered[i].seq);
  // And the fresh outbox works, continuing the sequence.
  const auto more = acceptAll(io, ob, {[] { return draft("new"); }()});
  EXPECT_EQ(more[0].error, "");
  std::uint64_t lastAlertSeq = 0;
  for (const auto& r : recovered)
    if (r.id.find(":attachment") == std::string::npos)
      lastAlertSeq = std::max<std::uint64_t>(lastAlertSeq, nlohmann::json::parse(r.payload)["seq"]);
  EXPECT_EQ(more[0].seq, lastAlertSeq + 1) << "alert numbers continue after the recovered ones";
}

// A file SQLite calls sound can still refuse every write when its tables are not ours (a
// hand edit, or the fuzzer's mutated page: records without acked_ms). Such an outbox is
// damaged like any other: moved aside, its rows salvaged, and new alerts accepted.
TEST(Outbox, TablesThatAreNotOursAreMovedAsideAndTheirRowsSalvaged) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"a column gone", "ALTER TABLE records DROP COLUMN acked_ms"},
      {"a column we never fill",
       "ALTER TABLE records ADD COLUMN extra TEXT NOT NULL DEFAULT 'x'; "
       "CREATE TABLE t(x); DROP TABLE t"},
      {"a trigger",
       "CREATE TRIGGER no_more BEFORE INSERT ON records BEGIN "
       "SELECT RAISE(ABORT, 'no'); END"},
      {"a unique index", "CREATE UNIQUE INDEX by_topic ON records(topic, seq)"}};
  for (const auto& [what, sql] : edits) {
    SCOPED_TRACE(what);
    TempDir dir;
    fill(dir, 3);
    {
      sqlite3* db = nullptr;
      ASSERT_EQ(sqlite3_open(dir.file("outbox.db").c_str(), &db), SQLITE_OK);
      char* err = nullptr;
      EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
          << (err ? err : "");
      sqlite3_free(err);
      sqlite3_close(db);
    }
    asio::io_context io;
    Outbox ob(io, options(dir));
    const bool damaged = ob.recoveryNote().find("was damaged (schema") != std::string::npos;
    // The column we never fill has a default: that outbox is still ours to write.
    if (what == "a column we never fill") {
      EXPECT_FALSE(damaged) << ob.recoveryNote();
    } else {
      EXPECT_TRUE(damaged) << ob.recoveryNote();
      EXPECT_EQ(movedAside(dir).size(), 1u);
    }
    EXPECT_EQ(ob.nextPending(100, {}).size(), 6u)
        << "three alerts and their images; " << ob.recoveryNote();
    const auto more = acceptAll(io, ob, {draft("new")});
    EXPECT_EQ(more[0].error, "");
    EXPECT_EQ(more[0].seq, 4u) << "alert numbers continue after the recovered ones";
  }
}

TEST(Outbox, GarbageFileIsMovedAsideNotOverwritten) {
  TempDir dir;
  std::string garbage(65536, '\0');
  std::mt19937 rng(7);
  for (auto& c : garbage) c = static_cast<char>(rng());
  test::writeFile(dir.file("outbox.db"), garbage);
  asio::io_context io;
  Outbox ob(io, options(dir));
  EXPECT_NE(ob.recoveryNote().find("was damaged"), std::string::npos);
  EXPECT_NE(ob.recoveryNote().find("recovered 0 record(s)"), std::string::npos)
      << ob.recoveryNote();
  const auto aside = movedAside(dir);
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(test::readFile(aside[0].string()), garbage);
  EXPECT_EQ(acceptAll(io, ob, {[] { return draft("a"); }()})[0].error, "");
}

// Publishes everything pending and waits until it is recorded.
std::vector<OutboxRecord> publishAll(Outbox& ob) {
  auto records = ob.nextPending(1000, {});
  for (const auto& r : records) ob.markPublished(r.seq);
  ob.flush();
  return records;
}

const OutboxRecord& byId(const std::vector<OutboxRecord>& records, const std::string& id) {
  static const OutboxRecord none;
  for (const auto& r : records)
    if (r.id == id) return r;
  ADD_FAILURE() << "no record " << id;
  return none;
}

// Acceptance 2 (issue 13): an ack counts only for a published alert named by its exact id
// and carrying the token that alert carried.
TEST(Outbox, AckNeedsTheExactIdOfAPublishedAlertAndItsToken) {
  TempDir dir;
  asio::io_context io;
  Outbox ob(io, options(dir));
  acceptAll(io, ob,
            {draft("xray:s:l:x1:scan-1", RecordKind::alert, 100), draft("xray:s:l:x1:scan-2")});
  const auto published = publishAll(ob);
  acceptAll(io, ob, {draft("xray:s:l:x1:scan-3")});  // pending: not published
  auto pending = ob.nextPending(10, {});
  ASSERT_EQ(pending.size(), 3u) << "scan-3, and the states of scan-1 and scan-2";
  pending.resize(1);  // alerts first
  ASSERT_EQ(pending[0].id, "xray:s:l:x1:scan-3");
  const std::string token1 = tokenOf(byId(published, "xray:s:l:x1:scan-1"));
  const std::string token2 = tokenOf(byId(published, "xray:s:l:x1:scan-2"));
  EXPECT_NE(token1, token2);

  ob.markAcked("xray", token1);                              // a prefix of every id
  ob.markAcked("xray:s:l:x1:scan-", token1);                 // a longer prefix
  ob.markAcked("xray:s:l:x1:scan-1", token2);                // another alert's token
  ob.markAcked("xray:s:l:x1:scan-1", "");                    // no token
  ob.markAcked("xray:s:l:x1:scan-1", std::string(32, '0'));  // a wrong token
  ob.markAcked("xray:s:l:x1:scan-9", token1);                // unknown id
  ob.markAcked("xray:s:l:x1:scan-1:attachment", token1);     // its image, not an alert
  ob.markAcked("xray:s:l:x1:scan-3", tokenOf(pending[0]));   // right token, but pending: held
  ob.markAcked(std::string("\xff\xfe\x00x", 4), token1);     // not even text
  ob.flush();
  auto st = ob.stats(0);
  EXPECT_EQ(st.acksRejected, 8u);
  EXPECT_EQ(st.acksApplied, 0u);
  EXPECT_EQ(st.acked, 0u) << "nothing acknowledged";
  EXPECT_EQ(st.published, 3u) << "two alerts and one image";
  EXPECT_EQ(st.pending, 1u) << "the pending alert is still to be sent";
  EXPECT_EQ(st.unackedOlderThan, 2u);

  ob.markAcked("xray:s:l:x1:scan-1", token1);
  ob.flush();
  st = ob.stats(0);
  EXPECT_EQ(st.acksApplied, 1u);
  EXPECT_EQ(st.acked, 2u) << "exactly that alert, with its image";
  EXPECT_EQ(st.published, 1u) << "scan-2 is still awaited";
  EXPECT_EQ(st.pending, 1u);
  ob.markAcked("xray:s:l:x1:scan-1", token1);  // a repeat changes nothing and is no forgery
  ob.flush();
  EXPECT_EQ(ob.stats(0).acksRejected, 8u);
  EXPECT_EQ(ob.stats(0).acked, 2u);

  // The held ack applies once scan-3's publication is recorded (its token proved that the
  // control room had it: a publication whose PUBACK a stop or a crash kept from the record).
  ob.markPublished(pending[0].seq);
  ob.flush();
  st = ob.stats(0);
  EXPECT_EQ(st.acksApplied, 2u);
  EXPECT_EQ(st.acked, 3u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.acksRejected, 8u);
}

// Contract 5 v1.1, the alert's retained state: open once the broker has the alert (with
// the alert in it), acked by the first valid ack, later acks kept as notes, and on
// closing (acked retention) empty retained messages that clear the image and the state.
TEST(Outbox, AlertStateIsOpenThenAckedWithNotesThenCleared) {
  TempDir dir;
  asio::io_context io;
  auto o = options(dir);
  o.ackedRetentionS = 1;
  Outbox ob(io, o);
  acceptAll(io, ob, {draft("trace:s/l/ims-1/5/1", RecordKind::alert, 100)});
  const auto first = publishAll(ob);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_TRUE(first[0].retained) << "the image is retained until the alert closes";
  EXPECT_FALSE(first[1].retained) << "the alert itself is not";
  const std::string token = tokenOf(first[1]);

  auto opened = publishAll(ob);
  ASSERT_EQ(opened.size(), 1u);
  EXPECT_TRUE(opened[0].retained);
  EXPECT_EQ(opened[0].topic, "t/alerts/trace:s%2Fl%2Fims-1%2F5%2F1/state") << "one topic level";
  EXPECT_EQ(opened[0].contentType, "application/json");
  auto state = nlohmann::json::parse(opened[0].payload);
  EXPECT_EQ(state["state"], "open");
  EXPECT_EQ(state["alert"], nlohmann::json::parse(first[1].payload)) << "the alert as published";
  EXPECT_FALSE(state.contains("by"));

  ob.markAcked("trace:s/l/ims-1/5/1", token, {"op-1", "seized"});
  ob.markAcked("trace:s/l/ims-1/5/1", token, {"op-2", "cleared"});     // too late: a note
  ob.markAcked("trace:s/l/ims-1/5/1", "0123", {"forger", "cleared"});  // wrong token
  ob.flush();
  auto acked = publishAll(ob);
  ASSERT_EQ(acked.size(), 1u) << "the newest state supersedes one not yet sent";
  state = nlohmann::json::parse(acked[0].payload);
  EXPECT_EQ(state["state"], "acked");
  EXPECT_EQ(state["by"], "op-1") << "the first ack wins";
  EXPECT_EQ(state["disposition"], "seized");
  ASSERT_EQ(state["notes"].size(), 1u);
  EXPECT_EQ(state["notes"][0]["by"], "op-2");
  EXPECT_EQ(state["notes"][0]["disposition"], "cleared");
  EXPECT_EQ(state["alert"]["id"], "trace:s/l/ims-1/5/1");
  EXPECT_EQ(ob.stats(0).acksApplied, 1u);
  EXPECT_EQ(ob.stats(0).acksRejected, 1u);
  EXPECT_EQ(ob.stats(0).acked, 2u) << "the alert and its image; the state is not counted";

  // Later acks beyond the bound are counted on the state, not published again.
  for (std::size_t i = 0; i < Outbox::kMaxAckNotes + 5; ++i)
    ob.markAcked("trace:s/l/ims-1/5/1", token, {"op-3", ""});
  ob.flush();
  const auto notes = publishAll(ob);
  ASSERT_FALSE(notes.empty());
  state = nlohmann::json::parse(notes.back().payload);
  EXPECT_EQ(state["notes"].size(), Outbox::kMaxAckNotes);
  EXPECT_TRUE(state["notes"].back()["disposition"].is_null());

  // Past the acked retention the alert closes: its image and state topics are cleared.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  acceptAll(io, ob, {draft("t-wake", RecordKind::telemetry)});  // any transaction closes
  std::vector<std::string> cleared;
  for (const auto& r : publishAll(ob))
    if (r.retained) {
      EXPECT_EQ(r.payload, "") << r.topic;
      cleared.push_back(r.topic);
    }
  EXPECT_EQ(cleared, (std::vector<std::string>{"t/alerts/trace:s/l/ims-1/5/1/image",
                                               "t/alerts/trace:s%2Fl%2Fims-1%2F5%2F1/state"}));
  EXPECT_EQ(ob.stats(0).acked, 0u);
  EXPECT_TRUE(ob.nextPending(10, {}).empty()) << "the clearing messages are done once sent";
}

TEST(Outbox, UnackedCountCoversAlertsWhoseIdHasAColon) {
  TempDir dir;
  asio::io_context io;
  Outbox ob(io, options(dir));
  acceptAll(
      io, ob,
      {draft("xray:s:l:x1:scan-1", RecordKind::alert, 10), draft("trace:s/l/ims-1/1700000000/4")});
  publishAll(ob);
  EXPECT_EQ(ob.stats(0).unackedOlderThan, 2u) << "every published alert, none of the images";
}

TEST(Outbox, RepeatedIdIsRefusedToItsCaller) {
  TempDir dir;
  asio::io_context io;
  Outbox ob(io, options(dir));
  ASSERT_EQ(acceptAll(io, ob, {draft("a1")})[0].error, "");
  const auto again = acceptAll(io, ob, {draft("a1"), draft("a2")});
  EXPECT_NE(again[0].error.find("already in the outbox"), std::string::npos) << again[0].error;
  EXPECT_EQ(again[1].error, "") << "the rest of the batch is accepted";
  EXPECT_EQ(again[1].seq, 2u) << "a refused alert takes no number";
  EXPECT_EQ(ob.nextPending(10, {}).size(), 2u);
}

TEST(Outbox, NumberedIdsCarryACounterKeptAcrossRestarts) {
  TempDir dir;
  asio::io_context io;
  auto numbered = [] {
    auto d = draft("trace:s/l/ims-1/0/7");  // a detector whose clock was reset: same time, same seq
    d.numberedId = true;
    return d;
  };
  {
    Outbox ob(io, options(dir));
    for (const auto& a : acceptAll(io, ob, {numbered(), numbered()})) EXPECT_EQ(a.error, "");
  }
  Outbox ob(io, options(dir));
  EXPECT_EQ(acceptAll(io, ob, {numbered()})[0].error, "");
  std::vector<std::string> ids;
  for (const auto& r : ob.nextPending(10, {})) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"trace:s/l/ims-1/0/7/1", "trace:s/l/ims-1/0/7/2",
                                           "trace:s/l/ims-1/0/7/3"}));
  EXPECT_EQ(nlohmann::json::parse(ob.nextPending(10, {})[2].payload)["id"], "trace:s/l/ims-1/0/7/3")
      << "the payload is rendered with the final id";
}

TEST(Outbox, AlertSeqHasNoGapsWithTelemetryInterleavedAndSurvivesRestart) {
  TempDir dir;
  asio::io_context io;
  {
    Outbox ob(io, options(dir));
    const auto a = acceptAll(
        io, ob,
        {draft("a1", RecordKind::alert, 10), draft("t1", RecordKind::telemetry), draft("a2"),
         draft("t2", RecordKind::telemetry), draft("a3", RecordKind::alert, 10)});
    EXPECT_EQ(a[0].seq, 1u);
    EXPECT_EQ(a[2].seq, 2u);
    EXPECT_EQ(a[4].seq, 3u);
  }
  Outbox ob(io, options(dir));
  const auto a = acceptAll(io, ob, {draft("t3", RecordKind::telemetry), draft("a4")});
  EXPECT_EQ(a[1].seq, 4u);
  std::vector<std::uint64_t> alertSeqs;
  for (const auto& r : ob.nextPending(100, {}))
    if (r.kind == RecordKind::alert && r.id.find(":attachment") == std::string::npos)
      alertSeqs.push_back(nlohmann::json::parse(r.payload)["seq"]);
  EXPECT_EQ(alertSeqs, (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST(Outbox, SessionGrowsByOnePerStart) {
  TempDir dir;
  asio::io_context io;
  std::uint64_t first = 0;
  {
    Outbox ob(io, options(dir));
    first = ob.session();
    EXPECT_EQ(first, 1u);
  }
  Outbox ob(io, options(dir));
  EXPECT_EQ(ob.session(), first + 1);
}

// Accepts a draft whose rendering takes a while, so that what is accepted meanwhile goes
// into the next group commit, together.
RecordDraft slow(const std::string& id) {
  auto d = draft(id);
  auto render = d.render;
  d.render = [render](const RenderInfo& i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return render(i);
  };
  return d;
}

// A batch that fails part-way (here SQLite's page cap stands for a full disk): every
// caller in it hears of the failure, and the numbers it had taken are given back.
TEST(Outbox, BatchFailingPartWayAnswersEveryCallerAndRollsBackItsNumbers) {
  TempDir dir;
  asio::io_context io;
  auto o = options(dir);
  o.maxPages = 64;  // 256 KiB with 4 KiB pages
  Outbox ob(io, o);
  Accepted first;
  ob.accept(slow("first"), [&first](const std::string& e, std::uint64_t seq) {
    first = {e, seq, true};
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the writer is rendering it
  std::vector<RecordDraft> drafts;
  drafts.push_back(draft("small"));                             // fits, written first...
  drafts.push_back(draft("huge", RecordKind::alert, 1 << 20));  // ...then this one fails
  const auto r = acceptAll(io, ob, std::move(drafts));
  while (!first.done) io.run_one_for(std::chrono::milliseconds(50));
  EXPECT_EQ(first.error, "");
  EXPECT_EQ(first.seq, 1u);
  ASSERT_TRUE(r[0].done) << "the callback of a record written before the failure was dropped";
  ASSERT_TRUE(r[1].done);
  EXPECT_NE(r[0].error.find("outbox write failed"), std::string::npos) << r[0].error;
  EXPECT_NE(r[1].error.find("outbox write failed"), std::string::npos) << r[1].error;
  const auto next = acceptAll(io, ob, {draft("after")});
  EXPECT_EQ(next[0].error, "");
  EXPECT_EQ(next[0].seq, 2u) << "the rolled-back batch's numbers are reused: no gap in alert seq";
  const auto pending = ob.nextPending(10, {});
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[1].seq, 2u) << "the record numbers follow the rollback too";
}

// A version 0 outbox (before ids were unique and acks needed tokens) is migrated in place.
TEST(Outbox, VersionZeroOutboxIsMigrated) {
  TempDir dir;
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(dir.file("outbox.db").c_str(), &db), SQLITE_OK);
    const char* sql = R"(
      CREATE TABLE records(seq INTEGER PRIMARY KEY, id TEXT NOT NULL, kind INTEGER NOT NULL,
        topic TEXT NOT NULL, content_type TEXT NOT NULL, payload BLOB NOT NULL,
        created_ms INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, published_ms INTEGER, acked_ms INTEGER);
      CREATE INDEX records_delivery ON records(state, kind, seq);
      CREATE INDEX records_id ON records(id);
      CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO records VALUES(1,'x:attachment',0,'t/img','image/jpeg','jpg',1,1,1,NULL);
      INSERT INTO records VALUES(2,'x',0,'t/alerts','a','{}',1,1,1,NULL);
      INSERT INTO records VALUES(3,'dup',0,'t/alerts','a','{}',1,0,NULL,NULL);
      INSERT INTO records VALUES(4,'dup',0,'t/alerts','a','{}',1,0,NULL,NULL);
      INSERT INTO meta VALUES('next_seq', 9);)";
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  asio::io_context io;
  Outbox ob(io, options(dir));
  EXPECT_TRUE(ob.recoveryNote().empty()) << ob.recoveryNote();
  auto st = ob.stats(0);
  EXPECT_EQ(st.pending, 2u) << "both copies of a repeated id are kept";
  EXPECT_EQ(st.unackedOlderThan, 1u) << "x, not its image";
  ob.markAcked("x", "");  // an alert from before tokens is acked by its exact id
  ob.flush();
  st = ob.stats(0);
  EXPECT_EQ(st.acked, 2u) << "x and its image";
  const auto a = acceptAll(io, ob, {draft("new")});
  EXPECT_EQ(a[0].seq, 9u) << "alert numbers continue above the old shared ones";
}

}  // namespace
}  // namespace lanegate
