#pragma once
// `type: xray` — a cargo X-ray scanner: its PLC over Modbus TCP or RTU, read through a
// register profile (config/profiles/xray-*.yaml; Contract 4 by default), and the keys of
// the lane that ingests its scan bundles (Contract 1) from the inbox.
//
// Config keys of a `devices:` entry (defaults in brackets):
//   transport            tcp | rtu [tcp]
//   host, port           tcp: address (required) and port [502]
//   device               rtu: serial device path (required); devices naming the same path
//                        share one bus: one libmodbus context, requests serialised
//   baud, parity, data_bits, stop_bits   rtu: [19200], none|even|odd [none], 5..8 [8], 1|2 [1]
//   unit_id              Modbus unit/slave id 0..247 [1]
//   profile              register profile; relative to the config file's directory
//                        [profiles/xray-generic-v1.yaml]
//   poll_interval_ms     time between polls, 10.. [200]
//   response_timeout_ms  whole reply (and TCP connect), 10..60000 [1000]
//   byte_timeout_ms      between bytes of a reply, 0 = off [500]
//   command_timeout_ms   how long a dark/air/clear_fault command may run, 100.. [120000]
// Read by the daemon's inbox watcher (readXrayLaneSettings), validated here:
//   inbox                (required) directory the scanner writes bundles into; relative
//                        to the config file's directory
//   workers              analysis threads, 1..8 [1]
//   queue                bundles queued for analysis before the rest wait in the inbox, 1..64 [4]
//   retention_days       processed bundles kept this long, 0..3650, 0 = no age limit [30]
//   retention_mb         processed bundles kept up to this size, 0..16777216, 0 = no size
//                        limit [2048]
//   calibration_max_age_h  a dark/air calibration older than this makes the device
//                        calibration_due, 0.1..8760 [24]
//
// Each poll reads status, scan_seq and lane_occupied in one request. The driver emits a
// ScannerState (drivers/events.h: scan_seq u16 as read, wrapping at 65536; lane_occupied;
// the raw status and its bits decoded with the profile) on the first poll after each
// open() and whenever scan_seq or lane_occupied changes. A scan_seq increment means a
// bundle is complete in the inbox; lane_occupied follows conveyances, and the lane's
// correlator (lane/correlator.h) follows it.
//
// DeviceHealth: state "ok" | "offline" | "fault" (PLC fault bit, or a garbage/exception
// reply) | "interlock_open" | "calibration_due" (the PLC's bit; the lane adds its own
// calibration age) | "not_ready"; readings status, scan_seq, lane_occupied, ready,
// scanning, radiation_on, interlock_open, calibration_due (0/1 each); faults counts
// garbage and exception replies.
//
// Timeouts and broken connections return DriverAction::retry (a TCP link is closed after
// a timeout or garbage, so a late reply cannot poison the next request; a serial bus is
// flushed); exception replies keep the link (DriverAction::ok); a PLC whose
// profile_version differs from the profile's is DriverAction::outOfService.
//
// Commands "dark", "air", "clear_fault" write the profile's command code and follow
// command_result until ok or failed (or command_timeout_ms). A dark or air scan makes
// the scanner write a calibration bundle into the inbox (Contract 1, signal raw, with
// an extra field "calibration": "dark" | "air"); the lane ingests it. command() may block
// up to command_timeout_ms; call it on the device's thread.

#include <chrono>
#include <string>

#include "drivers/registry.h"

namespace lanegate {

/// The lane keys of an xray device entry (see above), validated.
struct XrayLaneSettings {
  std::string inbox;                     ///< absolute, or relative to the working directory
                                         ///< when the config file had no directory
  int workers = 1;                       ///< analysis threads
  int queue = 4;                         ///< bundles queued for analysis
  double retentionDays = 30.0;           ///< 0 = no age limit
  std::int64_t retentionMb = 2048;       ///< 0 = no size limit
  double calibrationMaxAgeHours = 24.0;  ///< older calibrations are due
};

/// Reads (and records errors for) the lane keys of an xray device entry.
XrayLaneSettings readXrayLaneSettings(SettingsReader& settings);
/// The lane keys of an entry validated before (odd values fall back to defaults).
XrayLaneSettings readXrayLaneSettings(const DeviceSpec& spec);

/// Validates an xray device entry (and loads its profile, so profile errors show too).
void validateXrayDriver(SettingsReader& settings);
/// Creates an xray device.
std::unique_ptr<Driver> createXrayDriver(const DeviceSpec& spec);

}  // namespace lanegate
