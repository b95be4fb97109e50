#pragma once
// What devices produce, as types: a trace detector's sample, an X-ray scanner PLC's state.
// Drivers emit these (never JSON text); the lane (lane/) consumes them. No I/O, no YAML:
// lane/ includes this header and nothing else of drivers/.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace lanegate {

/// Polarity of the ions a trace detector collected for a sample.
enum class IonPolarity { positive, negative };

/// One alarm a trace detector raised itself.
struct DeviceAlarm {
  int code = 0;                          ///< the device's substance code
  std::optional<std::string> substance;  ///< its name from the profile's alarm_codes, if any
  int amplitude = 0;                     ///< as the device reports it
};

/// A trace detector's sample: the averaged plasmagram and the device's own verdict.
struct TraceSample {
  std::uint16_t sampleSeq = 0;               ///< even, as read (wraps at 65536)
  std::uint32_t sampleTime = 0;              ///< the device's clock, unix seconds
  std::uint16_t status = 0;                  ///< the raw status register, for audit
  IonPolarity mode = IonPolarity::positive;  ///< from the profile's negative_mode bit
  double driftTempK = 0.0;                   ///< drift-tube temperature, K
  double pressureHpa = 0.0;                  ///< ambient pressure, hPa
  double desorberTempC = 0.0;                ///< desorber temperature, °C
  double periodNs = 0.0;                     ///< drift-time step between points, ns
  int segments = 0;                          ///< scans averaged into the spectrum
  std::vector<DeviceAlarm> alarms;           ///< the device's own alarms
  bool alarmed = false;                      ///< the profile's alarm status bit, or any alarm
  std::vector<std::uint16_t> points;         ///< the spectrum (ion current), 1..max_points
};

/// An X-ray scanner PLC's state (Contract 4): a scan_seq step means a bundle is complete
/// in the inbox; lane_occupied follows conveyances through the lane.
struct ScannerState {
  std::uint16_t scanSeq = 0;  ///< as read (wraps at 65536)
  bool laneOccupied = false;  ///< a conveyance is in the lane
  std::uint16_t status = 0;   ///< the raw status register, for audit
  bool ready = false, scanning = false, radiationOn = false, interlockOpen = false, fault = false,
       calibrationDue = false;  ///< the profile's status bits (false when it has no such bit)
};

/// What a device produced, typed; consumers dispatch with std::visit.
using DeviceEvent = std::variant<TraceSample, ScannerState>;

/// One event and when the driver read it.
struct Sample {
  std::chrono::system_clock::time_point time;  ///< when it was read
  DeviceEvent event;                           ///< what was read
};

}  // namespace lanegate
