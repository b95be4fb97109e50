#include "drivers/sim/sim_main.h"

#include <iostream>

#include "drivers/sim/ims_sim.h"

namespace lanegate::sim {

int simMain(std::span<const std::string> args) {
  // Add a simulator here (e.g. "xray"): its subcommand and its entry point.
  if (!args.empty() && args[0] == "ims") return runImsSim(args.subspan(1));
  std::cerr << "usage: lanegate-sim ims [OPTIONS]   (lanegate-sim ims --help)\n";
  return 2;
}

}  // namespace lanegate::sim
