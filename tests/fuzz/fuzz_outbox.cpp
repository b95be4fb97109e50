// Outbox record decoding: the bytes of an outbox.db as a crash, a failing disk or a hand
// edit could leave them, opened as the daemon opens its outbox at start (checked and
// migrated, or moved aside and salvaged row by row into a fresh one). The property: the
// outbox opens whatever the file holds — it never throws (the daemon would not start) and
// never crashes — and then publishes what it recovered and accepts a new alert as usual.
// Seeds (corpus/outbox/): outboxes written by lanegated (three pending test alerts; one
// pending, one published, one acked) and one cut short.

#include "daemon/outbox.h"
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace {

const std::string& scratch();

void removeScratch() {
  std::error_code ec;
  std::filesystem::remove_all(scratch(), ec);
}

// One directory for the whole run, removed when the process exits normally (the name is
// never destroyed, so it is still there for the exit handler).
const std::string& scratch() {
  static const std::string* dir = [] {
    char tmpl[] = "/tmp/lanegate-fuzz-outbox.XXXXXX";
    if (!::mkdtemp(tmpl)) std::abort();
    auto* made = new std::string(tmpl);
    std::atexit(removeScratch);
    return made;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  const std::string& dir = scratch();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) fs::remove_all(e.path(), ec);
  {
    std::ofstream out(dir + "/outbox.db", std::ios::binary);
    const auto text = lanegate::fuzz::text(data, size);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  lanegate::asio::io_context io;
  lanegate::OutboxOptions o;
  o.path = dir + "/outbox.db";
  o.minFreeBytes = 0;
  std::unique_ptr<lanegate::Outbox> outbox;
  try {
    outbox = std::make_unique<lanegate::Outbox>(io, o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the outbox did not open: %s\n", e.what());
    std::abort();
  }
  (void)outbox->stats(0);
  for (const auto& r : outbox->nextPending(64, {})) outbox->markPublished(r.seq);
  lanegate::RecordDraft d;
  d.id = "fuzz-alert";
  d.numberedId = true;  // whatever ids the file held, a numbered one is free
  d.topic = "lanegate/v1/fuzz/lane-1/alerts";
  d.render = [](const lanegate::RenderInfo& info) { return "{\"id\":\"" + info.id + "\"}"; };
  std::string error = "no answer";
  bool done = false;
  outbox->accept(std::move(d), [&](const std::string& err, std::uint64_t) {
    error = err;
    done = true;
  });
  {
    auto busy = lanegate::asio::make_work_guard(io);  // run_one_for waits for the post
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done && std::chrono::steady_clock::now() < deadline)
      io.run_one_for(std::chrono::milliseconds(10));
  }
  if (!error.empty()) {
    std::fprintf(stderr, "the opened outbox refused an alert: %s\n", error.c_str());
    std::abort();
  }
  outbox->flush();
  (void)outbox->stats(0);
  return 0;
}
