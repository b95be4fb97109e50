#pragma once

#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "trace/library.h"

namespace lanegate::trace::testing {

/// Path of the shipped library in the source tree.
inline std::string shippedLibraryPath() {
  return std::string(LANEGATE_SOURCE_DIR) + "/config/ims/substances.yaml";
}

/// The shipped library, parsed (fails the test when it does not parse).
inline SubstanceLibrary shippedLibrary() {
  std::ifstream in(shippedLibraryPath());
  std::stringstream text;
  text << in.rdbuf();
  auto lib = SubstanceLibrary::parse(text.str(), "substances.yaml");
  if (!lib) {
    ADD_FAILURE() << lib.error();
    return *SubstanceLibrary::parse(
        "substances:\n  - {name: x, mode: positive, k0: 1.0, role: calibrant}\n", "fallback");
  }
  return *lib;
}

}  // namespace lanegate::trace::testing
