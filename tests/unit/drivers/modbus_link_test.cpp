// The Modbus transport against real libmodbus servers on loopback: chunking, tables,
// exception replies, garbage, stalls and reconnecting to a server that came back.
#include "drivers/modbus_link.h"

#include <gtest/gtest.h>

#include <vector>

#include "modbus_fixture.h"

namespace lanegate::test {
namespace {

using std::chrono::milliseconds;

LinkConfig tcp(int port, milliseconds timeout = milliseconds(1000)) {
  LinkConfig c;
  c.host = "127.0.0.1";
  c.port = port;
  c.responseTimeout = timeout;
  return c;
}

TEST(ModbusLink, ReadsInChunksOfAtMost125) {
  ServedServer s;
  std::vector<sim::ServerRequest> seen;
  {
    auto lock = s.server->lock();
    for (int i = 0; i < 2000; ++i)
      s.server->holding()[static_cast<std::size_t>(100 + i)] = static_cast<std::uint16_t>(i);
    s.server->input()[7] = 77;
  }
  s.server->setHook([&](const sim::ServerRequest& r) { seen.push_back(r); });
  ModbusLink link(tcp(s.port()));
  ASSERT_TRUE(link.connect());
  auto v = link.read(1, RegisterTable::holding, 100, 2000);
  ASSERT_TRUE(v) << v.error().message;
  ASSERT_EQ(v->size(), 2000u);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ((*v)[static_cast<std::size_t>(i)], i);
  auto lock = s.server->lock();
  ASSERT_EQ(seen.size(), 16u) << "2000 registers = 15 × 125 + 1 × 125";
  for (const auto& r : seen) {
    EXPECT_EQ(r.function, 3);
    EXPECT_LE(r.count, 125);
  }
  lock.unlock();

  auto small = link.read(1, RegisterTable::holding, 100, 250, 100);
  ASSERT_TRUE(small);
  lock.lock();
  EXPECT_EQ(seen.size(), 19u) << "a profile's smaller chunk is honoured (100+100+50)";
  EXPECT_EQ(seen.back().count, 50);
  lock.unlock();

  auto in = link.read(1, RegisterTable::input, 7, 1);
  ASSERT_TRUE(in);
  EXPECT_EQ((*in)[0], 77);
  lock.lock();
  EXPECT_EQ(seen.back().function, 4);
}

TEST(ModbusLink, RejectsImpossibleRequestsWithoutSending) {
  ServedServer s;
  ModbusLink link(tcp(s.port()));
  ASSERT_TRUE(link.connect());
  EXPECT_EQ(link.read(1, RegisterTable::holding, 65500, 100).error().kind, LinkErrorKind::invalid);
  EXPECT_EQ(link.read(1, RegisterTable::holding, 0, 10, 126).error().kind, LinkErrorKind::invalid);
  EXPECT_TRUE(link.connected());
}

// The first read of a link to a server playing `fault`: it fails.
LinkError firstReadWith(ServedServer& s, sim::ServerFault fault, ModbusLink& link) {
  s.server->setFault(fault);
  EXPECT_TRUE(link.connect());
  auto v = link.read(1, RegisterTable::holding, 0, 10);
  EXPECT_FALSE(v);
  return v ? LinkError{} : v.error();
}

// An exception reply keeps the link (the device is alive); garbage drops it, so that no
// stale reply poisons the next request, and the link works again once reconnected.
TEST(ModbusLink, AnExceptionKeepsTheLinkGarbageDropsIt) {
  struct Case {
    sim::ServerFault fault;
    LinkErrorKind kind;
    bool reconnect;
  };
  for (const Case c : {Case{sim::ServerFault::exception, LinkErrorKind::exception, false},
                       Case{sim::ServerFault::garbage, LinkErrorKind::badData, true}}) {
    ServedServer s;
    ModbusLink link(tcp(s.port()));
    const LinkError e = firstReadWith(s, c.fault, link);
    EXPECT_EQ(e.kind, c.kind) << e.message;
    EXPECT_EQ(e.needsReconnect(), c.reconnect);
    EXPECT_EQ(link.connected(), !c.reconnect);
    if (c.reconnect) {
      EXPECT_EQ(link.read(1, RegisterTable::holding, 0, 1).error().kind,
                LinkErrorKind::notConnected);
    }
    s.server->setFault(sim::ServerFault::none);
    EXPECT_TRUE(link.connect());
    EXPECT_TRUE(link.read(1, RegisterTable::holding, 0, 10));
  }
}

TEST(ModbusLink, AStalledServerTimesOut) {
  ServedServer s;
  s.server->setFault(sim::ServerFault::stall);
  ModbusLink link(tcp(s.port(), milliseconds(100)));
  ASSERT_TRUE(link.connect());
  auto v = link.read(1, RegisterTable::holding, 0, 10);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, LinkErrorKind::timeout) << v.error().message;
  EXPECT_FALSE(link.connected()) << "a late reply must not reach the next request";
}

TEST(ModbusLink, ReconnectsAfterTheServerDiesAndReturns) {
  auto s = std::make_unique<ServedServer>();
  const int port = s->port();
  {
    auto lock = s->server->lock();
    s->server->holding()[3] = 33;
  }
  ModbusLink link(tcp(port, milliseconds(300)));
  ASSERT_TRUE(link.connect());
  ASSERT_TRUE(link.read(1, RegisterTable::holding, 3, 1));
  s.reset();  // the server dies
  auto v = link.read(1, RegisterTable::holding, 3, 1);
  ASSERT_FALSE(v);
  EXPECT_TRUE(v.error().needsReconnect()) << v.error().message;
  link.close();
  EXPECT_FALSE(link.connect()) << "nobody listens";
  s = std::make_unique<ServedServer>(port);  // it returns on the same port
  ASSERT_EQ(s->port(), port);
  {
    auto lock = s->server->lock();
    s->server->holding()[3] = 34;
  }
  ASSERT_TRUE(link.connect());
  auto again = link.read(1, RegisterTable::holding, 3, 1);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*again)[0], 34);
}

TEST(ModbusLink, WritesHoldingRegisters) {
  ServedServer s;
  ModbusLink link(tcp(s.port()));
  ASSERT_TRUE(link.connect());
  ASSERT_TRUE(link.write(1, 40, 2));
  auto lock = s.server->lock();
  EXPECT_EQ(s.server->holding()[40], 2);
}

TEST(ModbusLink, ReadsTransportSettings) {
  ConfigErrors errors;
  SettingsReader r("t.yaml",
                   YAML::Load("{transport: rtu, device: /dev/ttyUSB0, baud: 9600, parity: even, "
                              "stop_bits: 2, response_timeout_ms: 250, byte_timeout_ms: 0}"),
                   "device", errors);
  const LinkConfig c = readLinkConfig(r);
  r.finish();
  EXPECT_TRUE(errors.empty()) << errors.str();
  EXPECT_EQ(c.transport, "rtu");
  EXPECT_EQ(c.baud, 9600);
  EXPECT_EQ(c.parity, 'E');
  EXPECT_EQ(c.stopBits, 2);
  EXPECT_EQ(c.responseTimeout, milliseconds(250));
  EXPECT_EQ(c.byteTimeout, milliseconds(0));
  EXPECT_EQ(c.describe(), "rtu:/dev/ttyUSB0@9600 8E2");

  ConfigErrors bad;
  SettingsReader b("t.yaml", YAML::Load("{transport: udp, port: 70000}"), "device 'x'", bad);
  readLinkConfig(b);
  EXPECT_NE(bad.str().find("t.yaml:1: device 'x': 'transport' must be one of tcp, rtu"),
            std::string::npos)
      << bad.str();
}

TEST(ModbusLink, DevicesOnOneSerialBusShareOneLink) {
  LinkConfig a;
  a.transport = "rtu";
  a.device = "/dev/ttyNOPE0";
  LinkConfig b = a;
  auto la = acquireLink(a), lb = acquireLink(b);
  EXPECT_EQ(la.get(), lb.get());
  b.device = "/dev/ttyNOPE1";
  EXPECT_NE(acquireLink(b).get(), la.get());
  EXPECT_NE(acquireLink(tcp(1)).get(), acquireLink(tcp(1)).get()) << "TCP devices never share";
}

}  // namespace
}  // namespace lanegate::test
