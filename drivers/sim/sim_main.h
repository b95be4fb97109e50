#pragma once
// `lanegate-sim SUBCOMMAND ...`: the dispatch table of the device simulators.

#include <span>
#include <string>

namespace lanegate::sim {

/// Runs `lanegate-sim` with its arguments (argv without the program name); the exit code.
int simMain(std::span<const std::string> args);

}  // namespace lanegate::sim
