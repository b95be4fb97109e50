#pragma once
// One Modbus connection (libmodbus TCP or RTU) with errors as values. libmodbus blocks
// and its contexts are not thread-safe, so a link belongs to one device thread (TCP)
// or is shared by the devices of one RTU bus, which serialise on its mutex (one
// context per bus). Recovery is ours, never libmodbus's: MODBUS_ERROR_RECOVERY_LINK
// retries forever inside the call (libmodbus 3.1.6), so a broken link is reported and
// the caller reconnects on its own backoff.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/settings.h"

// libmodbus's opaque context; only modbus_link.cpp includes <modbus.h>.
struct _modbus;  // NOLINT(bugprone-reserved-identifier): libmodbus names it so

namespace lanegate {

/// Which register table a read addresses.
enum class RegisterTable {
  holding,  ///< function 03
  input,    ///< function 04
};

/// Where and how to reach a device.
struct LinkConfig {
  std::string transport = "tcp";                    ///< "tcp" or "rtu"
  std::string host = "127.0.0.1";                   ///< tcp
  int port = 502;                                   ///< tcp
  std::string device;                               ///< rtu: serial device path (the bus)
  int baud = 19200;                                 ///< rtu
  char parity = 'N';                                ///< rtu: 'N', 'E' or 'O'
  int dataBits = 8;                                 ///< rtu
  int stopBits = 1;                                 ///< rtu
  std::chrono::milliseconds responseTimeout{1000};  ///< whole reply, and TCP connect
  std::chrono::milliseconds byteTimeout{500};       ///< between bytes of a reply; 0 = off
  /// "tcp://host:port" or "rtu:/dev/ttyX@19200 8N1", for messages.
  [[nodiscard]] std::string describe() const;
};

/// Reads the transport keys of a device entry (transport, host, port, device, baud,
/// parity, data_bits, stop_bits, response_timeout_ms, byte_timeout_ms).
LinkConfig readLinkConfig(SettingsReader& settings);

/// What went wrong with one request, so that the caller knows what to do.
enum class LinkErrorKind {
  notConnected,  ///< no connection (connect failed or link closed)
  timeout,       ///< no (complete) reply in time; the link was flushed
  connection,    ///< the connection broke; reconnect
  exception,     ///< the device answered with a Modbus exception (it is alive)
  badData,       ///< garbage: wrong transaction id, CRC, length, function; flushed
  invalid,       ///< the request itself was impossible (e.g. too many registers)
};

/// One failed request.
struct LinkError {
  LinkErrorKind kind = LinkErrorKind::connection;
  std::string message;
  /// True when the connection should be closed and opened again.
  [[nodiscard]] bool needsReconnect() const;
};

/// A value or the reason it could not be had.
template <typename T>
using LinkResult = tl::expected<T, LinkError>;

/// The most registers one read may ask for (Modbus: 125).
inline constexpr int kMaxRegistersPerRead = 125;

/// One libmodbus context. Methods lock the link's mutex, so devices on one RTU bus may
/// call them from their own threads; each call is one complete request/reply.
class ModbusLink {
 public:
  /// Creates an unconnected link.
  explicit ModbusLink(LinkConfig config);
  ~ModbusLink();
  ModbusLink(const ModbusLink&) = delete;
  ModbusLink& operator=(const ModbusLink&) = delete;

  /// Connects (no-op when connected).
  [[nodiscard]] LinkResult<void> connect();
  /// Closes the connection; safe when closed.
  void close();
  /// True while connected.
  [[nodiscard]] bool connected() const;
  /// Reads `count` registers from `address` of unit `unit`, in requests of at most
  /// `chunk` (≤ 125) registers. Fails whole: no partial result. `timeout` overrides the
  /// response timeout (devices sharing a bus keep their own).
  [[nodiscard]] LinkResult<std::vector<std::uint16_t>> read(
      int unit, RegisterTable table, int address, int count, int chunk = kMaxRegistersPerRead,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// Writes one holding register (function 06).
  [[nodiscard]] LinkResult<void> write(
      int unit, int address, std::uint16_t value,
      std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// The configuration.
  [[nodiscard]] const LinkConfig& config() const { return config_; }

 private:
  LinkResult<void> connectLocked();
  void closeLocked();
  LinkError failure(const char* what);  // classifies errno after a failed request
  void prepare(int unit, std::optional<std::chrono::milliseconds> timeout);

  LinkConfig config_;
  mutable std::mutex mutex_;
  _modbus* ctx_ = nullptr;
  bool connected_ = false;
};

/// The link of a serial bus, shared by every device configured on the same serial
/// device path (the first device's serial settings win); a TCP config gets its own.
std::shared_ptr<ModbusLink> acquireLink(const LinkConfig& config);

}  // namespace lanegate
