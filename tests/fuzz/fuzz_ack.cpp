// An ack as anyone who may publish on the lane's acks topic could send it: parsed as the
// daemon parses it, then applied to a real outbox (SQLite file) holding one published
// alert. The property: nothing but that alert's exact id with its token ever acknowledges
// it — no prefix, no pattern, no other token, no malformed payload.

#include "daemon/acks.h"
#include "daemon/outbox.h"
#include "tests/fuzz/fuzz.h"

#include <chrono>
#include <cstdlib>
#include <string>

namespace {

// An outbox in a fresh directory with one alert, published and not yet acknowledged.
struct World {
  lanegate::asio::io_context io;
  std::string dir;
  std::unique_ptr<lanegate::Outbox> outbox;
  std::string id = "xray:fuzz:lane-1:xray-1:scan-0001";
  std::string token;
  std::uint64_t acked = 0;  // acks applied so far (each one re-arms a fresh alert)

  World() {
    char tmpl[] = "/tmp/lanegate-fuzz-ack.XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    dir = tmpl;
    lanegate::OutboxOptions o;
    o.path = dir + "/outbox.db";
    o.minFreeBytes = 0;
    outbox = std::make_unique<lanegate::Outbox>(io, o);
    arm();
  }

  // Accepts the alert under a new id and marks it published (as a PUBACK would).
  void arm() {
    id = "xray:fuzz:lane-1:xray-1:scan-" + std::to_string(acked);
    lanegate::RecordDraft d;
    d.id = id;
    d.topic = "lanegate/v1/fuzz/lane-1/alerts";
    d.render = [this](const lanegate::RenderInfo& info) {
      token = info.ackToken;
      return std::string("{\"id\":\"") + info.id + "\"}";
    };
    bool done = false;
    outbox->accept(std::move(d), [&](const std::string& err, std::uint64_t) {
      if (!err.empty()) std::abort();
      done = true;
    });
    {
      io.restart();  // a poll that ran out of work left it stopped
      auto busy = lanegate::asio::make_work_guard(io);  // run_one_for waits for the post
      while (!done) io.run_one_for(std::chrono::milliseconds(10));
    }
    io.restart();
    // The PUBACK names the record's seq, which is not the alert's own seq (the one accept
    // reports) once other records (alert states) have been written: mark what the delivery
    // would have sent.
    std::uint64_t seq = 0;
    for (const auto& r : outbox->nextPending(64, {}))
      if (r.id == id) seq = r.seq;
    if (seq == 0) std::abort();
    outbox->markPublished(seq);
    outbox->flush();
  }
};

World& world() {
  static World* w = new World;  // lives as long as the process
  return *w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  World& w = world();
  const auto text = lanegate::fuzz::text(data, size);
  (void)lanegate::printableBytes(text);
  // The fuzzer can name the live alert: "{id}" in the input stands for its id, "{token}" for
  // its token, so that exact and near-miss acks (prefixes, other tokens) are reached.
  std::string payload(text);
  for (const auto& [mark, value] :
       {std::pair<std::string, std::string>{"{id}", w.id}, {"{token}", w.token}})
    for (auto at = payload.find(mark); at != std::string::npos;
         at = payload.find(mark, at + value.size()))
      payload.replace(at, mark.size(), value);
  const auto ack = lanegate::parseAck(payload);
  if (!ack) return 0;
  if (ack->id.size() > lanegate::kMaxAckIdBytes || ack->token.size() > lanegate::kMaxAckTokenBytes)
    std::abort();
  const std::uint64_t before = w.outbox->stats(0).acksApplied;
  w.outbox->markAcked(ack->id, ack->token);
  w.outbox->flush();
  const std::uint64_t after = w.outbox->stats(0).acksApplied;
  const bool exact = ack->id == w.id && ack->token == w.token;
  if (after != before + (exact ? 1 : 0))
    std::abort();  // acked without the id and token, or not with them
  w.io.restart();
  w.io.poll();  // what the outbox posted (its commit hooks), so that nothing piles up
  if (exact) {
    ++w.acked;
    w.arm();
  }
  return 0;
}
