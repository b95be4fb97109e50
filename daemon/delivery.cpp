#include "daemon/delivery.h"

#include "daemon/log.h"

namespace lanegate {

Delivery::Delivery(Outbox& outbox, Publisher& publisher) : outbox_(outbox), publisher_(publisher) {
  publisher_.onConnected([this] {
    // Whatever was in flight on the old connection was failed by the publisher; the
    // records are still pending, so they go again, in order, with their ids.
    inflight_.clear();
    kick();
  });
  outbox_.onCommitted([this] { kick(); });
}

void Delivery::kick() {
  if (kicking_) return;  // a completion inside publish() must not recurse
  kicking_ = true;
  // Refill only once half the window has drained: one outbox query per kWindow / 2
  // records instead of one per PUBACK (the drain after an outage ran at a third of
  // mosquitto_pub's rate, tests/bench/drain_bench.cpp).
  if (inflight_.size() > kWindow / 2) {
    kicking_ = false;
    return;
  }
  while (publisher_.connected() && inflight_.size() < kWindow) {
    auto batch = outbox_.nextPending(kWindow - inflight_.size(), inflight_);
    if (batch.empty()) break;
    for (auto& r : batch) {
      inflight_.insert(r.seq);
      MqttMessage m{r.topic, std::move(r.payload), 1, r.retained, r.contentType, std::nullopt};
      if (r.kind == RecordKind::telemetry) m.expiryS = 86400;  // alerts carry no expiry
      publisher_.publish(std::move(m), [this, seq = r.seq](const std::string& err) {
        if (!inflight_.erase(seq)) return;  // from a connection since replaced
        if (err.empty()) {
          outbox_.markPublished(seq);
          kick();
        } else {
          log::get("outbox")->debug("seq {} not delivered yet: {}", seq, err);
        }
      });
    }
  }
  kicking_ = false;
}

}  // namespace lanegate
