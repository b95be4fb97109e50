#pragma once
// Drains the outbox into the publisher: pending records in delivery order, a bounded
// window in flight, a record marked published only when its PUBACK arrives. After a
// reconnect (or a restart) it starts again from the first record not yet published.

#include <cstdint>
#include <set>

#include "daemon/outbox.h"
#include "daemon/publisher.h"

namespace lanegate {

/// The outbox → broker pump; lives on the io thread.
class Delivery {
 public:
  /// Hooks itself to the publisher's connections and the outbox's commits.
  Delivery(Outbox& outbox, Publisher& publisher);
  /// Publishes what is pending, up to the window.
  void kick();
  /// Records in flight now.
  [[nodiscard]] std::size_t inflight() const { return inflight_.size(); }

 private:
  static constexpr std::size_t kWindow = 64;  // the publisher caps the broker's share
  Outbox& outbox_;
  Publisher& publisher_;
  std::set<std::uint64_t> inflight_;
  bool kicking_ = false;
};

}  // namespace lanegate
