// A control request as any member of the socket's group could send it: the real daemon
// runs in this process (no devices, its broker away, state in a scratch directory) and each
// input is one request line, handled as the control socket (first byte even) or the admin
// socket (odd) handles it — parsed, checked against the socket's commands, dispatched —
// but handed over without the socket. The answer must end, with a JSON line.

#include "daemon/config.h"
#include "daemon/control_server.h"
#include "daemon/daemon.h"
#include "daemon/log.h"
#include "tests/fuzz/fuzz.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

namespace {

// Collects one answer; the fuzzer's thread waits for its end.
struct Answer final : lanegate::ControlReply {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  std::size_t lines = 0;
  void line(const nlohmann::json& j) override {
    (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const std::lock_guard lock(mutex);
    ++lines;
  }
  void finish(const std::string& error) override {
    (void)error;
    const std::lock_guard lock(mutex);
    done = true;
    cv.notify_all();
  }
};

lanegate::Daemon& daemon() {
  static lanegate::Daemon* d = [] {
    char tmpl[] = "/tmp/lanegate-fuzz-control.XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    const std::string dir = tmpl;
    // A broker port nothing listens on: the publisher keeps trying, as on a lane whose
    // network is down.
    // The file is written, so that `reload` reads it again as on a lane.
    const std::string path = dir + "/lanegate.yaml";
    std::ofstream(path) << "site: fuzz\nlane: lane-1\nlog_level: off\nstate_dir: " << dir
                        << "/state\ncontrol_socket: " << dir
                        << "/control.sock\nbroker:\n  uri: tcp://127.0.0.1:9\ndevices: []\n";
    auto config = lanegate::loadConfig(path);
    if (!config) std::abort();
    lanegate::log::init("off");
    auto* daemon = new lanegate::Daemon(std::move(*config));  // lives as long as the process
    std::thread([daemon] { daemon->run(); }).detach();
    for (int i = 0; i < 500 && !daemon->ready(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (!daemon->ready()) std::abort();
    return daemon;
  }();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  auto answer = std::make_shared<Answer>();
  daemon().controlLine(std::string(lanegate::fuzz::text(data + 1, size - 1)), (data[0] & 1) != 0,
                       answer);
  std::unique_lock lock(answer->mutex);
  // Every request is answered; test-alert at its cap (100,000) takes a few seconds.
  if (!answer->cv.wait_for(lock, std::chrono::seconds(30), [&] { return answer->done; }))
    std::abort();
  return 0;
}
