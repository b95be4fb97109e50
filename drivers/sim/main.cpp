// lanegate-sim: device simulators for demos, tests and training.
#include <string>
#include <vector>

#include "drivers/sim/sim_main.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return lanegate::sim::simMain(args);
}
