#include "daemon/control_server.h"

#include <sys/stat.h>

#include <deque>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "daemon/log.h"

namespace lanegate {

// One client connection: reads request lines, writes answers in order.
struct ControlServer::Session : std::enable_shared_from_this<ControlServer::Session> {
  // Holds its session until the answer is finished: an answer may wait for the
  // broker while no read or write is pending on the socket.
  struct Reply final : ControlReply {
    std::shared_ptr<Session> session;
    void line(const nlohmann::json& j) override {
      if (session) session->write(j.dump() + "\n");
    }
    void finish(const std::string& error) override {
      if (!session) return;
      nlohmann::json j{{"done", true}};
      if (!error.empty()) j["error"] = error;
      auto s = std::move(session);
      s->write(j.dump() + "\n");
      s->busy = false;
      s->readNext();
    }
  };

  Session(asio::local::stream_protocol::socket s, ControlHandler& h)
      : socket(std::move(s)), handler(h) {}

  void readNext() {
    if (busy) return;
    auto self = shared_from_this();
    asio::async_read_until(socket, asio::dynamic_buffer(input, 1 << 20), '\n',
                           [self](const boost::system::error_code& ec, std::size_t n) {
                             if (ec) return;  // client gone, or a line over 1 MiB
                             std::string text = self->input.substr(0, n - 1);
                             self->input.erase(0, n);
                             self->handle(text);
                           });
  }

  void handle(const std::string& text) {
    auto reply = std::make_shared<Reply>();
    reply->session = shared_from_this();
    busy = true;
    nlohmann::json request;
    try {
      request = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      reply->finish(std::string("request is not JSON: ") + e.what());
      return;
    }
    if (!request.is_object() || !request.contains("cmd") || !request["cmd"].is_string()) {
      reply->finish("request must be an object with a string \"cmd\"");
      return;
    }
    handler(request, reply);
  }

  void write(std::string data) {
    const bool idle = outbox.empty();
    outbox.push_back(std::move(data));
    if (idle) writeNext();
  }

  void writeNext() {
    auto self = shared_from_this();
    asio::async_write(socket, asio::buffer(outbox.front()),
                      [self](const boost::system::error_code& ec, std::size_t) {
                        if (ec) return;
                        self->outbox.pop_front();
                        if (!self->outbox.empty()) self->writeNext();
                      });
  }

  asio::local::stream_protocol::socket socket;
  ControlHandler& handler;
  std::string input;
  std::deque<std::string> outbox;
  bool busy = false;
};

ControlServer::ControlServer(asio::io_context& io, ControlHandler handler)
    : io_(io), handler_(std::move(handler)), acceptor_(io) {}

ControlServer::~ControlServer() { close(); }

std::string ControlServer::listen(const std::string& path) {
  namespace fs = std::filesystem;
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
  if (!bec) acceptor_.bind(asio::local::stream_protocol::endpoint(path), bec);
  if (!bec) acceptor_.listen(16, bec);
  if (bec) return "cannot listen on control socket " + path + ": " + bec.message();
  ::chmod(path.c_str(), 0660);  // owner and group (technicians) only
  path_ = path;
  acceptNext();
  return "";
}

void ControlServer::acceptNext() {
  acceptor_.async_accept([this](const boost::system::error_code& ec,
                                asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (!ec) std::make_shared<Session>(std::move(socket), handler_)->readNext();
    acceptNext();
  });
}

void ControlServer::close() {
  if (!acceptor_.is_open()) return;
  boost::system::error_code ec;
  acceptor_.close(ec);
  std::error_code fec;
  if (!path_.empty()) std::filesystem::remove(path_, fec);
}

}  // namespace lanegate
