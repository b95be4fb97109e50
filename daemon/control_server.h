#pragma once
// The control socket: a Unix stream socket speaking JSON lines. A client sends one
// request object a line, e.g. {"cmd":"status"}; the daemon answers with one or more
// JSON lines and ends each answer with a line holding "done": true.

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "daemon/asio.h"

namespace lanegate {

/// Sends the lines of one answer; `finish` ends it. Safe to keep and use later on the
/// io thread (e.g. after an asynchronous accept completes).
class ControlReply {
 public:
  virtual ~ControlReply() = default;
  /// Sends one JSON line.
  virtual void line(const nlohmann::json& j) = 0;
  /// Ends the answer with {"done": true, ...extra} (ok) or {"done": true, "error": ...}.
  virtual void finish(const std::string& error = "") = 0;
};

/// Handles one request; runs on the io thread.
using ControlHandler =
    std::function<void(const nlohmann::json& request, std::shared_ptr<ControlReply> reply)>;

/// Listens on a Unix socket and dispatches requests.
class ControlServer {
 public:
  ControlServer(asio::io_context& io, ControlHandler handler);
  ~ControlServer();
  /// Binds the socket (creating its directory, replacing a stale socket file);
  /// returns an error text when it cannot.
  std::string listen(const std::string& path);
  /// Stops accepting and removes the socket file.
  void close();

 private:
  void acceptNext();
  struct Session;

  asio::io_context& io_;
  ControlHandler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
};

}  // namespace lanegate
