#pragma once
// /metrics (Prometheus text format) and /healthz (200 healthy, 503 and the reason) over
// plain HTTP/1.1, served by Boost.Beast on the io thread. Off unless `metrics.listen` is
// set. Bounded like the control socket: a request is a GET with at most 8 KiB of header
// and no body, a connection gets 10 s to send it and is closed after the answer, and at
// most 16 connections are open at once.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "daemon/asio.h"
#include "daemon/config.h"

namespace lanegate {

/// The daemon's HTTP endpoint for monitoring.
class MetricsServer {
 public:
  /// What a request is answered with; both run on the io thread.
  struct Handlers {
    std::function<std::string()> metrics;                  ///< the exposition page
    std::function<std::pair<bool, std::string>()> health;  ///< healthy, and why not
  };
  MetricsServer(asio::io_context& io, ListenAddress where, Handlers handlers);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;
  /// Binds and starts accepting; "" or why it could not.
  std::string listen();
  /// Stops accepting; connections in progress end on their own.
  void close();

 private:
  class Session;
  void accept();

  ListenAddress where_;
  std::shared_ptr<Handlers> handlers_;
  asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);
};

}  // namespace lanegate
