#pragma once
// A control socket: a Unix stream socket speaking JSON lines. A client sends one request
// object a line, e.g. {"cmd":"status"}; the daemon answers with one or more JSON lines and
// ends each answer with a line holding "done": true. Who may connect is decided by the
// socket file's group and mode (0660), which the kernel checks at connect whatever user
// namespace the daemon runs in; each socket also accepts only its own commands.
// Hostile input ends a request or a connection, never the process: a line is bounded
// before it is read into memory, connections are capped, idle ones closed, and a handler
// that throws answers with an error.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <set>
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
  /// Ends the answer as refused by this socket: {"done": true, "refused": true, "error": ...}.
  virtual void refuse(const std::string& error) { finish(error); }
};

/// Handles one request; runs on the io thread.
using ControlHandler =
    std::function<void(const nlohmann::json& request, std::shared_ptr<ControlReply> reply)>;

/// One control socket's settings.
struct ControlSocketOptions {
  std::string path;                ///< where the socket file goes
  std::string group;               ///< the group given the socket (mode 0660); "" = the daemon's
  bool groupRequired = false;      ///< without `group`, mode 0600 (owner only) instead of 0660
  std::set<std::string> commands;  ///< the commands it accepts; empty = all
  std::string otherSocket;         ///< named in the refusal of a command it does not accept
  bool logPeers = false;           ///< log each request with the peer's SO_PEERCRED
  std::size_t maxConnections = 16;
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(60)};
  std::size_t maxLineBytes = std::size_t{64} * 1024;
};

/// One request line as a control socket handles it (parsed, checked against the socket's
/// commands, handed to `handler`), without the socket: what a connection does with each
/// line, callable from tests and the fuzz target. Never throws; `peer` names the client in
/// logs.
void handleControlLine(const std::string& text, const ControlSocketOptions& options,
                       const std::string& peer, const ControlHandler& handler,
                       const std::shared_ptr<ControlReply>& reply);

/// Listens on a Unix socket and dispatches requests.
class ControlServer {
 public:
  ControlServer(asio::io_context& io, ControlSocketOptions options, ControlHandler handler);
  ~ControlServer();
  /// Binds the socket (creating its directory, replacing a stale socket file) and gives
  /// it its group and mode; returns an error text when it cannot.
  std::string listen();
  /// Stops accepting and removes the socket file.
  void close();

 private:
  void acceptNext();
  struct Session;

  asio::io_context& io_;
  ControlSocketOptions options_;
  ControlHandler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  asio::steady_timer retry_;                                              // after a failed accept
  std::shared_ptr<std::size_t> open_ = std::make_shared<std::size_t>(0);  // live sessions
  bool listening_ = false;
};

}  // namespace lanegate
