#include "daemon/ctl.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "daemon/watch.h"
#include "lane/payloads.h"

namespace lanegate {
namespace {

constexpr int kOk = 0, kBadInput = 1, kUsage = 2, kUnreachable = 3, kUnhealthy = 4, kRefused = 5;

// Which socket a command needs, and the group that may use it (DESIGN "Paths and defaults").
struct Socket {
  std::string path;
  std::string group;
};
const Socket kControlSocket{"/run/lanegate/control.sock", "lanegate"};
const Socket kAdminSocket{"/run/lanegate/admin.sock", "lanegate-admin"};

// The group of the socket file when it can be seen, else the one it should have.
std::string groupOf(const Socket& socket) {
  struct stat st {};
  if (::stat(socket.path.c_str(), &st) != 0) return socket.group;
  group g{};
  group* found = nullptr;
  std::vector<char> buf(1 << 16);
  if (::getgrgid_r(st.st_gid, &g, buf.data(), buf.size(), &found) != 0 || !found)
    return socket.group;
  return found->gr_name;
}

// One request/answer exchange on the control socket. Each answer line goes to
// `onLine`; returns the final line's error ("" on success) or nullopt if unreachable.
struct CtlError {
  int code;
  std::string message;
};

std::optional<CtlError> request(const Socket& socket, const nlohmann::json& req,
                                const std::function<void(const nlohmann::json&)>& onLine) {
  const std::string& socketPath = socket.path;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return CtlError{kUnreachable, std::string("socket: ") + std::strerror(errno)};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return CtlError{kUsage, "socket path too long: " + socketPath};
  }
  std::memcpy(addr.sun_path, socketPath.c_str(), socketPath.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    const std::string why = std::strerror(err);
    ::close(fd);
    if (err == EACCES || err == EPERM) {
      const std::string group = groupOf(socket);
      std::string cmd = req.value("cmd", std::string());
      if (cmd == "device-command") cmd = "calibrate";
      return CtlError{kRefused, "permission denied on " + socketPath + ": '" + cmd +
                                    "' needs membership of the group '" + group +
                                    "' (ask an administrator: usermod -aG " + group +
                                    " USER, then log in again)"};
    }
    return CtlError{kUnreachable, "cannot reach lanegated at " + socketPath + ": " + why +
                                      " (is it running? use -s to name another socket)"};
  }
  const std::string line = lane::dumpJson(req) + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    ::close(fd);
    return CtlError{kUnreachable, "lost the connection to lanegated while sending"};
  }
  std::string buf;
  char chunk[4096];
  while (true) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      ::close(fd);
      return CtlError{kUnreachable, "lanegated closed the connection before answering"};
    }
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(buf.substr(0, nl));
      } catch (const nlohmann::json::exception&) {
        ::close(fd);
        return CtlError{kUnreachable, "lanegated answered something that is not JSON"};
      }
      buf.erase(0, nl + 1);
      if (j.value("done", false)) {
        ::close(fd);
        if (j.contains("error"))
          return CtlError{
              j.value("refused", false) ? kRefused : kBadInput,
              j["error"].is_string() ? j["error"].get<std::string>() : lane::dumpJson(j["error"])};
        return std::nullopt;
      }
      onLine(j);
    }
  }
}

int report(const std::optional<CtlError>& err) {
  if (!err) return kOk;
  std::cerr << "lanegatectl: " << err->message << "\n";
  return err->code;
}

// A JSON value as a short text: strings bare, numbers as they are.
std::string text(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_number_float()) {
    std::ostringstream o;
    o << std::fixed << std::setprecision(1) << j.get<double>();
    return o.str();
  }
  return j.is_null() ? "-" : lane::dumpJson(j);
}

// `key` of object `j`, or "-".
std::string field(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) ? text(j[key]) : "-";
}

// A device's readings, as name=value pairs.
std::string readings(const nlohmann::json& d) {
  std::string out;
  if (d.contains("readings") && d["readings"].is_object())
    for (const auto& [k, v] : d["readings"].items()) out += (out.empty() ? "" : " ") + k + "=" + text(v);
  return out;
}

// A scanner's inbox line: queue, counts, rejects, calibration.
void printScans(const std::string& indent, const nlohmann::json& s) {
  std::cout << indent << "inbox " << field(s, "inbox") << ": queued " << field(s, "queued")
            << ", analysing " << field(s, "analysing") << ", analysed " << field(s, "analysed")
            << " (alerts " << field(s, "alerts") << ", clear " << field(s, "clear")
            << "), rejected " << field(s, "rejected") << "\n";
  if (s.contains("calibration") && s["calibration"].is_object()) {
    const auto& c = s["calibration"];
    std::cout << indent << "calibration "
              << (c.contains("age_h") ? "age " + text(c["age_h"]) + " h" : std::string("none"));
    if (!field(c, "problem").empty() && field(c, "problem") != "-")
      std::cout << " (" << field(c, "problem") << ")";
    std::cout << "\n";
  }
  if (!field(s, "last_error").empty() && field(s, "last_error") != "-")
    std::cout << indent << "last error: " << field(s, "last_error") << "\n";
}

// The verdict of a status answer: 0 healthy, kUnhealthy otherwise (Contract 6).
int verdictCode(const nlohmann::json& j) {
  return j.contains("verdict") && j["verdict"].value("healthy", false) ? kOk : kUnhealthy;
}

int cmdStatus(const Socket& sock, bool json) {
  int verdict = kOk;
  const int rc = report(request(sock, {{"cmd", "status"}}, [&](const nlohmann::json& j) {
    verdict = verdictCode(j);
    if (json) {
      std::cout << lane::dumpJson(j) << std::endl;
      return;
    }
    const auto& b = j["broker"];
    std::cout << "lanegated " << j.value("version", "?") << "  site " << j.value("site", "?")
              << "  lane " << j.value("lane", "?") << "  up since " << j.value("since", "?")
              << "  session " << field(j, "session") << "\n"
              << "config   " << j.value("config", "?") << "\n"
              << "broker   " << b.value("uri", "?") << "  "
              << (b.value("connected", false) ? "connected" : "NOT CONNECTED") << ", "
              << field(b, "connections") << " connection(s) since start";
    if (!b.value("last_error", std::string()).empty())
      std::cout << " (" << b["last_error"].get<std::string>() << ")";
    const auto& o = j["outbox"];
    std::cout << "\noutbox   pending " << field(o, "pending") << " (oldest "
              << field(o, "oldest_pending_age_s") << " s), published " << field(o, "published")
              << ", acked " << field(o, "acked") << ", " << field(o, "bytes") << " bytes\n";
    const auto& u = j["unacked_alerts"];
    std::cout << "acks     " << field(u, "count") << " alert(s) unacknowledged after "
              << field(u, "older_than_s") << " s (oldest " << field(u, "oldest_age_s")
              << " s); " << field(j, "acks_rejected") << " ack(s) rejected (forged or unknown)\n";
    std::cout << "alerts   " << j.value("alerts_accepted", 0) << " accepted since start";
    if (j.contains("alerts") && j["alerts"].is_object()) {
      std::string by;
      for (const auto& [type, n] : j["alerts"].items()) by += (by.empty() ? "" : ", ") + type + " " + text(n);
      std::cout << " (" << by << ")";
    }
    std::cout << "\nfaults   " << (j["faults"].empty() ? "none" : "") << "\n";
    for (const auto& f : j["faults"]) std::cout << "  " << field(f, "kind") << ": " << field(f, "detail") << "\n";
    std::cout << "devices  " << (j["devices"].empty() ? "none configured" : "") << "\n";
    for (const auto& [name, d] : j["devices"].items()) {
      std::cout << "  " << name << "  " << d.value("state", "?") << "  faults " << field(d, "faults");
      if (d.contains("detail")) std::cout << "  " << text(d["detail"]);
      std::cout << "\n";
      if (const auto r = readings(d); !r.empty()) std::cout << "    " << r << "\n";
      if (j.contains("scans") && j["scans"].contains(name)) printScans("    ", j["scans"][name]);
    }
    if (verdict == kOk) {
      std::cout << "verdict  HEALTHY\n";
    } else {
      std::cout << "verdict  NOT HEALTHY\n";
      if (j.contains("verdict") && j["verdict"].contains("problems"))
        for (const auto& p : j["verdict"]["problems"]) std::cout << "  " << text(p) << "\n";
    }
    std::cout << std::flush;
  }));
  return rc == kOk ? verdict : rc;
}

int cmdDevices(const Socket& sock, bool json) {
  return report(request(sock, {{"cmd", "devices"}}, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << lane::dumpJson(j) << std::endl;
      return;
    }
    if (!j.contains("devices") || !j["devices"].is_array() || j["devices"].empty()) {
      std::cout << "no devices configured" << std::endl;
      return;
    }
    for (const auto& d : j["devices"]) {
      std::cout << d.value("name", "?") << "  " << d.value("driver", "?") << "  "
                << d.value("state", "?") << "  faults " << field(d, "faults");
      if (d.contains("detail") && d["detail"].is_string())
        std::cout << "  " << d["detail"].get<std::string>();
      std::cout << "\n";
      if (d.contains("readings") && d["readings"].contains("last_sample_time") &&
          d["readings"]["last_sample_time"].is_number()) {
        const auto t = static_cast<std::time_t>(d["readings"]["last_sample_time"].get<double>());
        std::tm tm{};
        ::gmtime_r(&t, &tm);
        std::cout << "  last sample " << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ") << "\n";
      }
      if (const auto r = readings(d); !r.empty()) std::cout << "  " << r << "\n";
      if (d.contains("scans")) printScans("  ", d["scans"]);
    }
    std::cout << std::flush;
  }));
}

int cmdTestAlert(const Socket& sock, long long count, bool json) {
  return report(
      request(sock, {{"cmd", "test-alert"}, {"count", count}}, [&](const nlohmann::json& j) {
        // One id a line, as soon as it is safe.
        std::cout << (json ? lane::dumpJson(j) : j.value("accepted", "")) << std::endl;
      }));
}

int cmdOutbox(const Socket& sock, bool json) {
  return report(request(sock, {{"cmd", "outbox"}}, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << lane::dumpJson(j) << std::endl;
      return;
    }
    std::cout << "pending     " << j.value("pending", 0) << "\n"
              << "published   " << j.value("published", 0) << "  (waiting for the control room's ack)\n"
              << "acked       " << j.value("acked", 0) << "\n"
              << "oldest pending  " << j.value("oldest_pending_age_s", 0.0) << " s\n"
              << "overdue acks    " << j.value("unacked_overdue", 0) << "\n"
              << "evicted telemetry " << j.value("evicted_telemetry", 0) << "\n"
              << "on disk     " << j.value("file_bytes", 0) << " bytes (payloads " << j.value("payload_bytes", 0) << ")\n";
    if (j.value("disk_fault", false)) std::cout << "DISK FAULT: alerts alone exceed the outbox budget\n";
    if (!j.value("refusing", "").empty())
      std::cout << "REFUSING new records: " << j.value("refusing", "") << "\n";
    std::cout << std::flush;
  }));
}

int cmdReload(const Socket& sock, bool json) {
  // Waits for the daemon's answer: systemd's ExecReload= runs this, so a refused config
  // fails `systemctl reload` with its file:line errors.
  return report(request(sock, {{"cmd", "reload"}}, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << lane::dumpJson(j) << std::endl;
      return;
    }
    const auto list = [&](const char* key) {
      std::string out;
      if (j.contains(key) && j[key].is_array())
        for (const auto& k : j[key])
          if (k.is_string()) out += (out.empty() ? "" : ", ") + k.get<std::string>();
      return out.empty() ? std::string("nothing") : out;
    };
    std::cout << "reloaded " << j.value("reloaded", std::string("?")) << ": "
              << j.value("devices", 0) << " device(s); applied: " << list("applied")
              << "; changed but needing a restart: " << list("restart_only") << std::endl;
  }));
}

// A device command through the daemon; `device` may be "" for the lane's only one of `type`.
int cmdCalibrate(const Socket& sock, const std::string& type, const std::string& device,
                 std::string action, bool json) {
  if (action == "clear-fault") action = "clear_fault";
  nlohmann::json req{{"cmd", "device-command"}, {"type", type}, {"command", action}};
  if (!device.empty()) req["device"] = device;
  return report(request(sock, req, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << lane::dumpJson(j) << std::endl;
      return;
    }
    const std::string state = j.value("state", "");
    const std::string name = j.value("device", device);
    if (state == "queued")
      std::cout << name << ": " << action << " sent; waiting for the device's result..." << std::endl;
    else if (state == "ok")
      std::cout << name << ": " << (j.value("message", "").empty() ? action + " ok" : j.value("message", ""))
                << std::endl;
  }));
}

// A check for an action word, with the message Contract 6's callers look for.
CLI::Validator actionIn(std::vector<std::string> actions) {
  std::string names;
  for (const auto& a : actions) names += (names.empty() ? "" : ", ") + a;
  return CLI::Validator(
      [actions, names](std::string& word) {
        for (const auto& a : actions)
          if (a == word) return std::string();
        return "unknown action '" + word + "' (" + names + ")";
      },
      "ACTION");
}

}  // namespace

int ctlMain(int argc, char** argv, const OfflineCommand& offline) {
  CLI::App app(
      "The technician's and operator's command line of lanegated: the daemon over its control\n"
      "socket, the broker as the control room sees it, and offline analysis.",
      "lanegatectl");
  app.set_version_flag("--version", "lanegatectl " LANEGATE_VERSION);
  app.footer(
      "exit codes: 0 ok, 1 bad input, 2 usage, 3 daemon unreachable, 4 (status) the daemon runs\n"
      "but is not fully healthy, 5 the socket refused this user (the message names the group\n"
      "needed)");
  app.require_subcommand(1);
  std::string sockOverride;
  app.add_option("-s,--socket", sockOverride,
                 "the daemon's socket to use (default: " + kControlSocket.path +
                     " for status, "
                     "devices and outbox; " +
                     kAdminSocket.path + " for the other commands)")
      ->envname("LANEGATE_SOCKET");
  int rc = kOk;
  // Each command picks the socket it needs, unless -s names one.
  const auto control = [&] {
    return sockOverride.empty() ? kControlSocket : Socket{sockOverride, kControlSocket.group};
  };
  const auto admin = [&] {
    return sockOverride.empty() ? kAdminSocket : Socket{sockOverride, kAdminSocket.group};
  };

  bool json = false;
  auto* status = app.add_subcommand("status", "daemon, broker and device health");
  status->add_flag("--json", json, "one JSON object");
  status->callback([&] { rc = cmdStatus(control(), json); });

  long long count = 1;
  auto* testAlert = app.add_subcommand(
      "test-alert", "accept N org.lanegate.test alerts; prints each id once durable");
  testAlert->add_option("--count", count, "how many")
      ->check(CLI::Range(1LL, 100'000LL))
      ->capture_default_str();
  testAlert->add_flag("--json", json, "one JSON object a line: {\"accepted\": id, \"seq\": n}");
  testAlert->callback([&] { rc = cmdTestAlert(admin(), count, json); });

  auto* outbox =
      app.add_subcommand("outbox", "outbox counts by state, oldest pending age, bytes on disk");
  outbox->add_flag("--json", json, "one JSON object");
  outbox->callback([&] { rc = cmdOutbox(control(), json); });

  auto* devices =
      app.add_subcommand("devices", "each device: driver, state, faults, last readings");
  devices->add_flag("--json", json, "one JSON object");
  devices->callback([&] { rc = cmdDevices(control(), json); });

  auto* reload = app.add_subcommand(
      "reload",
      "re-read the configuration and wait: what took effect, or exit 1 with the file:line "
      "errors (the daemon keeps the previous configuration)");
  reload->add_flag("--json", json, "one JSON object");
  reload->callback([&] { rc = cmdReload(admin(), json); });

  std::string device, action;
  auto* calibrate = app.add_subcommand(
      "calibrate", "run a device command through the daemon; waits for its result");
  calibrate->require_subcommand(1);
  auto* ims = calibrate->add_subcommand(
      "ims", "an IMS detector: calibrate (default), verify or clear-fault");
  ims->add_option("DEVICE", device, "the detector's name")->required();
  ims->add_option("ACTION", action, "calibrate, verify or clear-fault")
      ->check(actionIn({"calibrate", "verify", "clear-fault"}));
  ims->add_flag("--json", json, "one JSON object a line (queued, then the result)");
  ims->callback([&] {
    rc = cmdCalibrate(admin(), "ims", device, action.empty() ? "calibrate" : action, json);
  });
  std::vector<std::string> words;
  auto* xray =
      calibrate->add_subcommand("xray", "the X-ray scanner: [DEVICE] dark, air or clear-fault");
  xray->add_option("WORDS", words,
                   "[DEVICE] dark|air|clear-fault (name the scanner when the lane has several)")
      ->expected(1, 2)
      ->required();
  xray->add_flag("--json", json, "one JSON object a line (queued, then the result)");
  xray->callback([&] {
    if (const std::string why = actionIn({"dark", "air", "clear-fault"})(words.back());
        !why.empty())
      throw CLI::ValidationError("calibrate xray", why);
    rc = cmdCalibrate(admin(), "xray", words.size() == 2 ? words.front() : "", words.back(),
                      json);
  });

  WatchOptions w;
  auto* watch = app.add_subcommand("watch",
                                   "print a lane's alerts as they arrive, as the control room does "
                                   "(persistent session; acks each)");
  watch->add_option("-b,--broker", w.uri, "tcp://host:port or ssl://host:port")->required();
  watch->add_option("--site", w.site, "the lane's site")->required();
  watch->add_option("--lane", w.lane, "the lane")->required();
  watch->add_flag("--json", w.json, "one JSON object a line");
  watch->add_option("--count", w.count, "stop after N alerts (default: until Ctrl-C)")
      ->check(CLI::Range(1LL, 1'000'000'000LL));
  watch->add_option("--client-id", w.clientId,
                    "MQTT client id (default lanegatectl-watch-SITE-LANE-HOST)");
  watch->add_flag("--no-ack{false}", w.ack, "do not acknowledge the alerts");
  watch->add_option("--save-images", w.imageDir,
                    "save X-ray overlays as DIR/<alert id>.jpg, SHA-256 checked");
  watch->callback([&] { rc = watchAlerts(w); });

  // Offline analysis: parsed by the vision and trace modules themselves.
  const std::pair<const char*, const char*> offlineCommands[] = {
      {"analyze",
       "X-ray findings of a scan bundle (Contract 2): analyze SCAN.json|SCAN.tiff [--json] "
       "[--overlay FILE]"},
      {"eval", "detection and false-alarm rates over a generated set: eval DIR"},
      {"phantoms", "write generated scan bundles, or a QA test-object scan: phantoms --help"},
      {"qa", "image-quality figures of a QA test-object scan: qa SCAN.json|SCAN.tiff [--json]"},
      {"ims", "IMS plasmagram analysis: ims analyze SPECTRUM.json [--json] [--library FILE]"},
  };
  for (const auto& [name, summary] : offlineCommands) {
    auto* sub = app.add_subcommand(name, summary);
    sub->prefix_command();
    sub->set_help_flag();  // --help goes to the command itself
    sub->callback([&, sub, name = std::string(name)] {
      std::vector<std::string> args{name};
      for (const auto& a : sub->remaining()) args.push_back(a);
      rc = offline(args);
    });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version print on stdout and exit 0; any other mistake is a usage error.
    return app.exit(e, std::cout, std::cerr) == 0 ? kOk : kUsage;
  }
  return rc;
}

}  // namespace lanegate
