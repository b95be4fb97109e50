// Issue 15, acceptance 2 and 3: what lanegated tells systemd, heard on a notify socket the
// test binds (as systemd would), with a device thread wedged inside its driver; and the
// unit's own ExecReload= line run against a daemon whose config was broken.
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// systemd's side of sd_notify: a datagram socket; each datagram is one notification.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path - 1));
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    timeval tv{0, 100'000};  // the reader looks at stop_ this often
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reader_ = std::thread([this] { read(); });
  }
  ~NotifySocket() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    reader_.join();
    ::close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  /// Every notification so far, in order.
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  /// The index of the first message at or after `from` that starts with `prefix`, or -1.
  long find(const std::string& prefix, long from = 0) const {
    const auto all = messages();
    for (auto i = static_cast<std::size_t>(std::max(0L, from)); i < all.size(); ++i)
      if (all[i].rfind(prefix, 0) == 0) return static_cast<long>(i);
    return -1;
  }
  std::string dump() const {
    std::string out;
    for (const auto& m : messages()) out += "  " + m + "\n";
    return out;
  }

 private:
  void read() {
    char buf[4096];
    while (true) {
      {
        std::lock_guard lock(mutex_);
        if (stop_) return;
      }
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::string text(buf, static_cast<std::size_t>(n));
      while (!text.empty() && text.back() == '\n') text.pop_back();
      std::lock_guard lock(mutex_);
      messages_.push_back(text);
    }
  }

  std::string path_;
  int fd_ = -1;
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
  bool stop_ = false;
  std::thread reader_;
};

// Sets the variables systemd gives a Type=notify service with WatchdogSec= for the
// daemons started in its lifetime (a child copies the environment when it starts).
class NotifyEnvironment {
 public:
  NotifyEnvironment(const std::string& socket, std::chrono::microseconds watchdog) {
    ::setenv("NOTIFY_SOCKET", socket.c_str(), 1);
    ::setenv("WATCHDOG_USEC", std::to_string(watchdog.count()).c_str(), 1);
  }
  ~NotifyEnvironment() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
  }
  NotifyEnvironment(const NotifyEnvironment&) = delete;
  NotifyEnvironment& operator=(const NotifyEnvironment&) = delete;
};

// A mock device whose poll blocks while `wedge` exists; 3x its 100 ms call timeout is 300 ms.
std::string wedgeableMock(const std::string& wedge) {
  return "devices:\n  - name: m1\n    type: mock\n    poll_interval_ms: 50\n"
         "    call_timeout_ms: 100\n    wedge_file: " +
         wedge + "\n";
}

TEST(SystemdIT, NotifiesReadyStatusWatchdogReloadStopInOrderAndWithholdsTheWatchdogWhileWedged) {
  TempDir dir;
  Broker broker(dir);
  NotifySocket notify(dir.file("notify.sock"));
  const std::string wedge = dir.file("wedge");
  std::optional<Daemon> d;
  {
    NotifyEnvironment env(dir.file("notify.sock"), 400ms);  // a keep-alive every 200 ms
    d.emplace(dir, configText(dir, broker.uri(), wedgeableMock(wedge)));
  }
  ASSERT_TRUE(waitFor([&] { return notify.find("WATCHDOG=1", notify.find("READY=1")) >= 0; }, 15s))
      << notify.dump() << d->process().err();
  const long ready = notify.find("READY=1");
  const long status = notify.find("STATUS=", ready);
  EXPECT_GE(status, 0) << "a STATUS= line follows READY=1:\n" << notify.dump();
  EXPECT_TRUE(waitFor([&] { return notify.find("STATUS=healthy") >= 0; }, 15s))
      << "once the device and the broker are up, the summary says healthy:\n"
      << notify.dump();

  // Wedge the device thread inside poll(): the keep-alive stops and STATUS says why.
  writeFile(wedge, "");
  ASSERT_TRUE(
      waitFor([&] { return notify.find("STATUS=WATCHDOG WITHHELD: m1: a poll call") >= 0; }, 10s))
      << notify.dump() << d->process().err();
  const long withheld = notify.find("STATUS=WATCHDOG WITHHELD");
  std::this_thread::sleep_for(1500ms);  // more than 3 periods: no keep-alive may come
  EXPECT_EQ(notify.find("WATCHDOG=1", withheld), -1)
      << "no WATCHDOG=1 while the device thread is wedged:\n"
      << notify.dump();
  EXPECT_TRUE(d->process().running());

  // Unwedged: the keep-alive resumes.
  std::filesystem::remove(wedge);
  EXPECT_TRUE(waitFor([&] { return notify.find("WATCHDOG=1", withheld) >= 0; }, 5s))
      << "WATCHDOG=1 resumes once the driver returns:\n"
      << notify.dump();

  // A reload: RELOADING=1, then READY=1 again.
  const auto size = static_cast<long>(notify.messages().size());
  const auto r = d->ctl({"reload"});
  EXPECT_EQ(r.code, 0) << r.err;
  long reloading = -1;
  EXPECT_TRUE(waitFor(
      [&] {
        reloading = notify.find("RELOADING=1", size);
        return reloading >= 0 && notify.find("READY=1", reloading) >= 0;
      },
      10s))
      << notify.dump();

  d->process().signal(SIGTERM);
  EXPECT_EQ(d->process().wait(15s), std::optional<int>(0)) << d->process().err();
  const long stopping = notify.find("STOPPING=1", std::max(reloading, 0L));
  EXPECT_GE(stopping, 0) << notify.dump();
  EXPECT_EQ(notify.find("WATCHDOG=1", stopping + 1), -1) << "no keep-alive after STOPPING=1";
  EXPECT_TRUE(ready < status && status < withheld && withheld < reloading && reloading < stopping)
      << notify.dump();
}

// The ExecReload= line of systemd/lanegated.service, split into words.
std::vector<std::string> unitExecReload() {
  std::istringstream unit(readFile(LANEGATE_SOURCE_DIR "/systemd/lanegated.service"));
  std::string line;
  while (std::getline(unit, line)) {
    if (line.rfind("ExecReload=", 0) != 0) continue;
    std::istringstream words(line.substr(std::strlen("ExecReload=")));
    std::vector<std::string> argv;
    for (std::string w; words >> w;) argv.push_back(w);
    return argv;
  }
  return {};
}

TEST(SystemdIT, TheUnitsExecReloadFailsOnABrokenConfigWithItsErrorsAndTheDaemonKeepsTheOldOne) {
  TempDir dir;
  Broker broker(dir);
  Daemon d(dir, configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return d.brokerConnected(); }, 15s)) << d.process().err();
  auto argv = unitExecReload();
  ASSERT_FALSE(argv.empty()) << "the unit has an ExecReload= line";
  // As systemd would run it, with this test's binaries, socket and pid in place of the
  // installed paths.
  for (auto& w : argv) {
    if (w == "/usr/bin/lanegatectl") w = LANEGATECTL_BIN;
    if (w == "/run/lanegate/admin.sock") w = d.socketFor("reload");
    if (w == "$MAINPID") w = std::to_string(d.process().pid());
  }
  // A valid reload first: it works and says so.
  auto ok = run(argv);
  EXPECT_EQ(ok.code, 0) << ok.err;
  // Two mistakes on known lines: a bad value and an unknown key.
  writeFile(d.configPath(), configText(dir, broker.uri(),
                                       "devices:\n  - name: m1\n    type: mock\n"
                                       "    poll_interval_ms: 1\n    colour: blue\n"));
  const auto r = run(argv);
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(d.configPath() + ":"), std::string::npos) << "file:line errors: " << r.err;
  EXPECT_NE(r.err.find("poll_interval_ms"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("colour"), std::string::npos) << r.err;
  EXPECT_TRUE(d.process().running());
  const auto s = d.status();
  ASSERT_TRUE(s.is_object());
  EXPECT_TRUE(s["devices"].contains("m1"));
  EXPECT_EQ(d.ctl({"test-alert"}).code, 0) << "still delivering on the old config";
}

}  // namespace
}  // namespace lanegate::test
