// Issue 15, acceptance 4: /metrics from a daemon with an X-ray scanner and two IMS
// detectors (the real lanegate-sim) passes `promtool check metrics` (Debian's
// prometheus; CI puts its promtool on PATH, see .ci/run), and /healthz gives the same
// verdict as `lanegatectl status`.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "tests/integration/daemon_fixture.h"

namespace lanegate::test {
namespace {

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// One HTTP/1.1 GET to 127.0.0.1:port; the server closes after answering.
HttpAnswer httpGet(int port, const std::string& path, const std::string& method = "GET") {
  HttpAnswer a;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return a;
  }
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  (void)::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  if (text.rfind("HTTP/1.1 ", 0) == 0) a.status = std::atoi(text.c_str() + 9);
  if (const auto body = text.find("\r\n\r\n"); body != std::string::npos)
    a.body = text.substr(body + 4);
  return a;
}

// promtool from $PROMTOOL, else the one `make deps` takes from Debian's prometheus package.
std::string promtool() {
  if (const char* p = std::getenv("PROMTOOL"); p && *p) return p;
  return LANEGATE_PROMTOOL;
}

// The value of the first sample line starting with `prefix` ("name{labels}"), or -1.
double valueOf(const std::string& page, const std::string& prefix) {
  for (auto at = page.find(prefix); at != std::string::npos; at = page.find(prefix, at + 1))
    if (at == 0 || page[at - 1] == '\n') {
      const auto space = page.find(' ', at + prefix.size());
      return std::atof(page.c_str() + space + 1);
    }
  return -1;
}

TEST(MetricsIT, AnXrayAndTwoImsLaneExposesMetricsPromtoolAccepts) {
  TempDir dir;
  Broker broker(dir);
  const std::string inbox = dir.file("inbox");
  std::filesystem::create_directories(inbox);
  SimProcess xray({"xray", "--inbox", inbox, "--every-ms", "700", "--seed", "7", "--mix",
                   "clear:50,concealment:50"},
                  dir.file("xray"));
  SimProcess ims1({"ims", "--every-ms", "300", "--sequence", "clear,cocaine:900"},
                  dir.file("ims1"));
  SimProcess ims2({"ims", "--every-ms", "300", "--sequence", "clear"}, dir.file("ims2"));
  const int port = freeLoopbackPort();
  Daemon d(dir, kImsLibrary + "metrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n" +
                    configText(dir, broker.uri(),
                               "devices:\n" + xrayEntry(inbox, xray.port) +
                                   imsEntry("ims-1", ims1.port) + imsEntry("ims-2", ims2.port)));
  // Until every kind of sample is there: scans analysed, trace hits, polls of all three.
  std::string page;
  ASSERT_TRUE(waitFor(
      [&] {
        page = httpGet(port, "/metrics").body;
        return valueOf(page,
                       "lanegate_scans_analysed_total{device=\"xray-1\",outcome=\"alert\"}") >= 1 &&
               valueOf(page,
                       "lanegate_scans_analysed_total{device=\"xray-1\",outcome=\"clear\"}") >= 1 &&
               valueOf(page, "lanegate_alerts_total{type=\"org.lanegate.trace.hit\"}") >= 1 &&
               valueOf(page, "lanegate_device_poll_duration_seconds_count{device=\"ims-2\"}") >= 1;
      },
      90s))
      << page << d.process().err();
  const std::string capture = dir.file("metrics.txt");
  writeFile(capture, page);
  if (const char* keep = std::getenv("LANEGATE_METRICS_CAPTURE")) writeFile(keep, page);
  for (const char* family :
       {"lanegate_device_poll_duration_seconds_bucket{device=\"xray-1\",le=\"+Inf\"}",
        "lanegate_device_faults_total{device=\"ims-1\"}",
        "lanegate_device_reconnects_total{device=\"ims-1\"}",
        "lanegate_scan_analysis_duration_seconds_count{device=\"xray-1\"}",
        "lanegate_alerts_total{type=\"org.lanegate.xray.hit\"}",
        "lanegate_outbox_records{state=\"pending\"}", "lanegate_outbox_oldest_pending_age_seconds",
        "lanegate_acks_total", "lanegate_alerts_unacked_overdue", "lanegate_acks_rejected_total",
        "lanegate_mqtt_connected", "lanegate_mqtt_reconnects_total"})
    EXPECT_GE(valueOf(page, family), 0) << family << " missing:\n" << page;
  EXPECT_EQ(valueOf(page, "lanegate_mqtt_connected"), 1);

  const std::string tool = promtool();
  ASSERT_EQ(::access(tool.c_str(), X_OK), 0)
      << tool << " is missing: `make deps` puts promtool there (from Debian's prometheus)";
  const auto r = run({"/bin/sh", "-c", "\"$0\" check metrics < \"$1\"", tool, capture});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "") << "promtool's lint found problems";
}

TEST(MetricsIT, HealthzGivesTheVerdictOfStatusAndTheServerRefusesWhatItDoesNotServe) {
  TempDir dir;
  Broker broker(dir);
  const int port = freeLoopbackPort();
  Daemon d(dir, "metrics:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n" +
                    configText(dir, broker.uri(), "devices:\n  - name: m1\n    type: mock\n"));
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 0; }, 15s)) << d.ctl({"status"}).out;
  auto h = httpGet(port, "/healthz");
  EXPECT_EQ(h.status, 200) << h.body;
  broker.stop();
  ASSERT_TRUE(waitFor([&] { return d.ctl({"status"}).code == 4; }, 15s));
  h = httpGet(port, "/healthz");
  EXPECT_EQ(h.status, 503);
  EXPECT_NE(h.body.find("broker " + broker.uri() + " not connected"), std::string::npos) << h.body;
  EXPECT_EQ(valueOf(httpGet(port, "/metrics").body, "lanegate_healthy"), 0);
  EXPECT_EQ(httpGet(port, "/nothing").status, 404);
  EXPECT_EQ(httpGet(port, "/metrics", "POST").status, 405);
  // A header beyond 8 KiB is refused; the daemon goes on.
  EXPECT_EQ(httpGet(port, "/metrics?" + std::string(10000, 'a')).status, 400);
  EXPECT_EQ(httpGet(port, "/healthz").status, 503);
  EXPECT_TRUE(d.process().running());
}

TEST(MetricsIT, ABadListenAddressIsAConfigErrorWithItsLine) {
  TempDir dir;
  writeFile(dir.file("c.yaml"),
            "metrics:\n  listen: localhost:http\n" + configText(dir, "tcp://127.0.0.1:1883"));
  const auto r = run({LANEGATED_BIN, "-c", dir.file("c.yaml"), "--check-config"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(dir.file("c.yaml") + ":2: metrics.listen"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace lanegate::test
