// lanegatectl: offline analysis commands go to the vision and trace modules; everything
// else (daemon and broker commands) to ctlMain. Kept here so that the daemon's core
// library does not link OpenCV.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "daemon/ctl.h"
#include "drivers/config_dir.h"
#include "trace/cli.h"
#include "vision/cli.h"

namespace {

// The IMS library a site installed, else the one shipped with the source.
std::string defaultSubstanceLibrary() {
  for (const char* p : {"/etc/lanegate/ims/substances.yaml", "/usr/share/lanegate/ims/substances.yaml"})
    if (std::filesystem::exists(p)) return p;
  return lanegate::defaultConfigDir() + "/ims/substances.yaml";
}

int offline(const std::vector<std::string>& args) {
  const std::string& cmd = args.front();
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "ims")
    return lanegate::trace::imsCommand(rest, std::cout, std::cerr, defaultSubstanceLibrary());
  return lanegate::vision::visionCommand(args, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty()) {
    const std::string& cmd = args.front();
    if (cmd == "analyze" || cmd == "eval" || cmd == "phantoms" || cmd == "qa" || cmd == "ims")
      return offline(args);
  }
  return lanegate::ctlMain(argc, argv, offline);
}
