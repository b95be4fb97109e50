#include "daemon/main_daemon.h"

#include <cstring>
#include <iostream>
#include <string>

#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/log.h"

namespace lanegate {
namespace {
constexpr const char* kUsage =
    "usage: lanegated [-c FILE] [--check-config]\n"
    "  -c, --config FILE   configuration (default /etc/lanegate/lanegate.yaml)\n"
    "  --check-config      validate the configuration, print errors as file:line: message, exit 0 or 1\n"
    "  --version           print the version\n";
}

int daemonMain(int argc, char** argv) {
  std::string path = "/etc/lanegate/lanegate.yaml";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-c" || a == "--config") && i + 1 < argc) {
      path = argv[++i];
    } else if (a == "--check-config" || a == "-t") {
      check = true;
    } else if (a == "--version") {
      std::cout << "lanegated " << LANEGATE_VERSION << "\n";
      return 0;
    } else if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    } else {
      std::cerr << "lanegated: unknown argument '" << a << "'\n" << kUsage;
      return 2;
    }
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
  Daemon daemon(std::move(*config));
  return daemon.run();
}

}  // namespace lanegate
