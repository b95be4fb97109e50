#include "drivers/sim/modbus_server.h"

#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace lanegate::sim {
namespace {

constexpr int kRegisters = 65536;

}  // namespace

std::optional<ServerFault> parseServerFault(std::string_view text) {
  if (text == "none") return ServerFault::none;
  if (text == "stall") return ServerFault::stall;
  if (text == "disconnect") return ServerFault::disconnect;
  if (text == "garbage") return ServerFault::garbage;
  if (text == "exception") return ServerFault::exception;
  return std::nullopt;
}

tl::expected<std::unique_ptr<ModbusServer>, std::string> ModbusServer::start(
    const ServerOptions& options) {
  std::unique_ptr<ModbusServer> s(new ModbusServer());
  s->options_ = options;
  s->map_ = modbus_mapping_new(0, 0, kRegisters, kRegisters);
  if (s->map_ == nullptr) return tl::make_unexpected(std::string("cannot allocate registers"));
  if (options.transport == "rtu") {
    s->ctx_ = modbus_new_rtu(options.device.c_str(), options.baud, options.parity, options.dataBits,
                             options.stopBits);
    if (s->ctx_ == nullptr)
      return tl::make_unexpected("cannot create an RTU context for " + options.device);
    modbus_set_slave(s->ctx_, options.unitId);
    if (modbus_connect(s->ctx_) == -1)
      return tl::make_unexpected("cannot open " + options.device + ": " + modbus_strerror(errno));
    return s;
  }
  s->ctx_ = modbus_new_tcp(options.host.c_str(), options.port);
  if (s->ctx_ == nullptr)
    return tl::make_unexpected("cannot create a TCP context for " + options.host);
  s->listenFd_ = modbus_tcp_listen(s->ctx_, 16);
  if (s->listenFd_ == -1)
    return tl::make_unexpected("cannot listen on " + options.host + ":" +
                               std::to_string(options.port) + ": " + modbus_strerror(errno));
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  if (getsockname(s->listenFd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    s->port_ = ntohs(addr.sin_port);
  // A client's request must arrive whole soon after poll() saw its first byte.
  modbus_set_indication_timeout(s->ctx_, 1, 0);
  return s;
}

ModbusServer::~ModbusServer() {
  for (int fd : clients_) ::close(fd);
  if (listenFd_ != -1) ::close(listenFd_);
  if (ctx_ != nullptr) {
    if (options_.transport == "rtu") {
      modbus_close(ctx_);
    } else {
      modbus_set_socket(ctx_, -1);  // the client sockets were ours and are closed
    }
    modbus_free(ctx_);
  }
  if (map_ != nullptr) modbus_mapping_free(map_);
}

std::string ModbusServer::where() const {
  if (options_.transport == "rtu") return "rtu:" + options_.device;
  return options_.host + ":" + std::to_string(port_);
}

void ModbusServer::setFault(ServerFault fault) {
  std::lock_guard l(mutex_);
  fault_ = fault;
}

void ModbusServer::setHook(std::function<void(const ServerRequest&)> hook) {
  std::lock_guard l(mutex_);
  hook_ = std::move(hook);
}

void ModbusServer::setAfterHook(std::function<void(const ServerRequest&)> hook) {
  std::lock_guard l(mutex_);
  afterHook_ = std::move(hook);
}

std::span<std::uint16_t> ModbusServer::holding() {
  return {map_->tab_registers, static_cast<std::size_t>(kRegisters)};
}

std::span<std::uint16_t> ModbusServer::input() {
  return {map_->tab_input_registers, static_cast<std::size_t>(kRegisters)};
}

void ModbusServer::dropClients() {
  for (int fd : clients_) ::close(fd);
  clients_.clear();
}

void ModbusServer::closeClient(int fd) {
  ::close(fd);
  clients_.erase(std::remove(clients_.begin(), clients_.end(), fd), clients_.end());
}

void ModbusServer::serveOnce(std::chrono::milliseconds slice) {
  std::vector<pollfd> fds;
  const bool rtu = options_.transport == "rtu";
  if (rtu) {
    if (ctx_ == nullptr) return;  // the serial device vanished
    fds.push_back({modbus_get_socket(ctx_), POLLIN, 0});
  } else {
    fds.push_back({listenFd_, POLLIN, 0});
    for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
  }
  const int n = ::poll(fds.data(), fds.size(), static_cast<int>(slice.count()));
  if (n <= 0) return;  // timeout, or EINTR from a signal: the caller checks its flag
  if (rtu) {
    if ((fds[0].revents & POLLIN) != 0) handle(fds[0].fd);
    return;
  }
  if ((fds[0].revents & POLLIN) != 0) {
    const int fd = ::accept(listenFd_, nullptr, nullptr);
    if (fd != -1) clients_.push_back(fd);
  }
  for (std::size_t i = 1; i < fds.size(); ++i)
    if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) handle(fds[i].fd);
}

void ModbusServer::handle(int fd) {
  const bool rtu = options_.transport == "rtu";
  std::array<std::uint8_t, MODBUS_TCP_MAX_ADU_LENGTH> query{};
  if (!rtu) modbus_set_socket(ctx_, fd);
  const int rc = modbus_receive(ctx_, query.data());
  if (rc == 0) {
    // RTU: a request for another unit. libmodbus 3.1.6 then swallows the next frame as
    // that unit's reply (confirmation_to_ignore); on a bus where the other unit is
    // absent, that frame is the next request to us. A fresh context forgets the flag.
    modbus_close(ctx_);
    modbus_free(ctx_);
    ctx_ = modbus_new_rtu(options_.device.c_str(), options_.baud, options_.parity,
                          options_.dataBits, options_.stopBits);
    if (ctx_ != nullptr) {
      modbus_set_slave(ctx_, options_.unitId);
      if (modbus_connect(ctx_) == -1) {
        modbus_free(ctx_);
        ctx_ = nullptr;
      }
    }
    return;
  }
  if (rc == -1) {
    if (rtu) {
      modbus_flush(ctx_);
    } else {
      closeClient(fd);  // the peer closed, or sent garbage
    }
    return;
  }
  const auto hl = static_cast<std::size_t>(modbus_get_header_length(ctx_));
  ServerRequest req;
  req.function = query[hl];
  req.address = (query[hl + 1] << 8) | query[hl + 2];
  req.count =
      req.function == MODBUS_FC_WRITE_SINGLE_REGISTER ? 1 : (query[hl + 3] << 8) | query[hl + 4];

  std::lock_guard l(mutex_);
  if (hook_) hook_(req);
  switch (fault_) {
    case ServerFault::stall:
      return;
    case ServerFault::disconnect:
      if (!rtu) closeClient(fd);
      return;
    case ServerFault::garbage: {
      if (rtu) {
        const std::array<std::uint8_t, 7> junk{
            static_cast<std::uint8_t>(options_.unitId), 3, 2, 0xDE, 0xAD, 0x00, 0x00};  // bad CRC
        [[maybe_unused]] const auto w = ::write(fd, junk.data(), junk.size());
      } else {
        // A well-formed header with someone else's transaction id: libmodbus reports
        // EMBBADDATA, as it does for a late reply to an earlier request.
        const std::array<std::uint8_t, 11> junk{static_cast<std::uint8_t>(query[0] ^ 0x55U),
                                                query[1],
                                                0,
                                                0,
                                                0,
                                                5,
                                                query[6],
                                                query[7],
                                                2,
                                                0xDE,
                                                0xAD};
        [[maybe_unused]] const auto w = ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
      }
      return;
    }
    case ServerFault::exception:
      modbus_reply_exception(ctx_, query.data(), MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS);
      return;
    case ServerFault::none:
      break;
  }
  modbus_reply(ctx_, query.data(), rc, map_);
  if (afterHook_) afterHook_(req);
}

}  // namespace lanegate::sim
