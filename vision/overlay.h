#pragma once

// The annotated image the control room sees: material false colour, boxes and labels.

#include "vision/analysis.h"

#include <cstdint>
#include <vector>

namespace lanegate::vision {

/// Renders the overlay as JPEG bytes no larger than `maxBytes` (quality, then size, give way).
/// Returns an empty vector when the findings carry no image.
std::vector<std::uint8_t> renderOverlay(const Findings& findings, std::size_t maxBytes = 300 * 1024);

}  // namespace lanegate::vision
