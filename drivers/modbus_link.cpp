#include "drivers/modbus_link.h"

#include <modbus.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace lanegate {
namespace {

// modbus_strerror calls the MT-unsafe strerror for system errors (libmodbus #468);
// its own codes are static strings.
std::string describeErrno(int e) {
  if (e > MODBUS_ENOBASE) return modbus_strerror(e);
  char buf[256] = {};
  return strerror_r(e, buf, sizeof buf);  // GNU variant: returns the message
}

timeval toTimeval(std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(d.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((d.count() % 1000) * 1000);
  return tv;
}

}  // namespace

std::string LinkConfig::describe() const {
  if (transport == "rtu") {
    return "rtu:" + device + "@" + std::to_string(baud) + " " + std::to_string(dataBits) +
           std::string(1, parity) + std::to_string(stopBits);
  }
  return "tcp://" + host + ":" + std::to_string(port);
}

LinkConfig readLinkConfig(SettingsReader& s) {
  LinkConfig c;
  c.transport = s.choice("transport", std::string("tcp"), {"tcp", "rtu"});
  if (c.transport == "tcp") {
    c.host = s.string("host", std::nullopt);
    c.port = static_cast<int>(s.integer("port", 502, 1, 65535));
  } else {
    c.device = s.string("device", std::nullopt);
    c.baud = static_cast<int>(s.integer("baud", 19200, 300, 4'000'000));
    const std::string parity = s.choice("parity", std::string("none"), {"none", "even", "odd"});
    c.parity = parity == "even" ? 'E' : parity == "odd" ? 'O' : 'N';
    c.dataBits = static_cast<int>(s.integer("data_bits", 8, 5, 8));
    c.stopBits = static_cast<int>(s.integer("stop_bits", 1, 1, 2));
  }
  c.responseTimeout = std::chrono::milliseconds(s.integer("response_timeout_ms", 1000, 10, 60'000));
  c.byteTimeout = std::chrono::milliseconds(s.integer("byte_timeout_ms", 500, 0, 60'000));
  return c;
}

bool LinkError::needsReconnect() const {
  return kind != LinkErrorKind::exception && kind != LinkErrorKind::invalid;
}

ModbusLink::ModbusLink(LinkConfig config) : config_(std::move(config)) {}

ModbusLink::~ModbusLink() {
  std::lock_guard lock(mutex_);
  closeLocked();
  if (ctx_ != nullptr) modbus_free(ctx_);
}

LinkResult<void> ModbusLink::connect() {
  std::lock_guard lock(mutex_);
  return connectLocked();
}

LinkResult<void> ModbusLink::connectLocked() {
  if (connected_) return {};
  if (ctx_ == nullptr) {
    if (config_.transport == "rtu") {
      ctx_ = modbus_new_rtu(config_.device.c_str(), config_.baud, config_.parity, config_.dataBits,
                            config_.stopBits);
    } else {
      ctx_ = modbus_new_tcp(config_.host.c_str(), config_.port);
    }
    if (ctx_ == nullptr) {
      return tl::make_unexpected(LinkError{
          LinkErrorKind::invalid, "cannot create a Modbus context for " + config_.describe()});
    }
    // Explicit, although it is the default: never let libmodbus reconnect by itself.
    modbus_set_error_recovery(ctx_, MODBUS_ERROR_RECOVERY_NONE);
    const timeval rt = toTimeval(config_.responseTimeout);
    modbus_set_response_timeout(ctx_, static_cast<std::uint32_t>(rt.tv_sec),
                                static_cast<std::uint32_t>(rt.tv_usec));
    const timeval bt = toTimeval(config_.byteTimeout);
    modbus_set_byte_timeout(ctx_, static_cast<std::uint32_t>(bt.tv_sec),
                            static_cast<std::uint32_t>(bt.tv_usec));
  }
  if (modbus_connect(ctx_) == -1) {
    // errno is stale after a failed TCP connect in 3.1.6 (libmodbus #736): don't quote it.
    return tl::make_unexpected(
        LinkError{LinkErrorKind::notConnected, "cannot connect to " + config_.describe()});
  }
  connected_ = true;
  return {};
}

void ModbusLink::close() {
  std::lock_guard lock(mutex_);
  closeLocked();
}

void ModbusLink::closeLocked() {
  if (ctx_ != nullptr && connected_) modbus_close(ctx_);
  connected_ = false;
}

bool ModbusLink::connected() const {
  std::lock_guard lock(mutex_);
  return connected_;
}

LinkError ModbusLink::failure(const char* what) {
  const int e = errno;
  LinkError err;
  err.message = std::string(what) + " on " + config_.describe() + ": " + describeErrno(e);
  if (e == ETIMEDOUT) {
    err.kind = LinkErrorKind::timeout;
  } else if (e >= EMBXILFUN && e <= EMBXGTAR) {
    err.kind = LinkErrorKind::exception;
  } else if (e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC ||
             e == EMBMDATA || e == EMBBADSLAVE) {
    err.kind = LinkErrorKind::badData;
  } else {
    err.kind = LinkErrorKind::connection;
  }
  if (err.kind == LinkErrorKind::timeout || err.kind == LinkErrorKind::badData) {
    // A late or garbled reply would poison the next request. On TCP the stream cannot
    // be trusted any more: drop the connection. A serial bus is shared and has no
    // connection to drop: flush what is pending.
    if (config_.transport == "rtu") {
      modbus_flush(ctx_);
    } else {
      closeLocked();
    }
  } else if (err.kind == LinkErrorKind::connection) {
    closeLocked();
  }
  return err;
}

void ModbusLink::prepare(int unit, std::optional<std::chrono::milliseconds> timeout) {
  modbus_set_slave(ctx_, unit);
  const timeval rt = toTimeval(timeout.value_or(config_.responseTimeout));
  modbus_set_response_timeout(ctx_, static_cast<std::uint32_t>(rt.tv_sec),
                              static_cast<std::uint32_t>(rt.tv_usec));
}

LinkResult<std::vector<std::uint16_t>> ModbusLink::read(
    int unit, RegisterTable table, int address, int count, int chunk,
    std::optional<std::chrono::milliseconds> timeout) {
  if (count < 0 || address < 0 || address + count > 65536 || chunk < 1 ||
      chunk > kMaxRegistersPerRead) {
    return tl::make_unexpected(
        LinkError{LinkErrorKind::invalid, "cannot read " + std::to_string(count) +
                                              " registers at " + std::to_string(address) +
                                              " in chunks of " + std::to_string(chunk)});
  }
  std::lock_guard lock(mutex_);
  if (!connected_) {
    return tl::make_unexpected(
        LinkError{LinkErrorKind::notConnected, "not connected to " + config_.describe()});
  }
  prepare(unit, timeout);
  std::vector<std::uint16_t> out(static_cast<std::size_t>(count));
  for (int done = 0; done < count;) {
    const int n = std::min(chunk, count - done);
    std::uint16_t* dest = out.data() + done;
    errno = 0;
    const int rc = table == RegisterTable::holding
                       ? modbus_read_registers(ctx_, address + done, n, dest)
                       : modbus_read_input_registers(ctx_, address + done, n, dest);
    if (rc == -1) return tl::make_unexpected(failure("read"));
    if (rc != n) {
      if (config_.transport == "rtu")
        modbus_flush(ctx_);
      else
        closeLocked();
      return tl::make_unexpected(LinkError{
          LinkErrorKind::badData, "short reply: " + std::to_string(rc) + " of " +
                                      std::to_string(n) + " registers from " + config_.describe()});
    }
    done += n;
  }
  return out;
}

LinkResult<void> ModbusLink::write(int unit, int address, std::uint16_t value,
                                   std::optional<std::chrono::milliseconds> timeout) {
  std::lock_guard lock(mutex_);
  if (!connected_) {
    return tl::make_unexpected(
        LinkError{LinkErrorKind::notConnected, "not connected to " + config_.describe()});
  }
  prepare(unit, timeout);
  errno = 0;
  if (modbus_write_register(ctx_, address, value) == -1)
    return tl::make_unexpected(failure("write"));
  return {};
}

std::shared_ptr<ModbusLink> acquireLink(const LinkConfig& config) {
  if (config.transport != "rtu") return std::make_shared<ModbusLink>(config);
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<ModbusLink>> buses;
  std::lock_guard lock(mutex);
  auto& slot = buses[config.device];
  if (auto link = slot.lock()) return link;
  auto link = std::make_shared<ModbusLink>(config);
  slot = link;
  return link;
}

}  // namespace lanegate
