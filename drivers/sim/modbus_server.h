#pragma once
// A small libmodbus server (TCP on loopback, or RTU on a serial device) for the
// simulators and for tests: one thread serves every client with poll(), as libmodbus's
// own multi-client example does with select(). Registers live in one mapping guarded by
// a mutex, so a test or a simulator may change them between requests, and a hook sees
// each request before it is answered (to change data mid-snapshot, count chunk sizes,
// or follow a command register). Faults can be injected: stall, disconnect, garbage,
// exception.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

struct _modbus;            // NOLINT(bugprone-reserved-identifier): libmodbus names it so
struct _modbus_mapping_t;  // NOLINT(bugprone-reserved-identifier): libmodbus names it so

namespace lanegate::sim {

/// A fault the server plays instead of answering.
enum class ServerFault {
  none,        ///< answer normally
  stall,       ///< read requests, never answer
  disconnect,  ///< close the connection on every request (TCP), stay silent (RTU)
  garbage,     ///< answer with a malformed frame (wrong transaction id / bad CRC)
  exception,   ///< answer every request with exception 02 (illegal data address)
};

/// Parses "none", "stall", "disconnect", "garbage", "exception".
std::optional<ServerFault> parseServerFault(std::string_view text);

/// One request, as the hook sees it.
struct ServerRequest {
  int function = 0;  ///< 3 read holding, 4 read input, 6 write one, 16 write many, ...
  int address = 0;   ///< first register
  int count = 0;     ///< registers (1 for function 6)
};

/// Where to serve.
struct ServerOptions {
  std::string transport = "tcp";   ///< "tcp" or "rtu"
  std::string host = "127.0.0.1";  ///< tcp
  int port = 0;                    ///< tcp; 0 = let the kernel choose
  std::string device;              ///< rtu: serial device path
  int baud = 19200;                ///< rtu
  char parity = 'N';               ///< rtu
  int dataBits = 8;                ///< rtu
  int stopBits = 1;                ///< rtu
  int unitId = 1;                  ///< rtu: the slave id answered (TCP answers any)
};

/// A Modbus server with 65,536 holding and 65,536 input registers.
class ModbusServer {
 public:
  /// Binds (TCP) or opens (RTU); an error message on failure.
  static tl::expected<std::unique_ptr<ModbusServer>, std::string> start(
      const ServerOptions& options);
  ~ModbusServer();
  ModbusServer(const ModbusServer&) = delete;
  ModbusServer& operator=(const ModbusServer&) = delete;

  /// The TCP port bound (0 for RTU).
  [[nodiscard]] int port() const { return port_; }
  /// "127.0.0.1:PORT" or "rtu:DEVICE".
  [[nodiscard]] std::string where() const;
  /// Waits up to `slice` for requests and answers them; returns after one round.
  void serveOnce(std::chrono::milliseconds slice);
  /// Closes every client connection (TCP); they may connect again.
  void dropClients();

  /// Chooses the fault to play from the next request on.
  void setFault(ServerFault fault);
  /// Called with the registers locked, before each request is answered.
  void setHook(std::function<void(const ServerRequest&)> hook);
  /// Called with the registers locked, after each request was answered (e.g. to pick up
  /// a command written by function 06).
  void setAfterHook(std::function<void(const ServerRequest&)> hook);

  /// Locks the registers; hold the lock while using holding() / input().
  [[nodiscard]] std::unique_lock<std::mutex> lock() { return std::unique_lock(mutex_); }
  /// Holding registers (lock first; hooks already run locked).
  [[nodiscard]] std::span<std::uint16_t> holding();
  /// Input registers (lock first; hooks already run locked).
  [[nodiscard]] std::span<std::uint16_t> input();

 private:
  ModbusServer() = default;
  void handle(int fd);
  void closeClient(int fd);

  ServerOptions options_;
  _modbus* ctx_ = nullptr;
  _modbus_mapping_t* map_ = nullptr;
  int listenFd_ = -1;
  int port_ = 0;
  std::vector<int> clients_;
  std::mutex mutex_;
  ServerFault fault_ = ServerFault::none;
  std::function<void(const ServerRequest&)> hook_, afterHook_;
};

}  // namespace lanegate::sim
