// Issue 12, acceptance 1: the lane ties a trace hit to the conveyance the X-ray PLC says
// is in the lane. The test drives a simulated PLC's lane_occupied itself; the real daemon
// reads it over Modbus, takes the scan from the inbox, and the real `lanegate-sim ims`
// keeps swabbing cocaine. A hit while the conveyance is in the lane carries it; a hit
// after it left does not.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <thread>

#include "drivers/sim/xray_sim.h"
#include "tests/integration/daemon_fixture.h"
#include "vision/decode.h"
#include "vision/phantom.h"

namespace lanegate::test {
namespace {

namespace fs = std::filesystem;

// The scanner's PLC in this process, served on its own thread; no scans of its own.
class Plc {
 public:
  explicit Plc(const std::string& inbox) {
    sim::XraySimOptions o;
    o.inbox = inbox;
    o.count = 0;
    auto s = sim::XraySimulator::create(o);
    if (!s) {
      ADD_FAILURE() << s.error();
      return;
    }
    sim_ = std::move(*s);
    thread_ = std::thread([this] {
      while (!stop_) sim_->step(std::chrono::milliseconds(5));
    });
  }
  ~Plc() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Plc(const Plc&) = delete;
  Plc& operator=(const Plc&) = delete;
  [[nodiscard]] int port() const { return sim_ ? sim_->server().port() : 0; }
  void setOccupied(bool occupied) {
    auto lock = sim_->server().lock();
    sim_->server().holding()[static_cast<std::size_t>(sim_->profile().laneOccupied)] =
        occupied ? 1 : 0;
  }

 private:
  std::unique_ptr<sim::XraySimulator> sim_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<nlohmann::json> traceHits(const Process& watch) {
  std::vector<nlohmann::json> hits;
  std::istringstream lines(watch.out());
  for (std::string line; std::getline(lines, line);) {
    auto a = nlohmann::json::parse(line, nullptr, false);
    if (a.is_object() && a["type"] == "org.lanegate.trace.hit") hits.push_back(std::move(a));
  }
  return hits;
}

TEST(LaneIT, ATraceHitCarriesTheConveyanceOnlyWhileThePlcSaysItIsInTheLane) {
  TempDir dir;
  const std::string inbox = dir.file("inbox"), staging = dir.file("staging");
  fs::create_directories(inbox);
  fs::create_directories(staging);
  vision::PhantomOptions po;
  po.pixelMm = 20;
  auto phantom = vision::generatePhantom(4242, 0, po);
  phantom.bundle.meta.scanId = "occupied-1";
  phantom.bundle.meta.conveyance.kind = "container";
  phantom.bundle.meta.conveyance.ids = {"CSQU3054383"};
  ASSERT_TRUE(vision::writeBundle(phantom.bundle, staging).has_value());

  Plc plc(inbox);
  ASSERT_NE(plc.port(), 0);
  Broker broker(dir);
  SimProcess ims({"ims", "--every-ms", "300", "--sequence", "cocaine:900"}, dir.file("ims"));
  const int imsPort = ims.port;
  ASSERT_NE(imsPort, 0);
  Process watch(
      {LANEGATECTL_BIN, "watch", "-b", broker.uri(), "--site", "it", "--lane", "lane-1", "--json"},
      dir.file("watch"));
  ASSERT_TRUE(waitFor([&] { return watch.err().find("watching") != std::string::npos; }, 15s))
      << watch.err();
  Daemon d(dir, configText(dir, broker.uri(),
                           kImsLibrary + "devices:\n" + xrayEntry(inbox, plc.port()) +
                               imsEntry("ims-1", imsPort)));
  auto laneOccupied = [&] {
    // Until the scanner has reported, the status has no entry (or no readings) for it.
    const auto s = d.status();
    const auto none = nlohmann::json::object();
    if (!s.is_object()) return -1.0;
    return s.value("devices", none)
        .value("xray-1", none)
        .value("readings", none)
        .value("lane_occupied", -1.0);
  };

  // The lane is empty: hits name no conveyance.
  ASSERT_TRUE(waitFor([&] { return laneOccupied() == 0.0 && !traceHits(watch).empty(); }, 30s))
      << d.process().err();
  EXPECT_FALSE(traceHits(watch).front()["data"].contains("conveyance"))
      << traceHits(watch).front().dump();

  // A container enters and is scanned: a hit while it is in the lane names it.
  plc.setOccupied(true);
  ASSERT_TRUE(waitFor([&] { return laneOccupied() == 1.0; }, 15s));
  fs::rename(staging + "/occupied-1.tiff", inbox + "/occupied-1.tiff");
  fs::rename(staging + "/occupied-1.json", inbox + "/occupied-1.json");
  ASSERT_TRUE(waitFor(
      [&] {
        const auto hits = traceHits(watch);
        return !hits.empty() && hits.back()["data"].contains("conveyance");
      },
      60s))
      << d.process().err();
  const auto during = traceHits(watch).back()["data"];
  EXPECT_EQ(during["conveyance"]["ids"], nlohmann::json::array({"CSQU3054383"}));
  EXPECT_EQ(during["conveyance"]["id_checks"][0]["valid"], true);
  EXPECT_NE(d.process().err().find("lane: conveyance of scan occupied-1 is in the lane"),
            std::string::npos);

  // It leaves: once the daemon has seen the lane empty, hits name no conveyance again.
  plc.setOccupied(false);
  ASSERT_TRUE(waitFor([&] { return laneOccupied() == 0.0; }, 15s));
  const std::size_t seen = traceHits(watch).size();
  ASSERT_TRUE(waitFor([&] { return traceHits(watch).size() >= seen + 3; }, 30s))
      << d.process().err();
  const auto after = traceHits(watch).back()["data"];
  EXPECT_FALSE(after.contains("conveyance")) << after.dump();
  EXPECT_FALSE(after.contains("correlated_alerts"));
  EXPECT_EQ(after["priority"], "normal");
  EXPECT_NE(d.process().err().find("lane: the conveyance left the lane"), std::string::npos);
}

}  // namespace
}  // namespace lanegate::test
