// Outbox benchmark (issue 3): the durable accept rate with group commit, and the
// latency from accept() to a subscriber on loopback through a real mosquitto.
// Run: build/release/tests/bench/outbox_bench [STATE_DIR]   (STATE_DIR on a real disk;
// the default is the current directory, since /tmp may be a RAM file system).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <future>
#include <numeric>
#include <thread>

#include "daemon/config.h"
#include "daemon/delivery.h"
#include "daemon/events.h"
#include "daemon/log.h"
#include "daemon/mqtt_client.h"
#include "daemon/mqtt_publisher.h"
#include "daemon/outbox.h"
#include "tests/support/harness.h"

using namespace lanegate;
using Clock = std::chrono::steady_clock;

namespace {

Config benchConfig(const std::string& uri) {
  Config c;
  c.site = "bench";
  c.lane = "l1";
  c.broker.uri = uri;
  c.broker.clientId = "lanegate-bench";
  return c;
}

RecordDraft alertDraft(const Config& c, std::size_t payloadBytes) {
  RecordDraft d;
  d.id = newEventId();
  d.topic = laneTopic(c, "alerts");
  const std::string pad(payloadBytes, 'x');
  d.render = [identity = identityOf(c), pad](const RenderInfo& info) {
    auto s = makeTestAlert(identity, info, std::chrono::system_clock::now());
    return s.substr(0, s.size() - 1) + ",\"pad\":\"" + pad + "\"}";
  };
  return d;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// Removes an outbox database and its WAL files.
void removeOutbox(const std::string& path) {
  for (const char* s : {"", "-wal", "-shm"}) std::remove((path + s).c_str());
}

// A fresh outbox at `path` with no free-disk floor (benches measure, they do not guard).
OutboxOptions benchOutbox(const std::string& path) {
  removeOutbox(path);
  OutboxOptions o;
  o.path = path;
  o.minFreeBytes = 0;
  return o;
}

// N accepts submitted at once; how long until all are durable.
void acceptRate(const std::string& dir, std::size_t n, bool oneAtATime) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  const std::string path = dir + "/bench-outbox.db";
  Outbox ob(io, benchOutbox(path));
  const Config c = benchConfig("tcp://127.0.0.1:1");
  std::size_t done = 0;
  const auto t0 = Clock::now();
  if (oneAtATime) {
    for (std::size_t i = 0; i < n; ++i) {
      bool ok = false;
      ob.accept(alertDraft(c, 700), [&](const std::string&, std::uint64_t) { ok = true; });
      while (!ok) io.run_one();
    }
    done = n;
  } else {
    for (std::size_t i = 0; i < n; ++i)
      ob.accept(alertDraft(c, 700), [&](const std::string&, std::uint64_t) { ++done; });
    while (done < n) io.run_one();
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("| accept, %s | %zu | %.0f alerts/s |\n", oneAtATime ? "one at a time (fsync each)" : "all at once (group commit)", n,
              static_cast<double>(n) / s);
  removeOutbox(path);
}

// Accepts `count` alerts at `rate` per second; latency from accept() to the subscriber.
void latency(const std::string& dir, double rate, std::size_t count) {
  test::TempDir tmp;
  test::Broker broker(tmp, "max_queued_messages 100000\n");
  const std::string path = dir + "/bench-latency.db";
  const Config c = benchConfig(broker.uri());

  std::mutex m;
  std::map<std::string, Clock::time_point> received;
  MqttOptions so;
  so.uri = broker.uri();
  so.clientId = "bench-subscriber";
  std::promise<void> subscribed;
  MqttHandlers h;
  std::unique_ptr<MqttClient> sub;
  std::once_flag once;  // Paho C++ 1.2.0 may report one connect twice
  h.connected = [&](int, bool) {
    std::call_once(once, [&] {
      sub->subscribe(laneTopic(c, "alerts"), 1, [&](const std::string&) { subscribed.set_value(); });
    });
  };
  h.message = [&](const std::string&, const std::string& payload) {
    const auto at = Clock::now();
    const auto idPos = payload.find("\"id\":\"") + 6;
    std::lock_guard lock(m);
    received.emplace(payload.substr(idPos, 36), at);
  };
  sub = std::make_unique<MqttClient>(so, h);
  sub->connect();
  subscribed.get_future().wait();

  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  Outbox ob(io, benchOutbox(path));
  MqttPublisher pub(io, c, 1, [] { return std::string("{\"state\":\"online\"}"); });
  Delivery delivery(ob, pub);
  pub.start();
  std::thread loop([&] { io.run(); });
  while (!pub.connected()) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  std::vector<std::pair<std::string, Clock::time_point>> sent;
  sent.reserve(count);
  const auto period = std::chrono::duration<double>(1.0 / rate);
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(i)));
    auto d = alertDraft(c, 700);
    sent.emplace_back(d.id, Clock::now());
    asio::post(io, [&ob, d = std::move(d)]() mutable { ob.accept(std::move(d), [](const std::string&, std::uint64_t) {}); });
  }
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    {
      std::lock_guard lock(m);
      if (received.size() >= count) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<double> ms;
  {
    std::lock_guard lock(m);
    for (const auto& [id, at] : sent)
      if (auto it = received.find(id); it != received.end())
        ms.push_back(std::chrono::duration<double, std::milli>(it->second - at).count());
  }
  asio::post(io, [&] { pub.stop(); io.stop(); });
  loop.join();
  sub->disconnect(500);
  std::printf("| accept → subscriber at %.0f alerts/s | %zu (%zu received) | p50 %.2f ms, p99 %.2f ms, max %.2f ms |\n", rate, count,
              ms.size(), percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 1.0));
  removeOutbox(path);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ".";
  log::init("warn");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::printf("| case | alerts | result |\n|---|---|---|\n");
  acceptRate(dir, 2000, true);
  acceptRate(dir, 20000, false);
  latency(dir, 100, 1000);
  latency(dir, 1000, 5000);
  return 0;
}
