#pragma once
// `type: ims` — an ion-mobility trace detector over Modbus TCP or RTU, read through a
// register profile (config/profiles/*.yaml; Contract 3 by default).
//
// Config keys of a `devices:` entry (defaults in brackets):
//   transport            tcp | rtu [tcp]
//   host, port           tcp: address (required) and port [502]
//   device               rtu: serial device path (required); devices naming the same path
//                        share one bus: one libmodbus context, requests serialised
//   baud, parity, data_bits, stop_bits   rtu: [19200], none|even|odd [none], 5..8 [8], 1|2 [1]
//   unit_id              Modbus unit/slave id 0..247 [1]
//   profile              register profile; relative to the config file's directory
//                        [profiles/ims-generic-v1.yaml]
//   poll_interval_ms     time between polls, 10.. [500]
//   response_timeout_ms  whole reply (and TCP connect), 10..60000 [1000]
//   byte_timeout_ms      between bytes of a reply, 0 = off [500]
//   snapshot_retries     reads of an inconsistent snapshot before a fault, 1..100 [5]
//   snapshot_retry_ms    pause before reading a snapshot again [20]
//   command_timeout_ms   how long a command may run, 100.. [60000]
//
// Each poll reads the header block (status, sample_seq, conditions, alarms). A new
// sample is an even sample_seq different from the last one accepted; it is read as a
// consistent snapshot: the header (holding sample_seq), the spectrum in chunks, then
// sample_seq again; both must be equal and even, else the snapshot is read again
// (snapshot_retries times, then it counts as a fault). Impossible data (points above
// the profile's max_points, alarm_count above max_alarms, period_ns 0, short replies),
// garbage and exception replies each count one fault in DeviceHealth::faults. The
// sample a device holds when the driver is created is delivered too (better a duplicate
// after a restart than a lost hit; sample_seq + sample_time identify it); after a
// reconnect, the same driver does not deliver it again.
//
// Timeouts and broken connections return DriverAction::retry (a TCP link is closed after
// a timeout or garbage, so a late reply cannot poison the next request; a serial bus is
// flushed); exception replies and rejected data keep the link (DriverAction::ok); a
// device whose profile_version differs from the profile's is DriverAction::outOfService.
// command() may block up to command_timeout_ms; call it on the device's thread.
//
// Each accepted sample becomes a TraceSample (drivers/events.h; Sample::time = when it
// was read): sample_seq, sample_time (the device's clock), the raw status, the mode (the
// profile's negative_mode bit), the readings decoded with the profile's scaling, period_ns,
// segments, the device's own alarms (substance names from the profile's alarm_codes, none
// when a code has no name), `alarmed` (the profile's alarm status bit, whichever bit the
// vendor chose, or any alarm in the list) and the spectrum's points.
//
// DeviceHealth: state "ok" | "offline" | "fault" (device fault bit, or this poll's data
// was rejected) | "verification_failed" | "calibration_due" | "not_ready"; readings
// drift_temp_k, pressure_hpa, desorber_temp_c, status, sample_seq, calibration_due (0/1),
// verification_failed (0/1), alarm (0/1), ready (0/1), last_sample_time (unix s, once a
// sample was accepted).
//
// Commands "verify", "calibrate", "clear_fault" write the profile's command code and
// follow command_result until ok or failed (or command_timeout_ms).

#include "drivers/registry.h"

namespace lanegate {

/// Validates an ims device entry (and loads its profile, so profile errors show too).
void validateImsDriver(SettingsReader& settings);
/// Creates an ims device.
std::unique_ptr<Driver> createImsDriver(const DeviceSpec& spec);

}  // namespace lanegate
