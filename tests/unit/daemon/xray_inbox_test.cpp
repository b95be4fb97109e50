// The X-ray inbox: bundles present at start and bundles arriving later are analysed by
// the real vision module; a scan the analysis does not clear becomes one alert whose image is
// stored with it, whose hashes match the files, and whose id comes from the scan id; a clear scan
// raises nothing; a garbage bundle goes to rejected/ with its reason and the next one is analysed;
// a bundle whose alert was not made durable stays in the inbox.
#include "daemon/xray_inbox.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <opencv2/core.hpp>

#include "lane/conveyance.h"
#include "lane/sha256.h"
#include "tests/support/harness.h"
#include "tests/unit/lane/lane_test_support.h"
#include "vision/analysis.h"
#include "vision/decode.h"
#include "vision/phantom.h"

namespace lanegate::test {
namespace {

namespace fs = std::filesystem;

// Records what the lane accepts; answers like the outbox (or with `refuse`).
class RecordingSink : public AlertSink {
 public:
  void accept(RecordDraft draft, AcceptDone done) override {
    if (!refuse.empty()) {
      ++refused;
      done(refuse, 0);
      return;
    }
    payloads.push_back(draft.render(
        RenderInfo{++seq, draft.id,
                   draft.kind == RecordKind::alert ? "00112233445566778899aabbccddeeff" : ""}));
    drafts.push_back(std::move(draft));
    done("", seq);
  }
  std::vector<RecordDraft> drafts;
  std::vector<std::string> payloads;
  std::string refuse;
  int refused = 0;
  std::uint64_t seq = 0;
};

lane::LaneIdentity identity() { return {"s1", "l1"}; }

using lane::sha256Hex;

using lane::test::phantomWith;

class XrayInboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(inbox());
    fs::create_directories(state());
  }
  std::string inbox() const { return dir_.file("inbox"); }
  std::string state() const { return dir_.file("state"); }
  std::unique_ptr<XrayInbox> lane(int workers = 1) {
    XrayInboxOptions o;
    o.device = "xray-1";
    o.inbox = inbox();
    o.stateDir = state();
    o.workers = workers;
    auto l = std::make_unique<XrayInbox>(io_, o, sink_, identity());
    EXPECT_EQ(l->start(), "");
    return l;
  }
  void write(const vision::Phantom& p) {
    ASSERT_TRUE(vision::writeBundle(p.bundle, inbox()).has_value());
  }
  bool runUntil(const std::function<bool()>& done,
                std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(20));
    }
    return done();
  }
  bool exists(const std::string& p) const { return fs::exists(p); }

  TempDir dir_;
  asio::io_context io_;
  RecordingSink sink_;
};

TEST(Sha256, KnownVectors) {
  // FIPS 180-2 examples.
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Phantom, GeneratedContainerNumbersPassTheIso6346Check) {
  vision::PhantomOptions o;
  o.pixelMm = 40;
  int containers = 0;
  for (int i = 0; i < 30; ++i) {
    const auto p = vision::generatePhantom(5, i, o);
    for (const auto& id : p.bundle.meta.conveyance.ids) {
      ++containers;
      EXPECT_TRUE(lane::checkContainerNumber(id).valid)
          << id << ": " << lane::checkContainerNumber(id).problem;
    }
  }
  EXPECT_GT(containers, 0);
}

TEST_F(XrayInboxTest, ABundlePresentAtStartBecomesOneAlertWithItsImage) {
  const auto p = phantomWith(true, "scan-0001");
  write(p);
  const std::string tiffBytes = readFile(inbox() + "/scan-0001.tiff");
  const std::string jsonBytes = readFile(inbox() + "/scan-0001.json");
  auto l = lane();
  ASSERT_TRUE(
      runUntil([&] { return sink_.drafts.size() == 1 && !exists(inbox() + "/scan-0001.json"); }));
  const auto& d = sink_.drafts[0];
  EXPECT_EQ(d.id, "xray:s1:l1:xray-1:scan-0001");
  EXPECT_EQ(d.id, lane::xrayAlertId(identity(), "xray-1", "scan-0001"));
  EXPECT_EQ(d.topic, "lanegate/v1/s1/l1/alerts");
  ASSERT_EQ(d.attachments.size(), 1u);
  EXPECT_EQ(d.attachments[0].topic, "lanegate/v1/s1/l1/alerts/" + d.id + "/image");
  EXPECT_EQ(d.attachments[0].contentType, "image/jpeg");
  EXPECT_EQ(d.attachments[0].payload.substr(0, 2), "\xFF\xD8") << "a JPEG";

  const auto event = nlohmann::json::parse(sink_.payloads[0]);
  EXPECT_EQ(event["type"], "org.lanegate.xray.hit");
  EXPECT_EQ(event["id"], d.id);
  EXPECT_EQ(event["source"], "lanegate://s1/l1/xray-1");
  const auto& data = event["data"];
  EXPECT_EQ(data["scan_id"], "scan-0001");
  EXPECT_FALSE(data["findings"].empty());
  EXPECT_EQ(data["image"]["sha256"], sha256Hex(d.attachments[0].payload));
  EXPECT_EQ(data["image"]["bytes"], d.attachments[0].payload.size());
  EXPECT_EQ(data["evidence"]["tiff_sha256"], sha256Hex(tiffBytes));
  EXPECT_EQ(data["evidence"]["json_sha256"], sha256Hex(jsonBytes));
  EXPECT_EQ(data["conveyance"]["kind"], p.bundle.meta.conveyance.kind);
  // Archived once durable; nothing left in the inbox.
  EXPECT_TRUE(exists(state() + "/scans/xray-1/scan-0001.tiff"));
  EXPECT_TRUE(exists(state() + "/scans/xray-1/scan-0001.json"));
  EXPECT_FALSE(exists(inbox() + "/scan-0001.tiff"));
  EXPECT_EQ(l->status()["alerts"], 1);
}

TEST_F(XrayInboxTest, GarbageGoesToRejectedWithItsReasonAndTheNextBundleIsAnalysed) {
  auto l = lane();
  // Arrives while running (inotify): a TIFF that is not a TIFF.
  writeFile(inbox() + "/bad-1.tiff", "this is not a TIFF");
  auto meta = phantomWith(true, "bad-1").bundle.meta;
  writeFile(inbox() + "/bad-1.json.tmp", vision::metaToJson(meta));
  fs::rename(inbox() + "/bad-1.json.tmp", inbox() + "/bad-1.json");
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/rejected/xray-1/bad-1.error"); }));
  const std::string why = readFile(state() + "/rejected/xray-1/bad-1.error");
  EXPECT_NE(why.find("bad-1.tiff"), std::string::npos) << why;
  EXPECT_TRUE(exists(state() + "/rejected/xray-1/bad-1.tiff"));
  EXPECT_TRUE(exists(state() + "/rejected/xray-1/bad-1.json"));
  EXPECT_TRUE(sink_.drafts.empty());

  write(phantomWith(true, "good-2"));
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; }));
  EXPECT_EQ(sink_.drafts[0].id, "xray:s1:l1:xray-1:good-2");
  EXPECT_EQ(l->status()["rejected"], 1);
}

TEST_F(XrayInboxTest, ABurstLargerThanTheQueueWaitsInTheInboxAndIsAllTaken) {
  const auto p = phantomWith(true, "burst");
  for (int i = 0; i < 7; ++i) {
    auto b = p;
    b.bundle.meta.scanId = "burst-" + std::to_string(i);
    write(b);
  }
  XrayInboxOptions o;
  o.device = "xray-1";
  o.inbox = inbox();
  o.stateDir = state();
  o.queue = 2;
  XrayInbox l(io_, o, sink_, identity());
  ASSERT_EQ(l.start(), "");
  EXPECT_LE(l.status()["queued"].get<int>(), 2)
      << "at most `queue` bundles held, the rest in the inbox";
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 7; })) << l.status().dump();
  std::set<std::string> ids;
  for (const auto& d : sink_.drafts) ids.insert(d.id);
  EXPECT_EQ(ids.size(), 7u);
}

TEST_F(XrayInboxTest, ProcessedBundlesAreKeptByAgeAndSize) {
  XrayInboxOptions o;
  o.device = "xray-1";
  o.inbox = inbox();
  o.stateDir = state();
  o.rescanEvery = std::chrono::seconds(1);
  o.retentionDays = 30;
  auto p = phantomWith(true, "keep");
  const std::string archive = state() + "/scans/xray-1";
  fs::create_directories(archive);
  // An archived bundle from 40 days ago, and two recent ones.
  writeFile(archive + "/old-1.json", "{}");
  fs::last_write_time(archive + "/old-1.json",
                      fs::file_time_type::clock::now() - std::chrono::hours(24 * 40));
  for (const char* id : {"recent-1", "recent-2"}) {
    p.bundle.meta.scanId = id;
    write(p);
  }
  std::uintmax_t oneBundle =
      fs::file_size(inbox() + "/recent-1.tiff") + fs::file_size(inbox() + "/recent-1.json");
  o.retentionBytes = oneBundle + oneBundle / 2;  // room for one bundle, not two
  XrayInbox l(io_, o, sink_, identity());
  ASSERT_EQ(l.start(), "");
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 2; }));
  ASSERT_TRUE(runUntil([&] { return !exists(archive + "/old-1.json"); }, std::chrono::seconds(10)))
      << "older than retention_days";
  ASSERT_TRUE(runUntil(
      [&] {
        std::uintmax_t total = 0;
        for (const auto& e : fs::directory_iterator(archive)) total += e.file_size();
        return total <= o.retentionBytes;
      },
      std::chrono::seconds(10)))
      << "beyond retention_mb, oldest first";
  EXPECT_TRUE(exists(archive + "/recent-2.tiff") || exists(archive + "/recent-1.tiff"))
      << "the newest is kept";
}

TEST_F(XrayInboxTest, AClearScanIsTelemetryNotAnAlert) {
  write(phantomWith(false, "clear-1"));
  const std::string tiffBytes = readFile(inbox() + "/clear-1.tiff");
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/scans/xray-1/clear-1.json"); }));
  ASSERT_EQ(sink_.drafts.size(), 1u);
  EXPECT_EQ(sink_.drafts[0].kind, RecordKind::telemetry);
  EXPECT_EQ(sink_.drafts[0].topic, "lanegate/v1/s1/l1/telemetry");
  EXPECT_TRUE(sink_.drafts[0].attachments.empty());
  const auto event = nlohmann::json::parse(sink_.payloads[0]);
  EXPECT_EQ(event["type"], "org.lanegate.xray.scan");
  EXPECT_EQ(event["id"], "xray-scan:s1:l1:xray-1:clear-1");
  EXPECT_EQ(event["data"]["verdict"], "clear");
  EXPECT_EQ(event["data"]["evidence"]["tiff_sha256"], sha256Hex(tiffBytes));
  EXPECT_EQ(l->status()["clear"], 1);
  writeFile(dir_.file("telemetry.json"), sink_.payloads[0]);
  const auto v = run({LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py",
                      "--schemas", LANEGATE_SOURCE_DIR "/config/schemas", "scan-telemetry",
                      dir_.file("telemetry.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

TEST_F(XrayInboxTest, ABundleWhoseAlertWasNotMadeDurableStaysInTheInbox) {
  sink_.refuse = "disk full";
  write(phantomWith(true, "keep-1"));
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.refused == 1; }));
  runUntil([] { return false; }, std::chrono::seconds(1));
  EXPECT_TRUE(exists(inbox() + "/keep-1.json"));
  EXPECT_TRUE(exists(inbox() + "/keep-1.tiff"));
  EXPECT_NE(l->status()["last_error"].get<std::string>().find("disk full"), std::string::npos);
  // A later start (e.g. after the disk was freed) analyses it again under the same id.
  l.reset();
  sink_.refuse.clear();
  auto again = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; }));
  EXPECT_EQ(sink_.drafts[0].id, "xray:s1:l1:xray-1:keep-1");
}

// Ids are unique in the outbox: a scan whose record was committed before a crash, but whose
// bundle was not archived, is refused as a repeat when analysed again, and that means done.
TEST_F(XrayInboxTest, ABundleWhoseAlertIsAlreadyDurableIsArchivedOnItsRepeat) {
  sink_.refuse = std::string(kIdTaken) + ": \"xray:s1:l1:xray-1:again-1\"";
  write(phantomWith(true, "again-1"));
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.refused == 1 && !exists(inbox() + "/again-1.json"); }));
  EXPECT_TRUE(exists(state() + "/scans/xray-1/again-1.json"));
  EXPECT_EQ(l->status()["last_error"], "") << l->status().dump();
}

TEST_F(XrayInboxTest, InvalidContainerNumbersAreFlaggedNotDropped) {
  auto p = phantomWith(true, "ids-1");
  p.bundle.meta.conveyance.ids = {"CSQU3054383", "CSQU3054384"};
  p.bundle.meta.conveyance.awb = "020-12345670";
  write(p);
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; }));
  const auto checks = nlohmann::json::parse(sink_.payloads[0])["data"]["conveyance"]["id_checks"];
  ASSERT_EQ(checks.size(), 3u) << checks;
  EXPECT_EQ(checks[0]["valid"], true);
  EXPECT_EQ(checks[1]["valid"], false);
  EXPECT_EQ(checks[2]["scheme"], "iata_awb");
  EXPECT_EQ(checks[2]["valid"], false);
}

// A scanner's calibration bundle (what it writes on a dark or air command), staged and
// renamed into the inbox, the JSON last.
void writeCalibrationBundle(const std::string& inbox, const std::string& staging,
                            const std::string& id, const std::string& kind,
                            const vision::Calibration& cal, vision::ScanMeta meta,
                            bool beamOff = false) {
  vision::ScanBundle b;
  meta.scanId = id;
  meta.signal = vision::Signal::kRaw;
  b.meta = meta;
  b.planes = lane::test::calibrationPlanes(kind, cal, beamOff);
  ASSERT_TRUE(vision::writeBundle(b, staging).has_value());
  auto j = nlohmann::json::parse(readFile(staging + "/" + id + ".json"));
  j["calibration"] = kind;
  fs::rename(staging + "/" + id + ".tiff", inbox + "/" + id + ".tiff");
  writeFile(staging + "/" + id + ".json", j.dump());
  fs::rename(staging + "/" + id + ".json", inbox + "/" + id + ".json");
}

// Issue 6, acceptance 3: after a dark and an air calibration, raw scans analyse to the
// same findings as their transmission twins; before it they are refused with the reason;
// a bad calibration is refused and the good one stays; a restart keeps the calibration.
TEST_F(XrayInboxTest, RawScansUseTheLatestValidCalibration) {
  const vision::Phantom twin = phantomWith(true, "twin");
  const vision::Phantom raw = phantomWith(true, "raw", true);
  ASSERT_EQ(raw.bundle.meta.signal, vision::Signal::kRaw);
  ASSERT_FALSE(raw.calibration.energies.empty());
  const std::string staging = dir_.file("staging");
  fs::create_directories(staging);
  auto l = lane();
  std::string why;
  EXPECT_FALSE(l->calibrationDue(24, why));

  auto scan = raw;
  scan.bundle.meta.scanId = "raw-0";
  write(scan);
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/rejected/xray-1/raw-0.error"); }));
  EXPECT_NE(
      readFile(state() + "/rejected/xray-1/raw-0.error").find("no valid dark/air calibration"),
      std::string::npos);
  EXPECT_TRUE(l->calibrationDue(24, why));
  EXPECT_NE(why.find("calibrate xray dark"), std::string::npos) << why;

  writeCalibrationBundle(inbox(), staging, "cal-dark-1", "dark", raw.calibration, raw.bundle.meta);
  writeCalibrationBundle(inbox(), staging, "cal-air-1", "air", raw.calibration, raw.bundle.meta);
  ASSERT_TRUE(runUntil([&] {
    return !l->status()["calibration"]["file"].get<std::string>().empty();
  })) << l->status().dump();
  EXPECT_FALSE(l->calibrationDue(24, why)) << why;
  EXPECT_TRUE(l->calibrationDue(-1, why)) << "older than a limit of -1 h";

  // An air frame taken with the beam off is refused; the good calibration stays.
  const std::string good = l->status()["calibration"]["file"];
  writeCalibrationBundle(inbox(), staging, "cal-air-2", "air", raw.calibration, raw.bundle.meta,
                         true);
  ASSERT_TRUE(
      runUntil([&] { return !l->status()["calibration"]["problem"].get<std::string>().empty(); }));
  EXPECT_NE(l->status()["calibration"]["problem"].get<std::string>().find("beam off"),
            std::string::npos)
      << l->status().dump();
  EXPECT_EQ(l->status()["calibration"]["file"], good);

  scan.bundle.meta.scanId = "raw-1";
  write(scan);
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; })) << l->status().dump();
  const auto rawFindings = nlohmann::json::parse(sink_.payloads[0])["data"]["findings"];
  const auto twinFindings =
      nlohmann::json::parse(vision::toJson(vision::analyzeScan(twin.bundle, {})))["findings"];
  // Same findings within tolerance: as many (±1), and each of the twin's has a raw one of
  // the same kind whose box overlaps it.
  EXPECT_NEAR(static_cast<double>(rawFindings.size()), static_cast<double>(twinFindings.size()),
              1.0)
      << rawFindings.dump() << "\n"
      << twinFindings.dump();
  for (const auto& t : twinFindings) {
    bool matched = false;
    for (const auto& r : rawFindings) {
      if (r["kind"] != t["kind"]) continue;
      const auto& a = t["box_px"];
      const auto& b = r["box_px"];
      const double ix = std::max(0.0, std::min(a[0].get<double>() + a[2].get<double>(),
                                               b[0].get<double>() + b[2].get<double>()) -
                                          std::max(a[0].get<double>(), b[0].get<double>()));
      const double iy = std::max(0.0, std::min(a[1].get<double>() + a[3].get<double>(),
                                               b[1].get<double>() + b[3].get<double>()) -
                                          std::max(a[1].get<double>(), b[1].get<double>()));
      matched = matched || ix * iy > 0;
    }
    EXPECT_TRUE(matched) << t.dump() << " has no raw counterpart in " << rawFindings.dump();
  }

  // After a restart the stored calibration is used again.
  l.reset();
  auto again = lane();
  EXPECT_EQ(again->status()["calibration"]["file"], good);
  scan.bundle.meta.scanId = "raw-2";
  write(scan);
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 2; })) << again->status().dump();
}

// Issue 13, acceptance 1: a file whose name is not UTF-8 lands in the inbox. It is
// rejected with its name escaped, and the status (which carries the last error and goes out
// as JSON) still serialises.
TEST_F(XrayInboxTest, ANonUtf8FileNameIsRejectedWithItsNameEscaped) {
  auto l = lane();
  const std::string name = "scan-\xff\xfe\x01";
  writeFile(inbox() + "/" + name + ".json", "{}");
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/rejected/xray-1/" + name + ".error"); }));
  const auto status = l->status();
  std::string text;
  ASSERT_NO_THROW(text = status.dump()) << "the status must stay valid UTF-8";
  EXPECT_NE(status["last_error"].get<std::string>().find("scan-\\xff\\xfe\\x01.json"),
            std::string::npos)
      << text;
  EXPECT_EQ(status["rejected"], 1);
  // A bundle whose JSON holds bytes that are not UTF-8 is rejected as not valid JSON.
  const auto p = phantomWith(true, "latin1");
  write(p);
  std::string meta = readFile(inbox() + "/latin1.json");
  meta.replace(meta.find("\"conveyance\""), 0, "\"note\": \"caf\xe9\", ");
  writeFile(inbox() + "/.latin1.tmp", meta);
  fs::rename(inbox() + "/.latin1.tmp", inbox() + "/latin1.json");
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/rejected/xray-1/latin1.error"); }));
  EXPECT_NE(
      readFile(state() + "/rejected/xray-1/latin1.error").find("latin1.json: not a JSON object"),
      std::string::npos);
  ASSERT_NO_THROW(text = l->status().dump());
}

// Issue 13: a transient error (here EMFILE: the process is out of descriptors) while a
// bundle is read leaves it in the inbox, to be read again; only a malformed bundle is rejected.
TEST_F(XrayInboxTest, ATransientReadErrorLeavesTheBundleForLater) {
  XrayInboxOptions o;
  o.device = "xray-1";
  o.inbox = inbox();
  o.stateDir = state();
  o.rescanEvery = std::chrono::seconds(1);
  o.readBackoff = {std::chrono::milliseconds(10), std::chrono::milliseconds(20)};
  XrayInbox l(io_, o, sink_, identity());
  ASSERT_EQ(l.start(), "");
  runUntil([] { return false; }, std::chrono::seconds(1));  // the workers have primed
  const std::string staging = dir_.file("staging");
  fs::create_directories(staging);
  ASSERT_TRUE(vision::writeBundle(phantomWith(true, "later-1").bundle, staging).has_value());
  // Out of descriptors: the soft limit just above what is open, every hole filled.
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  int highest = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(e.path().filename().string()));
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(highest + 1);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) fillers.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  // The bundle arrives (renames need no descriptor) while no file can be opened.
  fs::rename(staging + "/later-1.tiff", inbox() + "/later-1.tiff");
  fs::rename(staging + "/later-1.json", inbox() + "/later-1.json");
  // (Its in-progress marker cannot be written either: it waits, unanalysed.)
  const bool noticed = runUntil(
      [&] {
        return l.status()["last_error"].get<std::string>().find("Too many open files") !=
               std::string::npos;
      },
      std::chrono::seconds(10));
  for (const int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(noticed) << l.status().dump();
  EXPECT_NE(l.status()["last_error"].get<std::string>().find("Too many open files"),
            std::string::npos)
      << l.status().dump();
  EXPECT_EQ(l.status()["rejected"], 0);
  EXPECT_FALSE(exists(state() + "/rejected/xray-1/later-1.error"));
  // Descriptors again: the next rescan reads it and it becomes its alert.
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; })) << l.status().dump();
  EXPECT_EQ(sink_.drafts[0].id, "xray:s1:l1:xray-1:later-1");
}

// Issue 13: a bundle being analysed when the daemon died is analysed again at the next
// start (one crash proves nothing); one found in progress by two consecutive starts is
// quarantined unanalysed and raises an inconclusive alert saying so.
TEST_F(XrayInboxTest, ABundleFoundInProgressByTwoConsecutiveStartsIsQuarantined) {
  const std::string inflight = state() + "/inflight/xray-1";
  fs::create_directories(inflight);
  write(phantomWith(true, "once-1"));
  write(phantomWith(true, "twice-1"));
  const std::string tiffBytes = readFile(inbox() + "/twice-1.tiff");
  writeFile(inflight + "/once-1", "0\n");   // written before analysing; the daemon then died
  writeFile(inflight + "/twice-1", "1\n");  // and found so by the previous start already
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 2; })) << l->status().dump();
  std::map<std::string, nlohmann::json> events;
  for (const auto& p : sink_.payloads) {
    auto e = nlohmann::json::parse(p);
    events[e["id"]] = e;
  }
  const auto& q = events["xray:s1:l1:xray-1:twice-1"];
  EXPECT_EQ(q["type"], "org.lanegate.xray.hit");
  EXPECT_EQ(q["data"]["verdict"], "inconclusive");
  EXPECT_NE(q["data"]["findings"][0]["reason"].get<std::string>().find("2 consecutive starts"),
            std::string::npos)
      << q;
  EXPECT_EQ(q["data"]["evidence"]["tiff_sha256"], sha256Hex(tiffBytes));
  EXPECT_TRUE(exists(state() + "/quarantine/xray-1/twice-1.tiff"));
  EXPECT_TRUE(exists(state() + "/quarantine/xray-1/twice-1.error"));
  EXPECT_FALSE(exists(inbox() + "/twice-1.json"));
  writeFile(dir_.file("quarantine.json"), q.dump());
  const auto v = run({LANEGATE_SYSTEM_PYTHON, LANEGATE_SOURCE_DIR "/tests/support/validate_json.py",
                      "--schemas", LANEGATE_SOURCE_DIR "/config/schemas", "alert",
                      dir_.file("quarantine.json")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  // The other was analysed normally, and no marker is left.
  EXPECT_EQ(events.count("xray:s1:l1:xray-1:once-1"), 1u);
  EXPECT_TRUE(runUntil([&] { return exists(state() + "/scans/xray-1/once-1.json"); }));
  EXPECT_TRUE(fs::is_empty(inflight));
}

// The quarantine alert is what lets the bundle leave: refused (disk full), the bundle and its
// marker stay, it is not analysed, and the next start quarantines it again.
TEST_F(XrayInboxTest, AQuarantineWhoseAlertIsRefusedIsTriedAgainAtTheNextStart) {
  const std::string inflight = state() + "/inflight/xray-1";
  fs::create_directories(inflight);
  write(phantomWith(true, "twice-2"));
  writeFile(inflight + "/twice-2", "1\n");
  sink_.refuse = "disk full";
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.refused == 1; }));
  runUntil([] { return false; }, std::chrono::seconds(1));
  EXPECT_EQ(sink_.refused, 1) << "not analysed meanwhile";
  EXPECT_TRUE(exists(inbox() + "/twice-2.json"));
  EXPECT_TRUE(exists(inflight + "/twice-2"));
  EXPECT_NE(l->status()["last_error"].get<std::string>().find("quarantine alert"),
            std::string::npos);
  l.reset();
  sink_.refuse.clear();
  auto again = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; }));
  EXPECT_EQ(nlohmann::json::parse(sink_.payloads[0])["data"]["verdict"], "inconclusive");
  EXPECT_TRUE(exists(state() + "/quarantine/xray-1/twice-2.json"));
  EXPECT_FALSE(exists(inflight + "/twice-2"));
}

// Issue 13, acceptance 4 (the calibration part): a link planted among the calibrations,
// newer than the real one, is never followed; the real one stays in use.
TEST_F(XrayInboxTest, ACalibrationLinkIsNotFollowed) {
  const vision::Phantom raw = phantomWith(true, "raw", true);
  const std::string calDir = state() + "/calibration/xray-1";
  fs::create_directories(calDir);
  writeFile(calDir + "/calibration-20261101T000000.000Z.json",
            vision::calibrationToJson(raw.calibration));
  vision::Calibration planted = raw.calibration;
  for (auto& e : planted.energies)
    for (float& v : e.air) v = 1;
  writeFile(dir_.file("planted.json"), vision::calibrationToJson(planted));
  fs::create_symlink(dir_.file("planted.json"), calDir + "/calibration-29991231T000000.000Z.json");
  auto l = lane();
  const auto cal = l->status()["calibration"];
  EXPECT_EQ(cal["file"], calDir + "/calibration-20261101T000000.000Z.json") << cal;
  EXPECT_NE(cal["problem"].get<std::string>().find(
                "calibration-29991231T000000.000Z.json: not a regular file"),
            std::string::npos)
      << cal;
}

}  // namespace
}  // namespace lanegate::test
