#pragma once
// SHA-256 (OpenSSL's EVP) as lowercase hex, for evidence hashes and image references.

#include <string>
#include <string_view>

namespace lanegate::lane {

/// SHA-256 of `data`, 64 lowercase hex digits.
std::string sha256Hex(std::string_view data);

}  // namespace lanegate::lane
