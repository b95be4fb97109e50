#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace lanegate::trace {

/// `lanegatectl ims ...`: args are the words after "ims", e.g. {"analyze", "S.json", "--json"}.
/// Reads SPECTRUM.json and the library (--library FILE, else defaultLibrary); prints a table,
/// or Contract 6 JSON with --json. Returns 0 ok, 1 bad input (message names file and
/// problem), 2 usage.
int imsCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
               const std::string& defaultLibrary);

}  // namespace lanegate::trace
