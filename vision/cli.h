#pragma once

// The offline vision commands of lanegatectl (Contract 6): analyze, eval, phantoms.

#include <iosfwd>
#include <string>
#include <vector>

namespace lanegate::vision {

/// Runs `args` (e.g. {"analyze", "scan.json", "--json"}); returns 0 ok, 1 bad input, 2 usage.
int visionCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace lanegate::vision
