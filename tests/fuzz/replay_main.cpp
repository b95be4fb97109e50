// Runs a fuzz target's LLVMFuzzerTestOneInput over files and directories given on the
// command line, as libFuzzer would replay them, without libFuzzer (so the normal gcc
// builds, ASan+UBSan included, run the corpus and every crash kept as a regression input).
// Exit 0 when every input ran; a crash ends the process as it would under the fuzzer.
// The inputs run twice, in one process, as the fuzzer runs them one after another: a
// harness that keeps state between inputs (fuzz_ack's outbox) must hold up to that too.

#include "tests/fuzz/fuzz.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  std::vector<fs::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const fs::path p(argv[i]);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file()) inputs.push_back(e.path());
    } else if (fs::is_regular_file(p, ec)) {
      inputs.push_back(p);
    } else {
      std::fprintf(stderr, "replay: %s: not a file or directory\n", argv[i]);
      return 2;
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "replay: no inputs (give corpus files or directories)\n");
    return 2;
  }
  std::sort(inputs.begin(), inputs.end());  // the same order on every machine
  for (int pass = 1; pass <= 2; ++pass)
    for (const auto& path : inputs) {
      std::ifstream in(path, std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
      std::fprintf(stderr, "replay %d: %s (%zu bytes)\n", pass, path.c_str(), bytes.size());
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    }
  std::printf("replay: %zu inputs ran, twice\n", inputs.size());
  return 0;
}
