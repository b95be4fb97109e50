#pragma once
// An alert's identity on the wire: its random ack token, the constant-time comparison of
// one, an id from the network made fit for a log line, and the topic level that names it.

#include <cstddef>
#include <string>

namespace lanegate {

/// A fresh ack token: 128 random bits (getrandom) as 32 lower-case hex digits; throws
/// std::runtime_error if the kernel gives no randomness.
[[nodiscard]] std::string newAckToken();

/// True when `a` equals `b`, in time that does not depend on where they differ.
[[nodiscard]] bool sameToken(const std::string& a, const std::string& b);

/// Up to `max` bytes of an id from the network for a log line: printable ASCII as is
/// (but '\\' and '"'), the rest as \xNN, and the full size when cut.
[[nodiscard]] std::string escaped(const std::string& text, std::size_t max = 128);

/// The topic level that names an alert in `alerts/{id}/image|state`: its id with '/', '+',
/// '#' and '%' percent-encoded (a trace hit's id has slashes).
[[nodiscard]] std::string alertTopicLevel(const std::string& id);

}  // namespace lanegate
