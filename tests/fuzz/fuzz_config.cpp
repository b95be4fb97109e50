// lanegate.yaml as a technician (or a broken editor) could leave it, parsed and validated
// whole as `lanegated --check-config` and a reload do, devices included.

#include "daemon/config.h"
#include "tests/fuzz/fuzz.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Named as if it sat in config/, so that relative profile paths reach the shipped profiles
  // and device validation runs to the end.
  const auto config = lanegate::parseConfig(std::string(lanegate::fuzz::text(data, size)),
                                            LANEGATE_SOURCE_DIR "/config/fuzz.yaml");
  if (!config) (void)config.error().str();  // the messages must build from any input
  return 0;
}
