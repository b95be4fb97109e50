// A Modbus device that answers anything: a loopback TCP server in this process replies to
// the real ModbusLink (libmodbus underneath) with the fuzzer's bytes, as libmodbus's own
// FuzzClient does for libmodbus. The first input byte picks the request (read holding or
// input registers, how many, or a write) and whether the reply's transaction id is patched
// to match the request, so that the fuzzer also gets past libmodbus's header checks.

#include "drivers/modbus_link.h"
#include "tests/fuzz/fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace {

/// Accepts one connection at a time, reads one request and answers with `reply`, then
/// closes, so the link never waits for a timeout.
class FuzzedDevice {
 public:
  FuzzedDevice() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(listener_, 4) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      std::abort();  // the harness, not the input
    port_ = ntohs(addr.sin_port);
    std::thread([this] { serve(); }).detach();
  }

  [[nodiscard]] int port() const { return port_; }

  void setReply(std::string reply, bool patchTid) {
    const std::lock_guard lock(mutex_);
    reply_ = std::move(reply);
    patchTid_ = patchTid;
  }

 private:
  void serve() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      char request[260];
      const ssize_t n = ::recv(fd, request, sizeof request, 0);
      std::string reply;
      {
        const std::lock_guard lock(mutex_);
        reply = reply_;
        if (patchTid_ && n >= 2 && reply.size() >= 2) reply.replace(0, 2, request, 2);
      }
      if (n > 0 && !reply.empty()) (void)!::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::mutex mutex_;
  std::string reply_;
  bool patchTid_ = false;
};

FuzzedDevice& device() {
  static FuzzedDevice* d = new FuzzedDevice;  // lives as long as the process, as its thread
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t op = data[0];
  device().setReply(std::string(lanegate::fuzz::text(data + 1, size - 1)), (op & 0x80) != 0);

  lanegate::LinkConfig config;
  config.port = device().port();
  config.responseTimeout = std::chrono::milliseconds(500);
  config.byteTimeout = std::chrono::milliseconds(100);
  lanegate::ModbusLink link(config);
  if (!link.connect()) return 0;
  const int count = 1 + (op & 0x3f) * 2;  // 1..127: also past the 125-register limit
  if ((op & 0x40) != 0) {
    const auto r = link.write(1, op & 0x3f, 0x1234);
    if (!r) (void)r.error().needsReconnect();
  } else {
    const auto table =
        (op & 1) != 0 ? lanegate::RegisterTable::input : lanegate::RegisterTable::holding;
    const auto r = link.read(1, table, 0, count, 125);
    if (r && r->size() != static_cast<std::size_t>(count))
      std::abort();  // a read is whole or fails
  }
  link.close();
  return 0;
}
