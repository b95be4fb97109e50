#pragma once
// The control room's acknowledgement (Contract 5 v1.1) as it arrives from the broker:
// anyone who may publish on the acks topic can send anything, so it is bounded before it
// is parsed, parsed without throwing, and shown in logs escaped.

#include <cstddef>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace lanegate {

/// What an ack asks for. Whether it counts (an exact id of a published alert, its token)
/// is the outbox's decision.
struct AckRequest {
  std::string id;
  std::string token;  ///< "" when absent or not a string of at most kMaxAckTokenBytes
};

inline constexpr std::size_t kMaxAckBytes = 4096;
inline constexpr std::size_t kMaxAckIdBytes = 512;
inline constexpr std::size_t kMaxAckTokenBytes = 128;

/// Parses an ack payload; the error says what is wrong with it (never quoting it).
[[nodiscard]] tl::expected<AckRequest, std::string> parseAck(std::string_view payload);

/// Up to `max` bytes of untrusted text for a log line: printable ASCII as is, anything else
/// (and '\') as \xNN, "..." when cut.
[[nodiscard]] std::string printableBytes(std::string_view text, std::size_t max = 120);

}  // namespace lanegate
