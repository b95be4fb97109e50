#pragma once

// The one entry point every fuzz target defines (libFuzzer's). Built two ways
// (tests/fuzz/CMakeLists.txt): with clang's -fsanitize=fuzzer in the `fuzz` preset, and
// with replay_main.cpp in every other build, where ctest runs it over the committed corpus
// and the regression inputs.

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace lanegate::fuzz {

/// The input as text (not NUL-terminated; may hold any byte).
inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace lanegate::fuzz
