#pragma once

namespace lanegate {
/// lanegatectl's command line (DESIGN Contract 6). Exit codes: 0 success, 1 bad input,
/// 2 usage, 3 the daemon could not be reached.
int ctlMain(int argc, char** argv);
}  // namespace lanegate
