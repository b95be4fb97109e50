#include "daemon/ctl.h"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/config.h"
#include "daemon/mqtt_client.h"
#include "lane/sha256.h"

namespace lanegate {
namespace {

constexpr int kOk = 0, kBadInput = 1, kUsage = 2, kUnreachable = 3;

constexpr const char* kUsageText =
    "usage: lanegatectl [-s SOCKET] COMMAND [ARGS]\n"
    "\n"
    "commands that talk to the daemon (socket: -s, $LANEGATE_SOCKET, or /run/lanegate/control.sock):\n"
    "  status [--json]                 daemon, broker and device health\n"
    "  test-alert [--count N]          accept N org.lanegate.test alerts; prints each id once durable\n"
    "  outbox [--json]                 outbox counts by state, oldest pending age, bytes on disk\n"
    "  reload                          re-read the configuration (as SIGHUP)\n"
    "  calibrate ims DEVICE [calibrate|verify|clear-fault]\n"
    "  calibrate xray [DEVICE] dark|air|clear-fault\n"
    "                                  run a device command (IMS default: calibrate); waits for its result\n"
    "\n"
    "commands that talk to the broker as the control room does:\n"
    "  watch -b URI --site S --lane L [--json] [--count N] [--client-id ID] [--no-ack]\n"
    "        [--save-images DIR]       print alerts as they arrive (persistent session; acks each);\n"
    "                                  save X-ray overlays as DIR/<alert id>.jpg, SHA-256 checked\n"
    "\n"
    "offline analysis:\n"
    "  analyze SCAN.json|SCAN.tiff [--json] [--overlay FILE]   X-ray findings (Contract 2)\n"
    "  eval DIR                        detection and false-alarm rates over a generated set\n"
    "  phantoms --out DIR --count N --seed S [--raw]           write generated scan bundles\n"
    "  phantoms --qa --out DIR [--seed S] [--noise X] [--blur-mm MM]   write a QA test-object scan\n"
    "  qa SCAN.json|SCAN.tiff [--json]  image-quality figures of a QA test-object scan\n"
    "  ims analyze SPECTRUM.json [--json] [--library FILE]     IMS plasmagram analysis\n"
    "\n"
    "exit codes: 0 ok, 1 bad input, 2 usage, 3 daemon unreachable\n";

int usage(const std::string& why) {
  std::cerr << "lanegatectl: " << why << "\n\n" << kUsageText;
  return kUsage;
}

// One request/answer exchange on the control socket. Each answer line goes to
// `onLine`; returns the final line's error ("" on success) or nullopt if unreachable.
struct CtlError {
  int code;
  std::string message;
};

std::optional<CtlError> request(const std::string& socketPath, const nlohmann::json& req,
                                const std::function<void(const nlohmann::json&)>& onLine) {
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
    const std::string why = std::strerror(errno);
    ::close(fd);
    return CtlError{kUnreachable, "cannot reach lanegated at " + socketPath + ": " + why +
                                      " (is it running? use -s to name another socket)"};
  }
  const std::string line = req.dump() + "\n";
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
        if (j.contains("error")) return CtlError{kBadInput, j["error"].get<std::string>()};
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

int cmdStatus(const std::string& sock, const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json") json = true;
    else return usage("status: unknown argument '" + a + "'");
  }
  return report(request(sock, {{"cmd", "status"}}, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << j.dump() << std::endl;
      return;
    }
    const auto& b = j["broker"];
    std::cout << "lanegated " << j.value("version", "?") << "  site " << j.value("site", "?")
              << "  lane " << j.value("lane", "?") << "  up since " << j.value("since", "?") << "\n"
              << "config   " << j.value("config", "?") << "\n"
              << "broker   " << b.value("uri", "?") << "  "
              << (b.value("connected", false) ? "connected" : "NOT CONNECTED");
    if (!b.value("last_error", std::string()).empty()) std::cout << " (" << b["last_error"].get<std::string>() << ")";
    std::cout << "\nalerts   " << j.value("alerts_accepted", 0) << " accepted since start\n";
    std::cout << "devices  " << (j["devices"].empty() ? "none configured" : "") << "\n";
    for (const auto& [name, d] : j["devices"].items()) {
      std::cout << "  " << name << "  " << d.value("state", "?");
      if (d.contains("detail")) std::cout << "  " << d["detail"].get<std::string>();
      std::cout << "\n";
    }
    std::cout << std::flush;
  }));
}

int cmdTestAlert(const std::string& sock, const std::vector<std::string>& args) {
  long long count = 1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--count" && i + 1 < args.size()) {
      char* end = nullptr;
      count = std::strtoll(args[++i].c_str(), &end, 10);
      if (*end != '\0' || count < 1) return usage("test-alert: --count needs a positive integer");
    } else {
      return usage("test-alert: unknown argument '" + args[i] + "'");
    }
  }
  return report(request(sock, {{"cmd", "test-alert"}, {"count", count}}, [](const nlohmann::json& j) {
    std::cout << j.value("accepted", "") << std::endl;  // one id a line, as soon as it is safe
  }));
}

int cmdOutbox(const std::string& sock, const std::vector<std::string>& args) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json") json = true;
    else return usage("outbox: unknown argument '" + a + "'");
  }
  return report(request(sock, {{"cmd", "outbox"}}, [&](const nlohmann::json& j) {
    if (json) {
      std::cout << j.dump() << std::endl;
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
    std::cout << std::flush;
  }));
}

int cmdReload(const std::string& sock, const std::vector<std::string>& args) {
  if (!args.empty()) return usage("reload takes no arguments");
  const int rc = report(request(sock, {{"cmd", "reload"}}, [](const nlohmann::json&) {}));
  if (rc == kOk) std::cout << "reload requested; the daemon's log says what changed\n";
  return rc;
}

int cmdCalibrate(const std::string& sock, const std::vector<std::string>& args) {
  if (args.empty()) return usage("calibrate needs a device type: calibrate ims DEVICE [ACTION] or calibrate xray [DEVICE] dark|air");
  const std::string& type = args[0];
  std::string device, action;
  if (type == "ims") {
    if (args.size() < 2 || args.size() > 3) return usage("calibrate ims needs a device name, e.g. calibrate ims ims-1");
    device = args[1];
    action = args.size() == 3 ? args[2] : "calibrate";
    if (action == "clear-fault") action = "clear_fault";
    if (action != "calibrate" && action != "verify" && action != "clear_fault")
      return usage("calibrate ims: unknown action '" + action + "' (calibrate, verify, clear-fault)");
  } else if (type == "xray") {
    // Contract 6: `calibrate xray dark|air`; the device may be named when a lane has several.
    if (args.size() < 2 || args.size() > 3) return usage("calibrate xray needs dark, air or clear-fault");
    action = args.back();
    if (args.size() == 3) device = args[1];
    if (action == "clear-fault") action = "clear_fault";
    if (action != "dark" && action != "air" && action != "clear_fault")
      return usage("calibrate xray: unknown action '" + action + "' (dark, air, clear-fault)");
  } else {
    return usage("calibrate: unknown device type '" + type + "' (known: ims, xray)");
  }
  nlohmann::json req{{"cmd", "device-command"}, {"type", type}, {"command", action}};
  if (!device.empty()) req["device"] = device;
  return report(request(sock, req, [&](const nlohmann::json& j) {
    const std::string state = j.value("state", "");
    const std::string name = j.value("device", device);
    if (state == "queued")
      std::cout << name << ": " << action << " sent; waiting for the device's result..." << std::endl;
    else if (state == "ok")
      std::cout << name << ": " << (j.value("message", "").empty() ? action + " ok" : j.value("message", ""))
                << std::endl;
  }));
}

// Prints one alert the way a control-room operator reads it.
void printAlert(const std::string& payload, bool json) {
  if (json) {
    std::cout << payload << std::endl;
    return;
  }
  try {
    const auto e = nlohmann::json::parse(payload);
    std::cout << e.value("time", "?") << "  " << e.value("type", "?") << "  seq " << e.value("seq", 0)
              << "  id " << e.value("id", "?") << "  " << e.value("source", "?");
    const auto& d = e.contains("data") && e["data"].is_object() ? e["data"] : nlohmann::json::object();
    if (d.contains("message") && d["message"].is_string()) std::cout << "  \"" << d["message"].get<std::string>() << "\"";
    if (d.contains("substances") && d["substances"].is_array()) {
      std::string names;
      for (const auto& n : d["substances"]) names += (names.empty() ? "" : ", ") + (n.is_string() ? n.get<std::string>() : n.dump());
      std::cout << "  TRACE " << (names.empty() ? "unnamed" : names) << " (device "
                << (d.value("/device_verdict/alarm"_json_pointer, false) ? "alarmed" : "silent") << ", ours "
                << d.value("/our_verdict/verdict"_json_pointer, std::string("?")) << ", "
                << (d.value("agree", false) ? "agree" : "DISAGREE") << ")";
    }
    if (d.contains("findings") && d["findings"].is_array()) {
      std::cout << "  XRAY " << d.value("verdict", "?") << ", " << d["findings"].size() << " finding(s)";
      if (d.contains("conveyance") && d["conveyance"].is_object()) {
        const auto& c = d["conveyance"];
        std::cout << " on " << c.value("kind", "?");
        if (c.contains("ids") && c["ids"].is_array())
          for (const auto& id : c["ids"]) std::cout << " " << (id.is_string() ? id.get<std::string>() : id.dump());
        if (c.contains("id_checks") && c["id_checks"].is_array())
          for (const auto& k : c["id_checks"])
            if (!k.value("valid", true)) std::cout << " (INVALID " << k.value("id", "?") << ")";
      }
      for (const auto& f : d["findings"])
        if (f.is_object())
          std::cout << "\n    " << f.value("kind", "?") << " score " << f.value("score", 0.0) << ": "
                    << f.value("reason", "");
    }
    std::cout << std::endl;
  } catch (const nlohmann::json::exception&) {
    std::cout << "(alert that is not JSON, " << payload.size() << " bytes)" << std::endl;
  }
}

// Saves an alert's overlay (received earlier on its image topic) as DIR/<id>.jpg after
// checking it against the SHA-256 the alert carries; says what it did on stderr.
void saveImage(const std::string& dir, const std::string& payload, std::map<std::string, std::string>& images) {
  nlohmann::json e;
  try {
    e = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception&) {
    return;
  }
  if (!e.contains("data") || !e["data"].is_object() || !e["data"].contains("image")) return;
  const std::string id = e.value("id", "");
  const auto& ref = e["data"]["image"];
  const auto found = images.find(id);
  if (found == images.end()) {
    std::cerr << "lanegatectl: alert " << id << ": its image has not arrived on " << ref.value("topic", "?")
              << std::endl;
    return;
  }
  const std::string digest = lane::sha256Hex(found->second);
  if (digest != ref.value("sha256", "")) {
    std::cerr << "lanegatectl: alert " << id << ": IMAGE MISMATCH: SHA-256 " << digest << ", the alert says "
              << ref.value("sha256", "?") << "; not saved" << std::endl;
    images.erase(found);
    return;
  }
  std::string name = id;
  for (char& c : name)
    if (c == '/') c = '_';
  const std::string path = dir + "/" + name + ".jpg";
  // Written under a temporary name and renamed: whoever watches the directory sees whole images.
  const std::string part = dir + "/." + name + ".jpg.part";
  bool ok = false;
  {
    std::ofstream out(part, std::ios::binary);
    out.write(found->second.data(), static_cast<std::streamsize>(found->second.size()));
    ok = static_cast<bool>(out.flush());
  }
  std::error_code ec;
  if (ok) std::filesystem::rename(part, path, ec);
  if (ok && !ec)
    std::cerr << "lanegatectl: saved " << path << " (" << found->second.size() << " bytes, SHA-256 verified)" << std::endl;
  else
    std::cerr << "lanegatectl: cannot write " << path << (ec ? " (" + ec.message() + ")" : std::string()) << std::endl;
  images.erase(found);
}

int cmdWatch(const std::vector<std::string>& args) {
  std::string uri, site, lane, clientId, imageDir;
  bool json = false, ack = true;
  long long maxCount = 0;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    const bool hasValue = i + 1 < args.size();
    if ((a == "-b" || a == "--broker") && hasValue) uri = args[++i];
    else if (a == "--site" && hasValue) site = args[++i];
    else if (a == "--lane" && hasValue) lane = args[++i];
    else if (a == "--client-id" && hasValue) clientId = args[++i];
    else if (a == "--save-images" && hasValue) imageDir = args[++i];
    else if (a == "--count" && hasValue) maxCount = std::atoll(args[++i].c_str());
    else if (a == "--json") json = true;
    else if (a == "--no-ack") ack = false;
    else return usage("watch: unknown or incomplete argument '" + a + "'");
  }
  if (uri.empty() || site.empty() || lane.empty()) return usage("watch needs -b URI, --site and --lane");
  if (!imageDir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(imageDir, ec);
    if (ec) {
      std::cerr << "lanegatectl: --save-images " << imageDir << ": " << ec.message() << "\n";
      return kBadInput;
    }
  }
  if (auto u = parseBrokerUri(uri); !u) {
    std::cerr << "lanegatectl: bad broker uri '" << uri << "': " << u.error() << "\n";
    return kBadInput;
  }
  if (clientId.empty()) {
    char host[256] = "host";
    ::gethostname(host, sizeof host - 1);
    clientId = "lanegatectl-watch-" + site + "-" + lane + "-" + host;
  }
  const std::string prefix = "lanegate/v1/" + site + "/" + lane + "/";

  // Signals are taken synchronously by this thread; block them before Paho starts its own.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  std::atomic<bool> up{false}, down{true};
  std::atomic<long long> received{0};
  std::mutex outMutex;
  std::map<std::string, std::string> images;  // alert id → JPEG, until its alert arrives
  std::unique_ptr<MqttClient> client;
  MqttOptions o;
  o.uri = uri;
  o.clientId = clientId;
  o.cleanStart = false;         // a persistent session: alerts published while we are away
  o.sessionExpiryS = 7 * 86400;  // wait for us at the broker for a week
  MqttHandlers h;
  h.connected = [&](int, bool sessionPresent) {
    if (up) return;  // Paho C++ 1.2.0 may report one connect twice
    up = true;
    down = false;
    client->subscribe(prefix + "alerts", 1, [&, sessionPresent](const std::string& err) {
      if (!err.empty()) {
        std::cerr << "lanegatectl: subscribe to " << prefix << "alerts failed: " << err << std::endl;
        return;
      }
      std::cerr << "lanegatectl: watching " << prefix << "alerts on " << uri
                << (sessionPresent ? " (resumed session)" : "") << std::endl;
    });
    if (!imageDir.empty())
      client->subscribe(prefix + "alerts/+/image", 1, [&](const std::string& err) {
        if (!err.empty()) std::cerr << "lanegatectl: subscribe to images failed: " << err << std::endl;
      });
  };
  h.connectFailed = [&](const std::string& why) {
    std::cerr << "lanegatectl: " << why << "; retrying" << std::endl;
    up = false;
    down = true;
  };
  h.connectionLost = h.connectFailed;
  h.message = [&](const std::string& topic, const std::string& payload) {
    const std::string imagePrefix = prefix + "alerts/";
    if (!imageDir.empty() && topic.starts_with(imagePrefix) && topic.ends_with("/image")) {
      std::lock_guard lock(outMutex);
      if (images.size() > 256) images.erase(images.begin());  // images whose alert never came
      images[topic.substr(imagePrefix.size(), topic.size() - imagePrefix.size() - 6)] = payload;
      return;
    }
    if (topic != prefix + "alerts") return;
    {
      std::lock_guard lock(outMutex);
      printAlert(payload, json);
      if (!imageDir.empty()) saveImage(imageDir, payload, images);
    }
    if (ack) {
      try {
        const auto id = nlohmann::json::parse(payload).at("id");
        client->publish({prefix + "acks", nlohmann::json{{"id", id}}.dump(), 1, false, "application/json", std::nullopt}, nullptr);
      } catch (const nlohmann::json::exception&) {
        // An alert without an id cannot be acknowledged; it was printed all the same.
      }
    }
    ++received;
  };
  try {
    client = std::make_unique<MqttClient>(o, h);
  } catch (const std::exception& e) {
    std::cerr << "lanegatectl: " << e.what() << "\n";
    return kBadInput;
  }
  auto lastAttempt = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto backoff = std::chrono::milliseconds(500);
  const timespec tick{0, 200'000'000};
  while (maxCount == 0 || received < maxCount) {
    if (down && std::chrono::steady_clock::now() - lastAttempt > backoff) {
      if (lastAttempt.time_since_epoch().count() > 0 && backoff < std::chrono::seconds(10)) backoff *= 2;
      lastAttempt = std::chrono::steady_clock::now();
      down = false;
      client->connect();
    }
    if (up) backoff = std::chrono::milliseconds(500);
    if (sigtimedwait(&set, nullptr, &tick) > 0) break;
  }
  client->disconnect(1000);
  return kOk;
}

}  // namespace

int ctlMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string sock = std::getenv("LANEGATE_SOCKET") ? std::getenv("LANEGATE_SOCKET") : "/run/lanegate/control.sock";
  std::size_t i = 0;
  while (i < args.size() && !args[i].empty() && args[i][0] == '-') {
    if ((args[i] == "-s" || args[i] == "--socket") && i + 1 < args.size()) {
      sock = args[i + 1];
      i += 2;
    } else if (args[i] == "-h" || args[i] == "--help") {
      std::cout << kUsageText;
      return kOk;
    } else {
      return usage("unknown option '" + args[i] + "'");
    }
  }
  if (i >= args.size()) return usage("no command given");
  const std::string cmd = args[i];
  const std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  if (cmd == "status") return cmdStatus(sock, rest);
  if (cmd == "test-alert") return cmdTestAlert(sock, rest);
  if (cmd == "reload") return cmdReload(sock, rest);
  if (cmd == "outbox") return cmdOutbox(sock, rest);
  if (cmd == "calibrate") return cmdCalibrate(sock, rest);
  if (cmd == "watch") return cmdWatch(rest);
  return usage("unknown command '" + cmd + "'");
}

}  // namespace lanegate
