// Runs the vision subcommands directly, as lanegatectl will dispatch them.
#include "vision/cli.h"

#include <iostream>

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return lanegate::vision::visionCommand(args, std::cout, std::cerr);
}
