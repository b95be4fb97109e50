#pragma once
// The control room's acknowledgement (Contract 5 v1.1) as it arrives from the broker:
// anyone who may publish on the acks topic can send anything, so it is bounded before it
// is parsed, parsed without throwing, and shown in logs escaped.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace lanegate {

/// What an ack asks for. Whether it counts (an exact id of a published alert, its token)
/// is the outbox's decision.
struct AckRequest {
  std::string id;
  std::string token;        ///< "" when absent or not a string of at most kMaxAckTokenBytes
  std::string by;           ///< who acknowledged, "" when not said
  std::string disposition;  ///< one of kDispositions, "" when not said
};

/// What the control room may decide about an alert (Contract 5 v1.1, the state topic).
inline constexpr std::array<std::string_view, 4> kDispositions = {
    "cleared", "searched-nothing-found", "seized", "referred"};
inline constexpr std::size_t kMaxAckByBytes = 128;

inline constexpr std::size_t kMaxAckBytes = 4096;
inline constexpr std::size_t kMaxAckIdBytes = 512;
inline constexpr std::size_t kMaxAckTokenBytes = 128;

/// Parses an ack payload; the error says what is wrong with it (never quoting it). A
/// `disposition` other than kDispositions, or a `by` that is not a string of 1 to
/// kMaxAckByBytes printable characters, makes the whole ack invalid.
[[nodiscard]] tl::expected<AckRequest, std::string> parseAck(std::string_view payload);

/// Up to `max` bytes of untrusted text for a log line: printable ASCII as is, anything else
/// (and '\') as \xNN, "..." when cut.
[[nodiscard]] std::string printableBytes(std::string_view text, std::size_t max = 120);

}  // namespace lanegate
