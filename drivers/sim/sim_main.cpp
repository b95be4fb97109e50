#include "drivers/sim/sim_main.h"

#include <iostream>

#include "drivers/sim/ims_sim.h"
#include "drivers/sim/xray_sim.h"

namespace lanegate::sim {

int simMain(std::span<const std::string> args) {
  // Add a simulator here: its subcommand and its entry point.
  if (!args.empty() && args[0] == "ims") return runImsSim(args.subspan(1));
  if (!args.empty() && args[0] == "xray") return runXraySim(args.subspan(1));
  std::cerr << "usage: lanegate-sim ims|xray [OPTIONS]   (lanegate-sim ims --help,\n"
               "                                       lanegate-sim xray --help)\n";
  return 2;
}

}  // namespace lanegate::sim
