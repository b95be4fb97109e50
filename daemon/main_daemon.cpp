#include "daemon/main_daemon.h"

#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"

namespace lanegate {

int daemonMain(int argc, char** argv) {
  CLI::App app(
      "lanegated: the gateway daemon of a customs inspection lane (scanner and trace detectors to\n"
      "the targeting centre over MQTT).",
      "lanegated");
  app.set_version_flag("--version", "lanegated " LANEGATE_VERSION);
  std::string path = "/etc/lanegate/lanegate.yaml";
  bool check = false;
  app.add_option("-c,--config", path, "configuration file")->capture_default_str();
  app.add_flag("-t,--check-config", check,
               "validate the configuration, print errors as file:line: message, exit 0 or 1");
  app.footer("exit codes: 0 ok, 1 invalid configuration or a start-up failure, 2 usage");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, std::cout, std::cerr) == 0 ? 0 : 2;  // --help, --version: stdout, 0
  }
  auto config = loadConfig(path);
  if (!config) {
    std::cerr << config.error().str();
    return 1;
  }
  if (check) {
    std::cout << path << ": configuration ok (" << config->devices.size() << " device(s))\n";
    return 0;
  }
  log::init(config->logLevel);
  try {
    Daemon daemon(std::move(*config));
    return daemon.run();
  } catch (const std::exception& e) {
    // A start-up failure nobody foresaw: say what it was and exit 1, not abort.
    log::get("daemon")->critical("{}: cannot start: {}", path, e.what());
    return 1;
  }
}

}  // namespace lanegate
