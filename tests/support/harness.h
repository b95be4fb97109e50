#pragma once
// Helpers for tests that run real processes: temporary directories, child processes
// that are always reaped, free loopback ports, a real mosquitto, and waiting on a
// condition instead of sleeping.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lanegate::test {

using namespace std::chrono_literals;

/// A directory removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The directory's path.
  [[nodiscard]] const std::string& path() const { return path_; }
  /// path()/name
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes a whole file.
void writeFile(const std::string& path, const std::string& text);
/// Reads a whole file ("" if missing).
std::string readFile(const std::string& path);

/// A child process in its own process group, with stdout and stderr in files. The
/// destructor kills the group and reaps it, so no test leaves a process behind.
class Process {
 public:
  /// Starts argv[0] (a path) with the arguments; output goes to `logPrefix`.out/.err.
  Process(std::vector<std::string> argv, const std::string& logPrefix);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  /// The child's pid.
  [[nodiscard]] pid_t pid() const { return pid_; }
  /// Sends a signal to the child.
  void signal(int sig) const;
  /// True while the child has not exited.
  bool running();
  /// Waits for exit; the exit status (or 128+signal), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// Everything the child wrote to stdout / stderr so far.
  [[nodiscard]] std::string out() const { return readFile(outPath_); }
  [[nodiscard]] std::string err() const { return readFile(errPath_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string outPath_, errPath_;
};

/// Runs a command to completion (bounded by `timeout`); returns exit code and stdout.
struct RunResult {
  int code = -1;
  std::string out;
  std::string err;
};
RunResult run(std::vector<std::string> argv, std::chrono::milliseconds timeout = 20s);

/// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool waitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's ephemeral range
/// (so that no outgoing connection takes it while its server is stopped).
int freeLoopbackPort();
/// True when something accepts connections on 127.0.0.1:port.
bool portOpen(int port);

/// The port a simulator printed on stdout ("listening on 127.0.0.1:PORT"); 0 when it did
/// not within 15 s or exited first.
int simPort(Process& sim);

/// A real mosquitto on a loopback port chosen at run time.
class Broker {
 public:
  /// Starts the broker; `extraConfig` lines are appended to its config.
  explicit Broker(const TempDir& dir, const std::string& extraConfig = "");
  ~Broker();
  /// Stops it (SIGTERM, then wait).
  void stop();
  /// Starts it again on the same port; false (and not running) when it could not.
  bool start();
  /// tcp://127.0.0.1:PORT
  [[nodiscard]] std::string uri() const;
  /// The port.
  [[nodiscard]] int port() const { return port_; }

 private:
  std::string conf_;
  std::string logPrefix_;
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

/// The retained message on `topic`, or "" if none arrives within `timeout`.
std::string retained(const Broker& broker, const std::string& topic,
                     std::chrono::milliseconds timeout = 2s);

}  // namespace lanegate::test
