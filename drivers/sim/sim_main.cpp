#include "drivers/sim/sim_main.h"

#include <iostream>
#include <vector>

#include <CLI/CLI.hpp>

#include "drivers/sim/ims_sim.h"
#include "drivers/sim/xray_sim.h"

namespace lanegate::sim {

int simMain(std::span<const std::string> args) {
  CLI::App app(
      "Device simulators for demos, tests and training, served with libmodbus's server API.",
      "lanegate-sim");
  app.set_version_flag("--version", "lanegate-sim " LANEGATE_VERSION);
  app.require_subcommand(1);
  // Add a simulator here: its subcommand and its entry point, which parses the rest.
  struct Simulator {
    const char* name;
    const char* summary;
    int (*run)(std::span<const std::string>);
  };
  const Simulator simulators[] = {
      {"ims", "an IMS trace detector (Modbus TCP or RTU); lanegate-sim ims --help", &runImsSim},
      {"xray",
       "a cargo X-ray scanner: its PLC over Modbus, scan bundles in an inbox; lanegate-sim xray "
       "--help",
       &runXraySim},
  };
  for (const Simulator& s : simulators) {
    CLI::App* sub = app.add_subcommand(s.name, s.summary);
    sub->prefix_command();  // everything after the name is the simulator's own
    sub->set_help_flag();
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return app.exit(e, std::cout, std::cerr) == 0 ? 0 : 2;  // Contract 6: 2 is a usage error
  }
  for (const Simulator& s : simulators) {
    const CLI::App* sub = app.get_subcommand(s.name);
    if (sub->parsed()) return s.run(sub->remaining());
  }
  return 2;
}

}  // namespace lanegate::sim
