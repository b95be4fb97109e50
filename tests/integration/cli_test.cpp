// Issue 12, acceptance 5: every binary and subcommand prints its help on stdout and exits
// 0 (--version too); a bad number is a usage error (exit 2) with a message saying which.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/harness.h"

namespace lanegate::test {
namespace {

const std::string kDaemon = LANEGATED_BIN, kCtl = LANEGATECTL_BIN, kSim = LANEGATE_SIM_BIN;

TEST(CliIT, EveryBinaryAndSubcommandHelpsOnStdout) {
  const std::vector<std::vector<std::string>> commands{
      {kDaemon, "--help"},
      {kDaemon, "--version"},
      {kCtl, "--help"},
      {kCtl, "--version"},
      {kCtl, "status", "--help"},
      {kCtl, "test-alert", "--help"},
      {kCtl, "outbox", "--help"},
      {kCtl, "devices", "--help"},
      {kCtl, "reload", "--help"},
      {kCtl, "calibrate", "--help"},
      {kCtl, "calibrate", "ims", "--help"},
      {kCtl, "calibrate", "xray", "--help"},
      {kCtl, "watch", "--help"},
      {kCtl, "ims", "--help"},
      {kCtl, "ims", "analyze", "--help"},
      {kSim, "--help"},
      {kSim, "--version"},
      {kSim, "ims", "--help"},
      {kSim, "xray", "--help"},
  };
  for (const auto& argv : commands) {
    const RunResult r = run(argv);
    std::string line;
    for (const auto& a : argv) line += " " + a;
    EXPECT_EQ(r.code, 0) << line << "\n" << r.err;
    EXPECT_FALSE(r.out.empty()) << line << ": nothing on stdout";
    EXPECT_EQ(r.err, "") << line;
  }
}

// analyze, eval, phantoms and qa are parsed by vision/cli.cpp (CLI11 since the vision
// rewrite), reached through lanegatectl as they always were.
TEST(CliIT, VisionCommandsHelpOnStdout) {
  for (const char* command : {"analyze", "eval", "phantoms", "qa"}) {
    const RunResult r = run({kCtl, command, "--help"});
    EXPECT_EQ(r.code, 0) << command << "\n" << r.err;
    EXPECT_FALSE(r.out.empty()) << command;
    EXPECT_EQ(r.err, "") << command;
  }
}

TEST(CliIT, ABadNumberIsAUsageErrorThatSaysWhich) {
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<Case> cases{
      {{kCtl, "test-alert", "--count", "abc"}, "--count"},
      {{kCtl, "test-alert", "--count", "0"}, "--count"},
      {{kCtl, "phantoms", "--out", "/nonexistent", "--count", "abc"}, "--count"},
      {{kCtl, "watch", "-b", "tcp://127.0.0.1:1", "--site", "s", "--lane", "l", "--count", "abc"},
       "--count"},
      {{kSim, "ims", "--port", "abc"}, "--port"},
      {{kSim, "ims", "--every-ms", "5"}, "--every-ms"},
      {{kSim, "xray", "--inbox", "i", "--count", "abc"}, "--count"},
      {{kSim, "xray", "--inbox", "i", "--pixel-mm", "big"}, "--pixel-mm"},
  };
  for (const auto& c : cases) {
    const RunResult r = run(c.argv);
    std::string line;
    for (const auto& a : c.argv) line += " " + a;
    EXPECT_EQ(r.code, 2) << line << "\n" << r.out << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << line << ": " << r.err;
  }
}

TEST(CliIT, OtherUsageErrorsExitTwo) {
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {kDaemon, "--bogus"},
           {kDaemon, "-c"},
           {kCtl},
           {kCtl, "frobnicate"},
           {kCtl, "calibrate"},
           {kCtl, "calibrate", "ims"},
           {kCtl, "calibrate", "ims", "ims-1", "reboot"},
           {kCtl, "watch", "--site", "s"},
           {kSim},
           {kSim, "tractor"},
           {kSim, "ims", "--fault", "fire"},
       }) {
    const RunResult r = run(argv);
    EXPECT_EQ(r.code, 2) << argv.back() << "\n" << r.out << r.err;
    EXPECT_FALSE(r.err.empty()) << argv.back();
  }
}

// Issue 13: status, devices and outbox go to the control socket, the commands that act
// to the admin socket; -s (or $LANEGATE_SOCKET) names one for all. Seen in the message of
// a daemon that cannot be reached (exit 3), which names the socket tried.
TEST(CliIT, EachDaemonCommandPicksItsSocket) {
  if (std::filesystem::exists("/run/lanegate/control.sock") ||
      std::filesystem::exists("/run/lanegate/admin.sock"))
    GTEST_FAIL() << "a lanegated runs on this machine's default sockets; stop it for this test";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{kCtl, "status"}, "/run/lanegate/control.sock"},
      {{kCtl, "devices"}, "/run/lanegate/control.sock"},
      {{kCtl, "outbox"}, "/run/lanegate/control.sock"},
      {{kCtl, "test-alert"}, "/run/lanegate/admin.sock"},
      {{kCtl, "reload"}, "/run/lanegate/admin.sock"},
      {{kCtl, "calibrate", "xray", "dark"}, "/run/lanegate/admin.sock"},
      {{kCtl, "-s", "/nonexistent/x.sock", "calibrate", "xray", "dark"}, "/nonexistent/x.sock"},
  };
  for (const auto& [argv, socket] : cases) {
    const RunResult r = run(argv);
    EXPECT_EQ(r.code, 3) << argv[1] << ": " << r.err;
    EXPECT_NE(r.err.find("cannot reach lanegated at " + socket + ":"), std::string::npos)
        << argv[1] << ": " << r.err;
  }
}

}  // namespace
}  // namespace lanegate::test
