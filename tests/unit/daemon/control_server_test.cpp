// The control server on its own (issue 13, acceptance 1): a handler that throws ends its
// request with an error answer, never the loop; the connection goes on serving; a socket
// answers only its own commands. A real Unix socket and a real io_context thread.
#include "daemon/control_server.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "tests/support/harness.h"

namespace lanegate {
namespace {

using test::TempDir;

// A server on its own io thread, stopped and joined at the end.
class Served {
 public:
  Served(const std::string& path, std::set<std::string> commands, ControlHandler handler) {
    ControlSocketOptions o;
    o.path = path;
    o.commands = std::move(commands);
    o.otherSocket = "/elsewhere/admin.sock";
    server_ = std::make_unique<ControlServer>(io_, o, std::move(handler));
    error_ = server_->listen();
    thread_ = std::thread([this] {
      try {
        io_.run();
      } catch (const std::exception& e) {
        escaped_ = e.what();  // what the daemon's last-resort loop would have to catch
      } catch (...) {
        escaped_ = "a non-standard exception";
      }
    });
  }
  ~Served() {
    io_.stop();
    thread_.join();
  }
  Served(const Served&) = delete;
  Served& operator=(const Served&) = delete;
  [[nodiscard]] const std::string& error() const { return error_; }
  /// Set when an exception got out of a handler into run().
  [[nodiscard]] const std::string& escaped() const { return escaped_; }

 private:
  asio::io_context io_;
  std::unique_ptr<ControlServer> server_;
  std::string error_, escaped_;
  std::thread thread_;
};

// One blocking client connection.
class Client {
 public:
  explicit Client(const std::string& path) : fd_(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    timeval tv{5, 0};  // a missing answer fails the test instead of hanging it
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ok_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }
  /// Sends a request line; returns every answer line up to and including "done".
  std::vector<nlohmann::json> ask(const std::string& line) {
    const std::string out = line + "\n";
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) < 0) return {};
    std::vector<nlohmann::json> answer;
    while (true) {
      const auto nl = buf_.find('\n');
      if (nl == std::string::npos) {
        char chunk[4096];
        const ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n <= 0) return answer;
        buf_.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      answer.push_back(nlohmann::json::parse(buf_.substr(0, nl), nullptr, false));
      buf_.erase(0, nl + 1);
      if (answer.back().value("done", false)) return answer;
    }
  }

 private:
  int fd_;
  bool ok_ = false;
  std::string buf_;
};

void handler(const nlohmann::json& request, std::shared_ptr<ControlReply> reply) {
  const std::string cmd = request["cmd"];
  if (cmd == "boom") throw std::runtime_error("boom \xff");  // outside bytes in the message too
  if (cmd == "odd") throw 42;
  if (cmd == "half") {
    reply->line({{"part", 1}});
    throw std::out_of_range("after a first line");
  }
  reply->line({{"pong", cmd}});
  reply->finish();
}

TEST(ControlServer, AHandlerThatThrowsEndsItsRequestNotTheLoop) {
  TempDir dir;
  Served served(dir.file("c.sock"), {}, handler);
  ASSERT_EQ(served.error(), "");
  Client c(dir.file("c.sock"));
  ASSERT_TRUE(c.ok());
  for (const char* cmd : {"boom", "odd", "half"}) {
    const auto answer = c.ask(std::string("{\"cmd\":\"") + cmd + "\"}");
    ASSERT_FALSE(answer.empty()) << cmd << ": no answer";
    const auto& last = answer.back();
    EXPECT_EQ(last.value("done", false), true) << cmd << ": " << last;
    EXPECT_NE(
        last.value("error", "").find("internal error while handling '" + std::string(cmd) + "'"),
        std::string::npos)
        << last;
    // The same connection serves the next request.
    const auto next = c.ask(R"({"cmd":"ping"})");
    ASSERT_EQ(next.size(), 2u) << cmd;
    EXPECT_EQ(next[0]["pong"], "ping");
  }
  EXPECT_EQ(served.escaped(), "") << "an exception reached io_context::run()";
}

TEST(ControlServer, ASocketAnswersOnlyItsOwnCommands) {
  TempDir dir;
  Served served(dir.file("c.sock"), {"status"}, handler);
  ASSERT_EQ(served.error(), "");
  Client c(dir.file("c.sock"));
  ASSERT_TRUE(c.ok());
  auto answer = c.ask(R"({"cmd":"reload"})");
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].value("refused", false), true) << answer[0];
  EXPECT_NE(answer[0].value("error", "").find("needs the admin socket /elsewhere/admin.sock"),
            std::string::npos)
      << answer[0];
  answer = c.ask(R"({"cmd":"status"})");
  ASSERT_EQ(answer.size(), 2u);
  EXPECT_EQ(answer[0]["pong"], "status");
}

}  // namespace
}  // namespace lanegate
