#pragma once

namespace lanegate {
/// lanegated's command line: `lanegated -c FILE [--check-config]`.
int daemonMain(int argc, char** argv);
}  // namespace lanegate
