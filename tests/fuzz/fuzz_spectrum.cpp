// SPECTRUM.json (Contract 6) as an IMS detector or a file would hand it over, then the
// whole trace analysis of whatever parses, against the shipped substance library.

#include "tests/fuzz/fuzz.h"
#include "trace/analysis.h"
#include "trace/library.h"
#include "trace/spectrum.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace {

const lanegate::trace::SubstanceLibrary& library() {
  static const lanegate::trace::SubstanceLibrary lib = [] {
    const std::string path = LANEGATE_SOURCE_DIR "/config/ims/substances.yaml";
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto parsed = lanegate::trace::SubstanceLibrary::parse(text, path);
    if (!parsed) std::abort();  // the harness is broken, not the input
    return *parsed;
  }();
  return lib;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto spectrum = lanegate::trace::parseSpectrumJson(lanegate::fuzz::text(data, size));
  if (!spectrum) return 0;
  const auto analysis = lanegate::trace::analyze(*spectrum, library());
  (void)analysis;
  // What parsed must serialise and parse back to the same points.
  auto again = lanegate::trace::parseSpectrumJson(lanegate::trace::spectrumToJson(*spectrum));
  if (!again || again->points != spectrum->points) std::abort();
  return 0;
}
