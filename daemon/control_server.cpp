#include "daemon/control_server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/log.h"
#include "lane/payloads.h"

namespace lanegate {
namespace {

// A command name as it may appear in a log line or an error: bounded, whatever was sent.
std::string shortened(const std::string& text) {
  return text.size() <= 64 ? text : text.substr(0, 64) + "...";
}

// The gid of a group, or nullopt when there is no such group.
std::optional<gid_t> groupId(const std::string& name) {
  group g{};
  group* found = nullptr;
  std::vector<char> buf(1 << 16);
  if (::getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found) != 0 || !found)
    return std::nullopt;
  return found->gr_gid;
}

}  // namespace

void handleControlLine(const std::string& text, const ControlSocketOptions& options,
                       const std::string& peer, const ControlHandler& handler,
                       const std::shared_ptr<ControlReply>& reply) {
  nlohmann::json request;
  try {
    request = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // The parser's message quotes the bytes it stopped at: the reply's dump keeps them
    // printable.
    reply->finish(std::string("request is not JSON: ") + e.what());
    return;
  }
  if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
    reply->finish("request must be an object with a string \"cmd\"");
    return;
  }
  const std::string cmd = request["cmd"].get<std::string>();
  if (!options.commands.empty() && !options.commands.count(cmd)) {
    log::get("daemon")->warn("{}: refused '{}' from {}", options.path, shortened(cmd), peer);
    const bool known = !options.otherSocket.empty();
    reply->refuse("'" + shortened(cmd) + "' is not accepted on " + options.path +
                  (known ? "; it needs the admin socket " + options.otherSocket : ""));
    return;
  }
  if (options.logPeers)
    log::get("daemon")->info("{}: '{}' from {}", options.path, shortened(cmd), peer);
  try {
    handler(request, reply);
  } catch (const std::exception& e) {
    // The request ends with an error; the daemon goes on.
    log::get("daemon")->error("{}: '{}' failed: {}", options.path, shortened(cmd), e.what());
    reply->finish("internal error while handling '" + shortened(cmd) + "': " + e.what());
  } catch (...) {
    log::get("daemon")->error("{}: '{}' failed", options.path, shortened(cmd));
    reply->finish("internal error while handling '" + shortened(cmd) + "'");
  }
}

// One client connection: reads request lines, writes answers in order.
struct ControlServer::Session : std::enable_shared_from_this<ControlServer::Session> {
  // Holds its session until the answer is finished: an answer may wait for the
  // broker while no read or write is pending on the socket.
  struct Reply final : ControlReply {
    std::shared_ptr<Session> session;
    void line(const nlohmann::json& j) override {
      if (session) session->write(lane::dumpJson(j) + "\n");
    }
    void finish(const std::string& error) override {
      nlohmann::json j{{"done", true}};
      if (!error.empty()) j["error"] = error;
      finishWith(j);
    }
    void refuse(const std::string& error) override {
      finishWith({{"done", true}, {"refused", true}, {"error", error}});
    }
    void finishWith(const nlohmann::json& last) {
      if (!session) return;
      auto s = std::move(session);
      s->write(lane::dumpJson(last) + "\n");
      s->busy = false;
      s->readNext();
    }
  };

  Session(asio::local::stream_protocol::socket s, ControlServer& owner)
      : socket(std::move(s)), idle(socket.get_executor()), server(owner), open(owner.open_) {
    ++*open;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      peer = "pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid) + " gid " +
             std::to_string(cred.gid);
    else
      peer = std::string("an unknown peer (SO_PEERCRED: ") + std::strerror(errno) + ")";
  }
  ~Session() { --*open; }

  const ControlSocketOptions& options() const { return server.options_; }

  void readNext() {
    if (busy || closing) return;
    auto self = shared_from_this();
    // A client that connects and says nothing does not hold a connection for ever.
    idle.expires_after(options().idleTimeout);
    idle.async_wait([self](const boost::system::error_code& ec) {
      if (ec) return;
      log::get("daemon")->debug("{}: closing a connection idle for {} ms ({})",
                                self->options().path, self->options().idleTimeout.count(),
                                self->peer);
      boost::system::error_code ignored;
      self->socket.close(ignored);
    });
    // The buffer stops at maxLineBytes: a longer line is refused before it is in memory.
    asio::async_read_until(
        socket, asio::dynamic_buffer(input, options().maxLineBytes), '\n',
        [self](const boost::system::error_code& ec, std::size_t n) {
          self->idle.cancel();
          try {
            if (ec == asio::error::not_found) {
              self->input.clear();
              self->refuse("request line longer than " +
                           std::to_string(self->options().maxLineBytes) + " bytes");
              return;
            }
            if (ec) return;  // the client went away, or was idle too long
            std::string text = self->input.substr(0, n - 1);
            self->input.erase(0, n);
            self->handle(text);
          } catch (const std::exception& e) {
            log::get("daemon")->error("{}: a request failed: {}", self->options().path, e.what());
            self->refuse(std::string("internal error: ") + e.what());
          }
        });
  }

  // Answers with an error and closes the connection once it is written.
  void refuse(const std::string& why) {
    closing = true;
    write(lane::dumpJson(nlohmann::json{{"done", true}, {"error", why}}) + "\n");
  }

  void handle(const std::string& text) {
    auto reply = std::make_shared<Reply>();
    reply->session = shared_from_this();
    busy = true;
    handleControlLine(text, options(), peer, server.handler_, reply);
  }

  void write(std::string data) {
    const bool idleWriter = outbox.empty();
    outbox.push_back(std::move(data));
    if (idleWriter) writeNext();
  }

  void writeNext() {
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(outbox.front()),
                      [self](const boost::system::error_code& ec, std::size_t) {
                        if (ec) return;
                        self->outbox.pop_front();
                        if (!self->outbox.empty()) {
                          self->writeNext();
                        } else if (self->closing) {
                          boost::system::error_code ignored;
                          self->socket.shutdown(asio::socket_base::shutdown_both, ignored);
                          self->socket.close(ignored);
                        }
                      });
  }

  asio::local::stream_protocol::socket socket;
  asio::steady_timer idle;
  ControlServer& server;
  std::shared_ptr<std::size_t> open;
  std::string peer;
  std::string input;
  std::deque<std::string> outbox;
  bool busy = false, closing = false;
};

ControlServer::ControlServer(asio::io_context& io, ControlSocketOptions options,
                             ControlHandler handler)
    : io_(io),
      options_(std::move(options)),
      handler_(std::move(handler)),
      acceptor_(io),
      retry_(io) {}

ControlServer::~ControlServer() {
  try {
    close();
  } catch (...) {
    // Going away: a socket file left behind is replaced at the next start.
  }
}

std::string ControlServer::listen() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) return "cannot create the directory of control socket " + path + ": " + ec.message();
  if (fs::exists(path, ec)) {
    // A socket file left by a crash is stale; one that answers belongs to a running daemon.
    asio::local::stream_protocol::socket probe(io_);
    boost::system::error_code pec;
    probe.connect(asio::local::stream_protocol::endpoint(path), pec);
    if (!pec) return "control socket " + path + " is in use: is another lanegated running?";
    fs::remove(path, ec);
  }
  boost::system::error_code bec;
  acceptor_.open(asio::local::stream_protocol(), bec);
  if (!bec) {
    // Born owner-only, so that nobody connects before the group and mode below are set.
    const mode_t old = ::umask(0177);
    acceptor_.bind(asio::local::stream_protocol::endpoint(path), bec);
    ::umask(old);
  }
  if (!bec) acceptor_.listen(16, bec);
  if (bec) return "cannot listen on control socket " + path + ": " + bec.message();
  listening_ = true;

  auto logger = log::get("daemon");
  bool grouped = options_.group.empty();
  if (!options_.group.empty()) {
    if (const auto gid = groupId(options_.group); !gid) {
      logger->warn(
          "group '{}' does not exist: {} keeps the daemon's group{}", options_.group, path,
          options_.groupRequired ? " and mode 0600 (only the daemon's user and root)" : "");
    } else if (::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
      logger->error("cannot give {} to group '{}': {}{}", path, options_.group,
                    std::strerror(errno),
                    options_.groupRequired ? "; mode 0600 (only the daemon's user and root)" : "");
    } else {
      grouped = true;
    }
  }
  const mode_t mode = grouped || !options_.groupRequired ? 0660 : 0600;
  if (::chmod(path.c_str(), mode) != 0) {
    const std::string why = std::strerror(errno);
    close();
    return "cannot set the mode of control socket " + path + ": " + why;
  }
  logger->info("control socket {} (group {}, mode 0{:o}){}", path,
               options_.group.empty() || !grouped ? "of the daemon" : "'" + options_.group + "'",
               mode, options_.commands.empty() ? ": all commands" : "");
  acceptNext();
  return "";
}

void ControlServer::acceptNext() {
  acceptor_.async_accept([this](const boost::system::error_code& ec,
                                asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    try {
      if (ec) {
        // E.g. out of file descriptors: try again a little later rather than spin.
        log::get("daemon")->warn("{}: accept failed: {}", options_.path, ec.message());
        retry_.expires_after(std::chrono::milliseconds(200));
        retry_.async_wait([this](const boost::system::error_code& tec) {
          if (!tec && acceptor_.is_open()) acceptNext();
        });
        return;
      }
      if (*open_ >= options_.maxConnections) {
        // Say why, then hang up; the connections already open are not disturbed.
        auto s = std::make_shared<asio::local::stream_protocol::socket>(std::move(socket));
        auto text = std::make_shared<std::string>(
            lane::dumpJson({{"done", true},
                            {"error", "too many connections to " + options_.path + " (at most " +
                                          std::to_string(options_.maxConnections) + ")"}}) +
            "\n");
        log::get("daemon")->warn("{}: refused a connection: {} already open", options_.path,
                                 *open_);
        asio::async_write(*s, asio::buffer(*text),
                          [s, text](const boost::system::error_code&, std::size_t) {
                            boost::system::error_code ignored;
                            s->close(ignored);
                          });
      } else {
        std::make_shared<Session>(std::move(socket), *this)->readNext();
      }
    } catch (const std::exception& e) {
      log::get("daemon")->error("{}: cannot serve a connection: {}", options_.path, e.what());
    }
    acceptNext();
  });
}

void ControlServer::close() {
  if (!acceptor_.is_open()) return;
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_.cancel();
  std::error_code fec;
  if (listening_) std::filesystem::remove(options_.path, fec);
  listening_ = false;
}

}  // namespace lanegate
