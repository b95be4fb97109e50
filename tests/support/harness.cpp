#include "tests/support/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace lanegate::test {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lanegate-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Process::Process(std::vector<std::string> argv, const std::string& logPrefix)
    : outPath_(logPrefix + ".out"), errPath_(logPrefix + ".err") {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    const int out = ::open(outPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(errPath_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from the parent, so the group exists before we signal it
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void Process::signal(int sig) const { ::kill(pid_, sig); }

bool Process::running() { return !wait(0ms).has_value(); }

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      ::kill(-pid_, SIGKILL);  // anything the child left in its group
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  TempDir dir;
  Process p(std::move(argv), dir.file("run"));
  RunResult r;
  auto code = p.wait(timeout);
  r.code = code.value_or(-1);
  r.out = p.out();
  r.err = p.err();
  return r;
}

bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

namespace {
// The first port of the kernel's ephemeral range (ip_local_port_range), where bind(0),
// `lanegate-sim --port 0` and the local end of every outgoing connection get theirs.
int ephemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(in >> low)) low = 32768;
  return low;
}

// Binds a TCP socket to 127.0.0.1:port (0: the kernel chooses one) and closes it: the port
// it was bound to, or 0 when it could not be.
int bindLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}
}  // namespace

// A port below the ephemeral range, at random, free when chosen. A port from bind(0) is
// an ephemeral one: once its server stops (Broker::stop), any connection made in the
// meantime may take it as its local end, and the server cannot start on it again. Below
// the range only another test's random choice can meet it.
int freeLoopbackPort() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  const int high = ephemeralLow() - 1;
  const int low = std::max(1024, high - 20000);
  if (high - low >= 1000) {
    std::uniform_int_distribution<int> pick(low, high);
    for (int attempt = 0; attempt < 200; ++attempt)
      if (const int port = bindLoopback(pick(rng))) return port;
  }
  // No room below the range (an unusual ip_local_port_range): let the kernel choose.
  if (const int port = bindLoopback(0)) return port;
  throw std::runtime_error("cannot bind a loopback port");
}

bool portOpen(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

int simPort(Process& sim) {
  int port = 0;
  waitFor(
      [&] {
        const std::string out = sim.out();
        const auto at = out.find("listening on 127.0.0.1:");
        if (at != std::string::npos) port = std::atoi(out.c_str() + at + 23);
        return port != 0 || !sim.running();
      },
      15s);
  return port;
}

Broker::Broker(const TempDir& dir, const std::string& extraConfig)
    : conf_(dir.file("mosquitto.conf")), logPrefix_(dir.file("mosquitto")) {
  // The port is free when chosen; another process could take it before mosquitto
  // binds, so try a few.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = freeLoopbackPort();
    writeFile(conf_, "listener " + std::to_string(port_) +
                         " 127.0.0.1\n"
                         "allow_anonymous true\n"
                         // Started as root (CI), mosquitto would drop to its own user.
                         "user root\n" +
                         extraConfig + "\n");
    start();
    if (process_) return;
  }
  throw std::runtime_error("could not start mosquitto on a free port");
}

Broker::~Broker() { stop(); }

bool Broker::start() {
  process_ =
      std::make_unique<Process>(std::vector<std::string>{MOSQUITTO_BIN, "-c", conf_}, logPrefix_);
  const bool up = waitFor([&] { return portOpen(port_) || !process_->running(); }, 10s);
  // A mosquitto that could not bind exits at once: give it a moment to, so that a port
  // someone else listens on is not taken for ours.
  if (up) std::this_thread::sleep_for(100ms);
  if (!up || !process_->running()) process_.reset();
  return process_ != nullptr;
}

void Broker::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  process_->wait(5s);
  process_.reset();
}

std::string Broker::uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

std::string retained(const Broker& broker, const std::string& topic,
                     std::chrono::milliseconds timeout) {
  const auto secs =
      std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(timeout).count());
  auto r = run({MOSQUITTO_SUB_BIN, "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-t",
                topic, "-C", "1", "-W", std::to_string(secs), "--retained-only"},
               timeout + 5s);
  return r.code == 0 ? r.out : "";
}

}  // namespace lanegate::test
