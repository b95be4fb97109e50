// The conveyance in the lane: the PLC's lane_occupied and the scans decide which
// conveyance a trace hit names. In memory, no clock.
#include "lane/correlator.h"

#include <gtest/gtest.h>

namespace lanegate::lane {
namespace {

ConveyanceRecord container(const std::string& id, const std::string& scanId) {
  ConveyanceRecord r;
  r.conveyance.kind = "container";
  r.conveyance.ids = {id};
  r.idChecks = {{id, true, "iso6346"}};
  r.scanId = scanId;
  return r;
}

ScannerState plc(bool occupied) {
  ScannerState s;
  s.laneOccupied = occupied;
  return s;
}

// What a trace hit would carry now.
TraceResult hit(const Correlator& c) {
  TraceResult r;
  c.attribute(r);
  return r;
}

TEST(Correlator, WithAPlcAHitWhileTheConveyanceIsInTheLaneNamesItAndNoneAfter) {
  Correlator c;
  EXPECT_EQ(c.onScannerState(plc(false)), Correlator::Change::none);
  EXPECT_FALSE(hit(c).conveyance) << "an empty lane";
  EXPECT_EQ(c.onScannerState(plc(true)), Correlator::Change::entered);
  EXPECT_FALSE(hit(c).conveyance) << "in the lane, not scanned yet";
  EXPECT_TRUE(c.onScan(container("CSQU3054383", "s-1"), "xray:a"));
  const TraceResult during = hit(c);
  ASSERT_TRUE(during.conveyance);
  EXPECT_EQ(during.conveyance->conveyance.ids, std::vector<std::string>{"CSQU3054383"});
  EXPECT_EQ(during.correlatedAlerts, std::vector<std::string>{"xray:a"});
  EXPECT_TRUE(during.highPriority) << "X-ray flagged it";
  EXPECT_EQ(c.onScannerState(plc(true)), Correlator::Change::none) << "the same conveyance";
  EXPECT_TRUE(hit(c).conveyance);
  EXPECT_EQ(c.onScannerState(plc(false)), Correlator::Change::left);
  const TraceResult after = hit(c);
  EXPECT_FALSE(after.conveyance);
  EXPECT_TRUE(after.correlatedAlerts.empty());
  EXPECT_FALSE(after.highPriority);
}

TEST(Correlator, AClearScanNamesTheConveyanceAtNormalPriority) {
  Correlator c;
  c.onScannerState(plc(true));
  ASSERT_TRUE(c.onScan(container("MSCU1000378", "s-2"), ""));
  EXPECT_TRUE(c.occupied());
  EXPECT_EQ(c.conveyance()->scanId, "s-2");
  EXPECT_FALSE(hit(c).highPriority) << "no X-ray alert to name";
}

TEST(Correlator, AScanThatCompletesAfterItsConveyanceLeftIsNotCarriedForward) {
  Correlator c;
  for (const bool occupied : {true, false}) c.onScannerState(plc(occupied));
  EXPECT_FALSE(c.onScan(container("CSQU3054383", "s-1"), "xray:a"));
  EXPECT_FALSE(c.conveyance());
}

TEST(Correlator, TheNextConveyanceEnteringClearsThePreviousOne) {
  Correlator c;
  c.onScannerState(plc(true));
  c.onScan(container("CSQU3054383", "s-1"), "xray:a");
  c.onScannerState(plc(false));
  c.onScannerState(plc(true));
  EXPECT_FALSE(hit(c).conveyance);
}

TEST(Correlator, WithoutAPlcTheLastScannedConveyanceStandsUntilTheNextScan) {
  Correlator c;
  EXPECT_TRUE(c.onScan(container("CSQU3054383", "s-1"), "xray:a"));
  EXPECT_EQ(hit(c).conveyance->conveyance.ids.front(), "CSQU3054383");
  EXPECT_TRUE(c.onScan(container("MSCU1000378", "s-2"), ""));
  const TraceResult r = hit(c);
  EXPECT_EQ(r.conveyance->conveyance.ids.front(), "MSCU1000378");
  EXPECT_FALSE(r.highPriority);
}

TEST(Correlator, APlcLostFallsBackToScansAlone) {
  Correlator c;
  c.onScannerState(plc(false));
  c.onScannerLost();
  EXPECT_FALSE(c.occupied());
  EXPECT_TRUE(c.onScan(container("CSQU3054383", "s-1"), ""))
      << "occupancy unknown: the scan stands";
  EXPECT_TRUE(hit(c).conveyance);
}

}  // namespace
}  // namespace lanegate::lane
