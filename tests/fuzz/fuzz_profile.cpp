// A device profile (register map) as shipped or hand-edited: the first byte picks the IMS
// or the X-ray parser, the rest is the YAML.

#include "drivers/ims_profile.h"
#include "drivers/xray_profile.h"
#include "tests/fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto yaml = lanegate::fuzz::text(data + 1, size - 1);
  if (data[0] & 1) {
    const auto p = lanegate::parseXrayProfile(yaml, "fuzz-xray.yaml");
    if (!p) (void)p.error().str();
  } else {
    const auto p = lanegate::parseImsProfile(yaml, "fuzz-ims.yaml");
    if (!p) (void)p.error().str();
  }
  return 0;
}
