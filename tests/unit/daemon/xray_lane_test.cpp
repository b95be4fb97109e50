// The X-ray inbox: bundles present at start and bundles arriving later are analysed by
// the real vision module; a scan with findings becomes one alert whose image is stored
// with it, whose hashes match the files, and whose id comes from the scan id; a clear
// scan raises nothing; a garbage bundle goes to rejected/ with its reason and the next
// one is analysed; a bundle whose alert was not made durable stays in the inbox.
#include "daemon/xray_lane.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "daemon/sha256.h"
#include "tests/support/harness.h"
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
    payloads.push_back(draft.render(++seq));
    drafts.push_back(std::move(draft));
    done("", seq);
  }
  std::vector<RecordDraft> drafts;
  std::vector<std::string> payloads;
  std::string refuse;
  int refused = 0;
  std::uint64_t seq = 0;
};

Config identity() {
  Config c;
  c.site = "s1";
  c.lane = "l1";
  return c;
}

// A generated scan the vision module does (or does not) flag, found by trying indices.
vision::Phantom phantomWith(bool wantFindings, const std::string& scanId) {
  vision::PhantomOptions o;
  o.pixelMm = 20;
  for (int i = 0; i < 40; ++i) {
    auto p = vision::generatePhantom(77, i, o);
    if (wantFindings != !p.truth.concealments.empty()) continue;
    const auto f = vision::analyzeScan(p.bundle, vision::AnalysisParams{});
    if (f.error.empty() && wantFindings == !f.findings.empty()) {
      p.bundle.meta.scanId = scanId;
      return p;
    }
  }
  ADD_FAILURE() << "no generated scan with findings=" << wantFindings;
  return {};
}

class XrayLaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(inbox());
    fs::create_directories(state());
  }
  std::string inbox() const { return dir_.file("inbox"); }
  std::string state() const { return dir_.file("state"); }
  std::unique_ptr<XrayLane> lane(int workers = 1) {
    XrayLaneOptions o;
    o.device = "xray-1";
    o.inbox = inbox();
    o.stateDir = state();
    o.workers = workers;
    auto l = std::make_unique<XrayLane>(io_, o, sink_, identity());
    EXPECT_EQ(l->start(), "");
    return l;
  }
  void write(const vision::Phantom& p) { ASSERT_TRUE(vision::writeBundle(p.bundle, inbox()).has_value()); }
  bool runUntil(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(60)) {
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

TEST_F(XrayLaneTest, ABundlePresentAtStartBecomesOneAlertWithItsImage) {
  const auto p = phantomWith(true, "scan-0001");
  write(p);
  const std::string tiffBytes = readFile(inbox() + "/scan-0001.tiff");
  const std::string jsonBytes = readFile(inbox() + "/scan-0001.json");
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1 && !exists(inbox() + "/scan-0001.json"); }));
  const auto& d = sink_.drafts[0];
  EXPECT_EQ(d.id, "xray:s1:l1:xray-1:scan-0001");
  EXPECT_EQ(d.id, XrayLane::alertId(identity(), "xray-1", "scan-0001"));
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

TEST_F(XrayLaneTest, GarbageGoesToRejectedWithItsReasonAndTheNextBundleIsAnalysed) {
  auto l = lane();
  // Arrives while running (inotify): a TIFF that is not a TIFF.
  writeFile(inbox() + "/bad-1.tiff", "this is not a TIFF");
  auto meta = phantomWith(true, "bad-1").bundle.meta;
  writeFile(inbox() + "/bad-1.json.tmp", vision::metaToJson(meta));
  fs::rename(inbox() + "/bad-1.json.tmp", inbox() + "/bad-1.json");
  ASSERT_TRUE(runUntil([&] { return exists(inbox() + "/rejected/bad-1.error"); }));
  const std::string why = readFile(inbox() + "/rejected/bad-1.error");
  EXPECT_NE(why.find("bad-1.tiff"), std::string::npos) << why;
  EXPECT_TRUE(exists(inbox() + "/rejected/bad-1.tiff"));
  EXPECT_TRUE(exists(inbox() + "/rejected/bad-1.json"));
  EXPECT_TRUE(sink_.drafts.empty());

  write(phantomWith(true, "good-2"));
  ASSERT_TRUE(runUntil([&] { return sink_.drafts.size() == 1; }));
  EXPECT_EQ(sink_.drafts[0].id, "xray:s1:l1:xray-1:good-2");
  EXPECT_EQ(l->status()["rejected"], 1);
}

TEST_F(XrayLaneTest, AClearScanRaisesNothingAndIsArchived) {
  write(phantomWith(false, "clear-1"));
  auto l = lane();
  ASSERT_TRUE(runUntil([&] { return exists(state() + "/scans/xray-1/clear-1.json"); }));
  EXPECT_TRUE(sink_.drafts.empty());
  EXPECT_EQ(l->status()["clear"], 1);
}

TEST_F(XrayLaneTest, ABundleWhoseAlertWasNotMadeDurableStaysInTheInbox) {
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

TEST_F(XrayLaneTest, InvalidContainerNumbersAreFlaggedNotDropped) {
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

}  // namespace
}  // namespace lanegate::test
