// Issue 13, acceptance 1 and 6: the control sockets against hostile bytes and hostile
// neighbours, with the real daemon binary. Every bad request gets an error and the daemon
// keeps answering `status`; who may use which socket is decided by the socket files'
// groups, checked by the kernel for real users made for the test.
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// A raw client of a control socket: sends any bytes, reads what comes back.
class RawClient {
 public:
  explicit RawClient(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path - 1));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }
  bool send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  /// The next line (without '\n'); nullopt on end of stream or when none comes in time.
  std::optional<std::string> line(std::chrono::milliseconds limit = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) {
        closed_ = true;
        return std::nullopt;
      }
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  /// True once the daemon has closed the connection (within `limit`).
  bool closedByPeer(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!closed_ && std::chrono::steady_clock::now() < deadline) {
      if (line(100ms)) continue;  // an error line may come first
    }
    return closed_;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string buf_;
};

// The answer's last line, parsed; expects {"done": true, "error": ...}.
nlohmann::json errorAnswer(RawClient& c) {
  const auto l = c.line();
  if (!l) return {};
  return nlohmann::json::parse(*l, nullptr, false);
}

TEST(ControlIT, NonUtf8RequestsGetAnErrorAndTheDaemonGoesOn) {
  TempDir dir;
  const int port = freeLoopbackPort();  // no broker needed: the sockets are the point
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  const std::vector<std::string> hostile{
      "{\"cmd\":\"\xff\xfe\"}\n",      // the line: not JSON, and the error echoes it
      "\xff\xfe\xfd\n",                // not JSON at all
      "{\"cmd\":\"status\xc3\"}\n",    // a truncated sequence
      "{\"cmd\":\"\xed\xa0\x80\"}\n",  // a surrogate encoded as UTF-8
      "{\"cmd\":\"device-command\",\"device\":\"\xff\"}\n",
  };
  for (const std::string socket : {"control.sock", "admin.sock"}) {
    for (const auto& line : hostile) {
      RawClient c(dir.file(socket));
      ASSERT_TRUE(c.connected()) << socket;
      ASSERT_TRUE(c.send(line));
      const auto answer = errorAnswer(c);
      ASSERT_TRUE(answer.is_object()) << socket << ": no JSON answer; daemon log:\n"
                                      << d.process().err();
      EXPECT_EQ(answer.value("done", false), true) << answer;
      EXPECT_TRUE(answer.contains("error")) << answer;
      ASSERT_TRUE(d.process().running()) << "the daemon died on a request line; its log:\n"
                                         << d.process().err();
      EXPECT_TRUE(d.up()) << "status no longer answers after a hostile line";
    }
  }
  // lanegatectl itself sends a non-UTF-8 device name without throwing.
  const auto r = d.ctl({"calibrate", "ims", "ims-\xff"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("no device named"), std::string::npos) << r.err;
  EXPECT_TRUE(d.up());
}

TEST(ControlIT, ANonUtf8InboxFileNameDoesNotBreakStatus) {
  TempDir dir;
  const std::string inbox = dir.file("inbox");
  std::filesystem::create_directories(inbox);
  // The scanner's PLC is not there (it stays offline); its inbox is watched all the same.
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort()),
                           "devices:\n" + xrayEntry(inbox, freeLoopbackPort())));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  writeFile(inbox + "/scan-\xff\xfe.json", "{}");
  // The rejection keeps the name as the inbox's last error, which status reports.
  EXPECT_TRUE(waitFor(
      [&] {
        const auto s = d.status();
        return s.is_object() && s["scans"]["xray-1"].value("rejected", 0) >= 1;
      },
      15s))
      << d.process().err();
  ASSERT_TRUE(d.process().running()) << d.process().err();
  const auto s = d.status();
  ASSERT_TRUE(s.is_object());
  // The inbox escapes the bad bytes itself (\xff); were a name to reach the reply raw, the
  // reply's dump would show U+FFFD. Either way the name is there and readable.
  const std::string lastError = s["scans"]["xray-1"].value("last_error", "");
  EXPECT_TRUE(lastError.find("scan-\\xff\\xfe.json") != std::string::npos ||
              lastError.find("\xef\xbf\xbd") != std::string::npos)
      << "the bad bytes are shown escaped or as U+FFFD: " << s["scans"]["xray-1"];
}

TEST(ControlIT, AnOverlongLineIsRefusedAndTheConnectionClosed) {
  TempDir dir;
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort())));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  RawClient c(dir.file("control.sock"));
  ASSERT_TRUE(c.connected());
  // 200 KiB with no newline: more than a request may be (64 KiB), less than a socket buffer.
  c.send(std::string(200 * 1024, 'x'));
  const auto answer = errorAnswer(c);
  ASSERT_TRUE(answer.is_object()) << "no answer to an overlong line";
  EXPECT_NE(answer.value("error", "").find("longer than 65536 bytes"), std::string::npos) << answer;
  EXPECT_TRUE(c.closedByPeer(5s));
  EXPECT_TRUE(d.up());
}

TEST(ControlIT, ConnectionsAreCappedAndIdleOnesClosed) {
  TempDir dir;
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort())) +
                    "control_max_connections: 2\ncontrol_idle_timeout_s: 1.5\n");
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  // The daemon notices that the status client above is gone a moment after it has gone.
  std::this_thread::sleep_for(300ms);
  RawClient a(dir.file("control.sock")), b(dir.file("control.sock"));
  ASSERT_TRUE(a.connected() && b.connected());
  RawClient third(dir.file("control.sock"));
  ASSERT_TRUE(third.connected());  // the kernel accepts; the daemon answers and hangs up
  const auto answer = errorAnswer(third);
  ASSERT_TRUE(answer.is_object()) << "no answer past the cap";
  EXPECT_NE(answer.value("error", "").find("too many connections"), std::string::npos) << answer;
  EXPECT_TRUE(third.closedByPeer(2s));
  // The two that said nothing are closed after the idle timeout; then status answers.
  EXPECT_TRUE(a.closedByPeer(5s)) << "an idle connection was kept open";
  EXPECT_TRUE(b.closedByPeer(5s));
  EXPECT_TRUE(d.up()) << d.process().err();
  // The admin socket has its own cap: it was usable all along.
}

TEST(ControlIT, TheControlSocketRefusesAdminCommands) {
  TempDir dir;
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort()),
                           "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"test-alert"}, {"reload"}, {"calibrate", "ims", "m1"}}) {
    std::vector<std::string> argv{LANEGATECTL_BIN, "-s", dir.file("control.sock")};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run(argv);
    EXPECT_EQ(r.code, 5) << args[0] << ": " << r.err;
    EXPECT_NE(r.err.find(dir.file("admin.sock")), std::string::npos)
        << args[0] << ": the refusal must name the admin socket: " << r.err;
  }
  EXPECT_EQ(d.outbox().value("pending", -1), 0) << "a refused test-alert accepted nothing";
  // The read-only commands work on both sockets.
  for (const std::string socket : {"control.sock", "admin.sock"}) {
    for (const char* cmd : {"status", "devices", "outbox"}) {
      const auto r = run({LANEGATECTL_BIN, "-s", dir.file(socket), cmd, "--json"});
      EXPECT_TRUE(r.code == 0 || (r.code == 4 && std::string(cmd) == "status"))
          << socket << " " << cmd << ": " << r.code << " " << r.err;
    }
  }
  const auto devices = nlohmann::json::parse(d.ctl({"devices", "--json"}).out, nullptr, false);
  ASSERT_TRUE(devices.is_object());
  ASSERT_EQ(devices["devices"].size(), 1u) << devices;
  EXPECT_EQ(devices["devices"][0]["name"], "m1");
  EXPECT_EQ(devices["devices"][0]["driver"], "mock");
}

TEST(ControlIT, ANonUtf8ConfigOrProfileAtReloadIsRefusedAndTheOldOneKept) {
  TempDir dir;
  // An IMS detector nobody answers for: it stays offline, its profile is read at reload.
  const std::string profile = dir.file("ims-profile.yaml");
  writeFile(profile, readFile(LANEGATE_SOURCE_DIR "/config/profiles/ims-generic-v1.yaml"));
  const std::string good =
      configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort()),
                 kImsLibrary + "devices:\n" + imsEntry("ims-1", freeLoopbackPort(), profile));
  Daemon d(dir, good);
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();

  // A config with a Latin-1 byte in a value.
  writeFile(d.configPath(), good + "# caf\xe9\n");
  auto r = d.ctl({"reload"});
  EXPECT_EQ(r.code, 1) << "a refused reload must say so: " << r.out << r.err;
  EXPECT_NE(r.err.find(d.configPath() + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not valid UTF-8"), std::string::npos) << r.err;
  ASSERT_TRUE(d.up()) << d.process().err();

  // The config is fine again; its profile is not.
  writeFile(d.configPath(), good);
  writeFile(profile, "profile: ACME \xff\xfe\n" +
                         readFile(LANEGATE_SOURCE_DIR "/config/profiles/ims-generic-v1.yaml"));
  r = d.ctl({"reload"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find(profile + ":1:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not valid UTF-8"), std::string::npos) << r.err;
  // SIGHUP takes the same path.
  d.process().signal(SIGHUP);
  EXPECT_TRUE(
      waitFor([&] { return countOf(d.process().err(), "configuration not changed") >= 3; }, 10s))
      << d.process().err();
  ASSERT_TRUE(d.process().running());
  const auto s = d.status();
  ASSERT_TRUE(s.is_object()) << d.process().err();
  EXPECT_TRUE(s["devices"].contains("ims-1")) << "the old configuration stays";
}

// --- acceptance 6: real users, real groups -------------------------------------------

// Runs shell-free administration commands; a failure fails the test loudly.
void admin(const std::vector<std::string>& argv) {
  const auto r = run(argv);
  ASSERT_EQ(r.code, 0) << argv[0] << " " << argv.back() << ": " << r.out << r.err;
}

// Groups lanegate and lanegate-admin (made if missing, removed only if made here) and
// throwaway users with unique names, all removed when the test ends.
class Accounts {
 public:
  Accounts() = default;
  ~Accounts() {
    for (const auto& u : users_) run({"/usr/sbin/userdel", u});
    for (const auto& g : groups_) run({"/usr/sbin/groupdel", g});
  }
  Accounts(const Accounts&) = delete;
  Accounts& operator=(const Accounts&) = delete;

  void group(const std::string& name) {
    if (::getgrnam(name.c_str())) return;
    const auto r = run({"/usr/sbin/groupadd", "--system", name});
    if (r.code == 9) return;  // made meanwhile by someone else: theirs to keep
    ASSERT_EQ(r.code, 0) << "groupadd " << name << ": " << r.err;
    groups_.push_back(name);
  }
  /// A user in `groups` (comma separated, may be empty); its name.
  std::string user(const std::string& role, const std::string& groups) {
    const std::string name = "lgt" + std::to_string(::getpid()) + "-" + role;
    std::vector<std::string> argv{"/usr/sbin/useradd", "--no-create-home", "--no-user-group",
                                  "--shell", "/usr/sbin/nologin"};
    if (!groups.empty()) argv.insert(argv.end(), {"--groups", groups});
    argv.push_back(name);
    admin(argv);
    users_.push_back(name);
    return name;
  }

 private:
  std::vector<std::string> users_, groups_;
};

// ASAN_OPTIONS without its suppressions file: that file is in the source tree, which
// another user may not be allowed to read (CI clones into an owner-only directory), and
// ASan ends a program whose suppressions it cannot read. The commands run here do not use
// Paho, whose reports the file is for.
std::string asanOptionsForAnotherUser() {
  const char* given = std::getenv("ASAN_OPTIONS");
  std::istringstream in(given ? given : "");
  std::string out;
  for (std::string option; std::getline(in, option, ':');)
    if (!option.empty() && option.rfind("suppressions=", 0) != 0)
      out += (out.empty() ? "" : ":") + option;
  return "ASAN_OPTIONS=" + out;
}

// lanegatectl as `user` (its own groups only).
RunResult ctlAs(const std::string& user, std::vector<std::string> args) {
  const passwd* pw = ::getpwnam(user.c_str());
  if (!pw) return {};
  std::vector<std::string> argv{"/usr/bin/env",
                                asanOptionsForAnotherUser(),
                                "/usr/bin/setpriv",
                                "--reuid=" + std::to_string(pw->pw_uid),
                                "--regid=" + std::to_string(pw->pw_gid),
                                "--init-groups",
                                LANEGATECTL_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv);
}

TEST(ControlIT, EachSocketServesOnlyItsGroup) {
  // Creating users and groups needs root, as CI runs; anywhere else this fails, on purpose.
  ASSERT_EQ(::geteuid(), 0u) << "this test creates groups and users: run it as root (CI does)";
  Accounts accounts;
  accounts.group("lanegate");
  accounts.group("lanegate-admin");
  const std::string reader = accounts.user("ro", "lanegate");
  const std::string technician = accounts.user("adm", "lanegate,lanegate-admin");
  const std::string stranger = accounts.user("none", "");

  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0711), 0);  // others may pass, not list
  Daemon d(dir, configText(dir, "tcp://127.0.0.1:" + std::to_string(freeLoopbackPort())));
  ASSERT_TRUE(waitFor([&] { return d.up(); }, 15s)) << d.process().err();
  struct stat control = {}, adminSock = {};
  ASSERT_EQ(::stat(dir.file("control.sock").c_str(), &control), 0);
  ASSERT_EQ(::stat(dir.file("admin.sock").c_str(), &adminSock), 0);
  EXPECT_EQ(control.st_mode & 0777, 0660u);
  EXPECT_EQ(adminSock.st_mode & 0777, 0660u);
  EXPECT_EQ(control.st_gid, ::getgrnam("lanegate")->gr_gid);
  EXPECT_EQ(adminSock.st_gid, ::getgrnam("lanegate-admin")->gr_gid);

  const std::string controlSock = dir.file("control.sock"), adminPath = dir.file("admin.sock");
  // A member of lanegate only: status yes, calibrate no (exit 5, naming lanegate-admin).
  auto r = ctlAs(reader, {"-s", controlSock, "status"});
  EXPECT_TRUE(r.code == 0 || r.code == 4) << r.code << " " << r.err;  // 4: not fully healthy
  r = ctlAs(reader, {"-s", adminPath, "calibrate", "xray", "dark"});
  EXPECT_EQ(r.code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("lanegate-admin"), std::string::npos) << r.err;
  r = ctlAs(reader, {"-s", controlSock, "calibrate", "xray", "dark"});
  EXPECT_EQ(r.code, 5) << "the control socket refuses admin commands: " << r.err;
  // In neither group: refused both, each naming its group.
  r = ctlAs(stranger, {"-s", controlSock, "status"});
  EXPECT_EQ(r.code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("'lanegate'"), std::string::npos) << r.err;
  r = ctlAs(stranger, {"-s", adminPath, "calibrate", "xray", "dark"});
  EXPECT_EQ(r.code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("lanegate-admin"), std::string::npos) << r.err;
  // An admin reaches the daemon (which has no scanner to calibrate), and is logged.
  r = ctlAs(technician, {"-s", adminPath, "calibrate", "xray", "dark"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("no xray device"), std::string::npos) << r.err;
  const std::string uid = std::to_string(::getpwnam(technician.c_str())->pw_uid);
  EXPECT_NE(d.process().err().find("'device-command' from pid "), std::string::npos)
      << d.process().err();
  EXPECT_NE(d.process().err().find("uid " + uid + " gid "), std::string::npos)
      << "SO_PEERCRED of the admin command is logged:\n"
      << d.process().err();
  EXPECT_TRUE(d.up());
}

}  // namespace
}  // namespace lanegate::test
