// Issue 15, acceptance 5: `make demo` (cmake/demo.sh) stops everything it started, when
// DEMO_SECONDS runs out and when it is told to stop: no process of its group is left.
#include <dirent.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

// Every process in process group `pgid`, as "pid command".
std::vector<std::string> processesIn(pid_t pgid) {
  std::vector<std::string> out;
  DIR* proc = ::opendir("/proc");
  if (!proc) return out;
  while (const dirent* e = ::readdir(proc)) {
    const std::string pid = e->d_name;
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + pid + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid pgrp ...: comm may hold spaces, so read after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 1));
    std::string state;
    long ppid = 0, pgrp = 0;
    rest >> state >> ppid >> pgrp;
    if (pgrp == pgid && state != "Z")
      out.push_back(pid + " " + line.substr(line.find('(') + 1, close - line.find('(') - 1));
  }
  ::closedir(proc);
  return out;
}

// True once `pid` has exited and waits to be reaped (a zombie). Process::wait() would reap
// it and then kill its group, hiding what the demo left behind, so the test looks first.
bool exitedUnreaped(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto close = line.rfind(')');
  return close != std::string::npos && line.substr(close + 2, 1) == "Z";
}

std::string list(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += "  " + p + "\n";
  return s;
}

// The demo on the dev build, in `dir`, stopping after `seconds`.
std::unique_ptr<Process> startDemo(const TempDir& dir, int seconds) {
  ::setenv("DEMO_DIR", dir.file("demo").c_str(), 1);
  ::setenv("DEMO_SECONDS", std::to_string(seconds).c_str(), 1);
  auto p = std::make_unique<Process>(
      std::vector<std::string>{"/bin/bash", LANEGATE_SOURCE_DIR "/cmake/demo.sh",
                               LANEGATE_BUILD_DIR},
      dir.file("demo-run"));
  ::unsetenv("DEMO_DIR");
  ::unsetenv("DEMO_SECONDS");
  return p;
}

TEST(DemoIT, DemoSecondsEndsTheDemoAndEverythingItStarted) {
  TempDir dir;
  auto demo = startDemo(dir, 6);
  const pid_t group = demo->pid();
  // Up: the simulators, the broker, the daemon and the watcher run in the demo's group.
  ASSERT_TRUE(waitFor([&] { return processesIn(group).size() >= 6; }, 30s))
      << list(processesIn(group)) << demo->err();
  const auto running = processesIn(group);
  ASSERT_TRUE(waitFor([&] { return exitedUnreaped(demo->pid()); }, 60s)) << demo->err();
  EXPECT_TRUE(waitFor([&] { return processesIn(group).empty(); }, 5s))
      << "left behind by the demo:\n"
      << list(processesIn(group)) << "it ran:\n"
      << list(running);
  EXPECT_EQ(demo->wait(1s), std::optional<int>(0)) << demo->out() << demo->err();
  EXPECT_NE(demo->out().find("demo: stopping"), std::string::npos) << demo->out();
}

TEST(DemoIT, SigtermToTheScriptAloneStopsEverythingItStarted) {
  TempDir dir;
  auto demo = startDemo(dir, 600);
  const pid_t group = demo->pid();
  ASSERT_TRUE(waitFor(
      [&] { return demo->out().find("demo: control room watching") != std::string::npos; }, 30s))
      << demo->out() << demo->err();
  ::kill(demo->pid(), SIGTERM);  // the script only, not its group: its trap must do the rest
  ASSERT_TRUE(waitFor([&] { return exitedUnreaped(demo->pid()); }, 20s)) << demo->err();
  EXPECT_TRUE(waitFor([&] { return processesIn(group).empty(); }, 5s))
      << "left behind by the demo:\n"
      << list(processesIn(group));
  EXPECT_TRUE(demo->wait(1s).has_value());
}

}  // namespace
}  // namespace lanegate::test
