// A scan bundle's JSON half (Contract 1) as the scanner's writer could leave it: parsed,
// and whatever parses must survive a round trip through metaToJson.

#include "tests/fuzz/fuzz.h"
#include "vision/decode.h"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto meta = lanegate::vision::parseMeta(lanegate::fuzz::text(data, size), "fuzz.json");
  if (!meta) return 0;
  const auto again = lanegate::vision::parseMeta(lanegate::vision::metaToJson(*meta), "again.json");
  if (!again || again->scanId != meta->scanId) std::abort();
  return 0;
}
