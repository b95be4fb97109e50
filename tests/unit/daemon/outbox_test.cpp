// The outbox against real SQLite files: durability across reopen, delivery order,
// acks, eviction under a budget, and damaged files at start.
#include "daemon/outbox.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tests/support/harness.h"

namespace lanegate {
namespace {

using test::TempDir;

RecordDraft draft(const std::string& id, RecordKind kind = RecordKind::alert, std::size_t attachmentBytes = 0) {
  RecordDraft d;
  d.id = id;
  d.kind = kind;
  d.topic = kind == RecordKind::alert ? "t/alerts" : "t/telemetry";
  d.render = [id](std::uint64_t seq) { return "{\"id\":\"" + id + "\",\"seq\":" + std::to_string(seq) + "}"; };
  if (attachmentBytes) d.attachments.push_back({"t/alerts/" + id + "/image", "image/jpeg", std::string(attachmentBytes, 'x')});
  return d;
}

struct Accepted {
  std::string error;
  std::uint64_t seq = 0;
  bool done = false;
};

// Accepts every draft at once and runs the loop until all are answered.
std::vector<Accepted> acceptAll(asio::io_context& io, Outbox& ob, std::vector<RecordDraft> drafts) {
  std::vector<Accepted> out(drafts.size());
  for (std::size_t i = 0; i < drafts.size(); ++i)
    ob.accept(std::move(drafts[i]), [&out, i](const std::string& e, std::uint64_t seq) { out[i] = {e, seq, true}; });
  io.restart();
  auto guard = asio::make_work_guard(io);  // completions come from the writer thread
  while (!std::all_of(out.begin(), out.end(), [](const Accepted& a) { return a.done; })) io.run_one();
  return out;
}

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
    EXPECT_EQ(pending[i].payload, "{\"id\":\"" + ids[i] + "\",\"seq\":" + std::to_string(i + 1) + "}");
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
  for (const auto& r : ob.nextPending(10, {})) ob.markPublished(r.seq);
  EXPECT_TRUE(ob.nextPending(10, {}).empty()) << "published records are no longer pending";
  ob.flush();
  auto st = ob.stats(0);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(st.published, 2u) << "the alert and its image stay on record; telemetry is done";
  EXPECT_EQ(st.unackedOlderThan, 1u) << "one alert (not its image) awaits the control room";
  ob.markAcked("a1");
  ob.flush();
  st = ob.stats(0);
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
  for (int i = 0; i < 20; ++i) telemetry.push_back(draft("t" + std::to_string(i), RecordKind::telemetry, 100'000));
  for (const auto& a : acceptAll(io, ob, std::move(telemetry))) EXPECT_EQ(a.error, "");
  auto st = ob.stats(0);
  EXPECT_GT(st.evicted, 0u) << "2 MB of telemetry in a 1 MiB budget";
  EXPECT_LE(st.payloadBytes, o.maxBytes);
  EXPECT_FALSE(st.diskFault);

  std::vector<RecordDraft> alerts;
  for (int i = 0; i < 30; ++i) alerts.push_back(draft("a" + std::to_string(i), RecordKind::alert, 50'000));
  for (const auto& a : acceptAll(io, ob, std::move(alerts))) EXPECT_EQ(a.error, "") << "alerts are always accepted above the floor";
  st = ob.stats(0);
  EXPECT_TRUE(st.diskFault) << "1.5 MB of alerts exceed the budget on their own";
  int alertsLeft = 0, telemetryLeft = 0;
  for (const auto& r : ob.nextPending(1000, {}))
    (r.kind == RecordKind::telemetry ? telemetryLeft : alertsLeft) += r.id.find(':') == std::string::npos;
  EXPECT_EQ(alertsLeft, 30) << "every alert survives";
  EXPECT_EQ(telemetryLeft, 0) << "all telemetry was evicted to make room";

  const auto refused = acceptAll(io, ob, {[] { return draft("t-late", RecordKind::telemetry, 10); }()});
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
  for (int i = 0; i < n; ++i) drafts.push_back(draft("a" + std::to_string(i), RecordKind::alert, 2000));
  acceptAll(io, ob, std::move(drafts));
}

std::vector<std::filesystem::path> movedAside(const TempDir& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    if (e.path().filename().string().find("outbox.db.damaged-") == 0 &&
        e.path().string().find("-wal") == std::string::npos && e.path().string().find("-shm") == std::string::npos)
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
  EXPECT_NE(ob.recoveryNote().find("recovered " + std::to_string(recovered.size()) + " record(s)"), std::string::npos)
      << ob.recoveryNote();
  for (std::size_t i = 1; i < recovered.size(); ++i) EXPECT_LT(recovered[i - 1].seq, recovered[i].seq);
  // And the fresh outbox works, continuing the sequence.
  const auto more = acceptAll(io, ob, {[] { return draft("new"); }()});
  EXPECT_EQ(more[0].error, "");
  EXPECT_GT(more[0].seq, recovered.back().seq);
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
  EXPECT_NE(ob.recoveryNote().find("recovered 0 record(s)"), std::string::npos) << ob.recoveryNote();
  const auto aside = movedAside(dir);
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(test::readFile(aside[0].string()), garbage);
  EXPECT_EQ(acceptAll(io, ob, {[] { return draft("a"); }()})[0].error, "");
}

}  // namespace
}  // namespace lanegate
