#include "daemon/metrics_server.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "daemon/log.h"

namespace lanegate {
namespace beast = boost::beast;
namespace http = beast::http;

namespace {
constexpr std::size_t kMaxConnections = 16;
constexpr std::uint32_t kMaxHeaderBytes = 8192;
constexpr auto kRequestTimeout = std::chrono::seconds(10);
}  // namespace

/// One connection: read one request, answer it, close.
class MetricsServer::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(asio::ip::tcp::socket socket, std::shared_ptr<Handlers> handlers,
          std::shared_ptr<std::size_t> open)
      : stream_(std::move(socket)), handlers_(std::move(handlers)), open_(std::move(open)) {
    ++*open_;
    parser_.header_limit(kMaxHeaderBytes);
    parser_.body_limit(0);
  }
  ~Session() { --*open_; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() {
    stream_.expires_after(kRequestTimeout);
    http::async_read(
        stream_, buffer_, parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
          if (ec) {
            // A malformed or oversized request gets 400; a closed or
            // timed-out connection nothing.
            if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
                ec != asio::error::operation_aborted)
              self->answer(http::status::bad_request, "bad request: " + ec.message() + "\n");
            return;
          }
          self->handle();
        });
  }

 private:
  void handle() {
    const auto& req = parser_.get();
    if (req.method() != http::verb::get) {
      answer(http::status::method_not_allowed, "only GET\n");
      return;
    }
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (path == "/metrics") {
      answer(http::status::ok, handlers_->metrics(), "text/plain; version=0.0.4; charset=utf-8");
    } else if (path == "/healthz") {
      const auto [healthy, why] = handlers_->health();
      answer(healthy ? http::status::ok : http::status::service_unavailable,
             healthy ? "ok\n" : why + "\n");
    } else {
      answer(http::status::not_found, "not found: /metrics and /healthz are served here\n");
    }
  }

  void answer(http::status status, std::string body,
              const char* type = "text/plain; charset=utf-8") {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "lanegated");
    res->set(http::field::content_type, type);
    if (status == http::status::method_not_allowed) res->set(http::field::allow, "GET");
    res->keep_alive(false);
    res->body() = std::move(body);
    res->prepare_payload();
    stream_.expires_after(kRequestTimeout);
    http::async_write(
        stream_, *res, [self = shared_from_this(), res](beast::error_code, std::size_t) {
          beast::error_code ignored;
          self->stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{kMaxHeaderBytes};
  http::request_parser<http::empty_body> parser_;
  std::shared_ptr<Handlers> handlers_;
  std::shared_ptr<std::size_t> open_;
};

MetricsServer::MetricsServer(asio::io_context& io, ListenAddress where, Handlers handlers)
    : where_(std::move(where)),
      handlers_(std::make_shared<Handlers>(std::move(handlers))),
      acceptor_(io) {}

MetricsServer::~MetricsServer() { close(); }

std::string MetricsServer::listen() {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(where_.host, ec);
  const std::string where = where_.host + ":" + std::to_string(where_.port);
  if (ec) return "metrics.listen: bad address " + where + ": " + ec.message();
  const asio::ip::tcp::endpoint endpoint(address, static_cast<unsigned short>(where_.port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "metrics.listen: cannot listen on " + where + ": " + ec.message();
  log::get("daemon")->info("metrics: http://{}/metrics and /healthz", where);
  accept();
  return "";
}

void MetricsServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

void MetricsServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (*open_ >= kMaxConnections) {
        boost::system::error_code ignored;
        socket.close(ignored);  // a scraper retries; the daemon's work comes first
      } else {
        std::make_shared<Session>(std::move(socket), handlers_, open_)->start();
      }
    }
    accept();
  });
}

}  // namespace lanegate
