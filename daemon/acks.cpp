#include "daemon/acks.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>

namespace lanegate {

tl::expected<AckRequest, std::string> parseAck(std::string_view payload) {
  if (payload.size() > kMaxAckBytes)
    return tl::unexpected("larger than " + std::to_string(kMaxAckBytes) + " bytes");
  // Invalid UTF-8 is a parse error here: no string with it reaches the outbox or a log.
  const auto j = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
  if (!j.is_object()) return tl::unexpected(std::string("not a JSON object in UTF-8"));
  const auto id = j.find("id");
  if (id == j.end() || !id->is_string() || id->get_ref<const std::string&>().empty() ||
      id->get_ref<const std::string&>().size() > kMaxAckIdBytes)
    return tl::unexpected("no \"id\" string of 1 to " + std::to_string(kMaxAckIdBytes) + " bytes");
  AckRequest ack;
  ack.id = id->get<std::string>();
  // Without a token (or with a wrong one) the outbox refuses the ack, unless the alert is
  // from before tokens existed.
  const auto token = j.find("ack_token");
  if (token != j.end() && token->is_string() &&
      token->get_ref<const std::string&>().size() <= kMaxAckTokenBytes)
    ack.token = token->get<std::string>();
  if (const auto by = j.find("by"); by != j.end() && !by->is_null()) {
    const bool printable = by->is_string() && !by->get_ref<const std::string&>().empty() &&
                           by->get_ref<const std::string&>().size() <= kMaxAckByBytes &&
                           std::all_of(by->get_ref<const std::string&>().begin(),
                                       by->get_ref<const std::string&>().end(), [](char c) {
                                         return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
                                       });
    if (!printable)
      return tl::unexpected("\"by\" is not a string of 1 to " + std::to_string(kMaxAckByBytes) +
                            " printable bytes");
    ack.by = by->get<std::string>();
  }
  if (const auto d = j.find("disposition"); d != j.end() && !d->is_null()) {
    if (!d->is_string() || std::find(kDispositions.begin(), kDispositions.end(),
                                     d->get_ref<const std::string&>()) == kDispositions.end())
      return tl::unexpected(std::string(
          "\"disposition\" is not one of cleared, searched-nothing-found, seized, referred"));
    ack.disposition = d->get<std::string>();
  }
  return ack;
}

std::string printableBytes(std::string_view text, std::size_t max) {
  std::string shown;
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      shown += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      shown += buf;
    }
  }
  if (text.size() > max) shown += "...";
  return shown;
}

}  // namespace lanegate
