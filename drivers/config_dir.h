#pragma once
// Where the device profiles (profiles/) and the IMS substance library (ims/) are found
// when nobody names them: lanegate-sim's defaults and lanegatectl's library.

#include <string>

namespace lanegate {

/// The installed configuration directory (/etc/lanegate) when the running binary is the
/// installed one (it lives in the install prefix's bin directory, e.g. /usr/bin), else the
/// source tree's config/ (a build run from the tree: tests, the demo).
std::string defaultConfigDir();

}  // namespace lanegate
