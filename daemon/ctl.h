#pragma once

#include <functional>
#include <string>
#include <vector>

namespace lanegate {

/// Runs an offline command (analyze, eval, phantoms, qa, ims) given its words, e.g.
/// {"analyze", "scan.json", "--json"}; the exit code.
using OfflineCommand = std::function<int(const std::vector<std::string>& args)>;

/// lanegatectl's command line (DESIGN Contract 6), parsed with CLI11. Exit codes: 0
/// success, 1 bad input, 2 usage (CLI11's own codes map to it; --help and --version print
/// on stdout and exit 0), 3 the daemon could not be reached, 5 the socket refused this user
/// (the message names the group needed). status, devices and outbox use the control socket,
/// the other daemon commands the admin socket; -s names another. Offline commands go to
/// `offline` with the words after the command name untouched.
int ctlMain(int argc, char** argv, const OfflineCommand& offline);

}  // namespace lanegate
