#include "daemon/config.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "drivers/registry.h"

namespace lanegate {
namespace {

// Site, lane and device names appear in MQTT topics: no wildcards or separators.
bool isTopicSafeName(const std::string& s) {
  static const std::regex kName("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
  return std::regex_match(s, kName);
}

void checkName(SettingsReader& r, const std::string& key, const std::string& value) {
  if (!value.empty() && !isTopicSafeName(value))
    r.errors().add(r.file(), r.lineOfKey(key),
                   "'" + key + "' must be 1-63 letters, digits, '.', '_' or '-' (it is part of "
                   "MQTT topics), got '" + value + "'");
}

void checkAbsolutePath(SettingsReader& r, const std::string& key, const std::string& value) {
  if (!value.empty() && value.front() != '/')
    r.errors().add(r.file(), r.lineOfKey(key),
                   "'" + key + "' must be an absolute path, got '" + value + "'");
}

// A file the daemon reads at start: it must be there and readable; a secret (password,
// private key) must not be readable or writable by group or others. Only the path and the
// mode are ever named, never the content.
void checkFile(SettingsReader& r, const std::string& key, const std::string& path, bool secret,
               const std::string& where) {
  if (path.empty() || path.front() != '/') return;  // unused, or reported as not absolute
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || ::access(path.c_str(), R_OK) != 0) {
    r.errors().add(r.file(), r.lineOfKey(key),
                   where + "cannot read '" + key + "' " + path + ": " + std::strerror(errno));
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    r.errors().add(r.file(), r.lineOfKey(key), where + "'" + key + "' " + path + " is not a file");
    return;
  }
  if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    r.errors().add(r.file(), r.lineOfKey(key),
                   where + "'" + key + "' " + path + " is open to group or others (mode " + mode +
                       "): it holds a secret; chmod 600 it (owned by the daemon's user)");
  }
}

BrokerConfig readBroker(SettingsReader& top, const std::string& site, const std::string& lane) {
  BrokerConfig b;
  SettingsReader r(top.file(), top.map("broker", true), "broker", top.errors());
  b.uri = r.string("uri", std::nullopt);
  if (r.has("uri")) {
    if (auto u = parseBrokerUri(b.uri); !u)
      r.errors().add(r.file(), r.lineOfKey("uri"), "broker: bad uri '" + b.uri + "': " + u.error());
  }
  b.clientId = r.string("client_id", "lanegate-" + site + "-" + lane);
  if (b.clientId.empty() || b.clientId.size() > 128)
    r.errors().add(r.file(), r.lineOfKey("client_id"),
                   "broker: 'client_id' must be 1-128 characters");
  b.credentialsFile = r.string("credentials_file", std::string());
  checkAbsolutePath(r, "credentials_file", b.credentialsFile);
  b.keepAliveS = static_cast<int>(r.integer("keepalive_s", 30, 5, 3600));
  b.reconnectMinS = r.number("reconnect_min_s", 0.5, 0.05, 600.0);
  b.reconnectMaxS = r.number("reconnect_max_s", 30.0, 0.05, 3600.0);
  if (b.reconnectMaxS < b.reconnectMinS)
    r.errors().add(r.file(), r.lineOfKey("reconnect_max_s"),
                   "broker: 'reconnect_max_s' must not be less than 'reconnect_min_s'");

  SettingsReader tls(top.file(), r.map("tls", false), "broker.tls", top.errors());
  b.caFile = tls.string("ca_file", std::string());
  b.certFile = tls.string("cert_file", std::string());
  b.keyFile = tls.string("key_file", std::string());
  for (const char* k : {"ca_file", "cert_file", "key_file"}) checkAbsolutePath(tls, k, tls.string(k, std::string()));
  if (b.certFile.empty() != b.keyFile.empty())
    tls.errors().add(tls.file(), tls.lineOfKey(b.certFile.empty() ? "key_file" : "cert_file"),
                     "broker.tls: 'cert_file' and 'key_file' go together");
  tls.finish();
  const auto u = parseBrokerUri(b.uri);
  if (u && !u->tls && (!b.caFile.empty() || !b.certFile.empty()))
    r.errors().add(r.file(), r.lineOfKey("tls"),
                   "broker: TLS files are set but the uri '" + b.uri + "' is not ssl://");
  if (u && u->tls && b.caFile.empty())
    r.errors().add(r.file(), r.has("tls") ? r.lineOfKey("tls") : r.lineOfKey("uri"),
                   "broker: an ssl:// uri needs tls.ca_file, the CA that signed the broker's "
                   "certificate (the system's whole trust store is not trusted for it)");
  if (u && !u->tls && !b.credentialsFile.empty())
    r.errors().add(r.file(), r.lineOfKey("credentials_file"),
                   "broker: 'credentials_file' with the plain uri '" + b.uri +
                       "' would send the password in clear; use ssl://");
  // Secrets: readable by the daemon's user alone. Certificates: at least readable.
  checkFile(r, "credentials_file", b.credentialsFile, true, "broker: ");
  checkFile(tls, "ca_file", b.caFile, false, "broker.tls: ");
  checkFile(tls, "cert_file", b.certFile, false, "broker.tls: ");
  checkFile(tls, "key_file", b.keyFile, true, "broker.tls: ");
  r.finish();
  return b;
}

OutboxConfig readOutbox(SettingsReader& top) {
  OutboxConfig o;
  SettingsReader r(top.file(), top.map("outbox", false), "outbox", top.errors());
  o.maxBytes = static_cast<std::uint64_t>(r.integer("max_bytes", 1ll << 30, 1 << 20, 1ll << 50));
  o.minFreeBytes = static_cast<std::uint64_t>(r.integer("min_free_bytes", 100ll << 20, 0, 1ll << 50));
  o.ackTimeoutS = r.number("ack_timeout_s", 300.0, 1.0, 30.0 * 86400);
  o.ackedRetentionS = static_cast<std::uint32_t>(r.integer("acked_retention_s", 7 * 86400, 0, 366 * 86400));
  r.finish();
  return o;
}

// Caps a scan bundle is checked against before anything is allocated for it.
vision::DecodeLimits readDecode(SettingsReader& top) {
  vision::DecodeLimits d;
  SettingsReader r(top.file(), top.map("decode", false), "decode", top.errors());
  d.maxWidth = static_cast<int>(r.integer("max_scan_width", d.maxWidth, 1, 1 << 20));
  d.maxHeight = static_cast<int>(r.integer("max_scan_height", d.maxHeight, 1, 1 << 20));
  d.maxPixels = static_cast<std::uint64_t>(
      r.integer("max_scan_pixels", static_cast<std::int64_t>(d.maxPixels), 1, 1ll << 34));
  d.maxTiffBytes = static_cast<std::uintmax_t>(
      r.integer("max_tiff_bytes", static_cast<std::int64_t>(d.maxTiffBytes), 1024, 1ll << 36));
  d.maxJsonBytes = static_cast<std::uintmax_t>(
      r.integer("max_json_bytes", static_cast<std::int64_t>(d.maxJsonBytes), 1024, 64ll << 20));
  r.finish();
  return d;
}

std::vector<DeviceSpec> readDevices(SettingsReader& top) {
  std::vector<DeviceSpec> devices;
  const YAML::Node list = top.sequence("devices", false);
  std::map<std::string, int> seen;  // name → line of first use
  for (std::size_t i = 0; i < list.size(); ++i) {
    const YAML::Node entry = list[i];
    DeviceSpec spec;
    spec.file = top.file();
    spec.line = lineOf(entry);
    spec.settings = entry;
    SettingsReader r(top.file(), entry, "device", top.errors());
    if (!entry.IsMap()) continue;  // the reader reported it
    spec.name = r.string("name", std::nullopt);
    checkName(r, "name", spec.name);
    SettingsReader named(top.file(), entry,
                         spec.name.empty() ? std::string("device") : "device '" + spec.name + "'",
                         top.errors());
    named.allow("name");
    spec.type = named.string("type", std::nullopt);
    if (!spec.name.empty()) {
      if (auto [it, fresh] = seen.emplace(spec.name, spec.line); !fresh)
        top.errors().add(top.file(), r.lineOfKey("name"),
                         "duplicate device name '" + spec.name + "' (first defined at line " +
                             std::to_string(it->second) + ")");
    }
    if (!spec.type.empty()) {
      const DriverType* type = findDriverType(spec.type);
      if (!type) {
        std::string known;
        for (const auto& t : driverTypes()) known += (known.empty() ? "" : ", ") + std::string(t.type);
        top.errors().add(top.file(), named.lineOfKey("type"),
                         "device '" + spec.name + "': unknown type '" + spec.type +
                             "' (known: " + known + ")");
        continue;
      }
      type->validate(named);
      named.finish();
    }
    devices.push_back(std::move(spec));
  }
  return devices;
}

}  // namespace

tl::expected<BrokerUri, std::string> parseBrokerUri(const std::string& uri) {
  static const std::regex kUri(R"(^(tcp|ssl|mqtt|mqtts)://(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$)");
  std::smatch m;
  if (!std::regex_match(uri, m, kUri))
    return tl::unexpected(std::string("expected tcp://host:port or ssl://host:port"));
  BrokerUri out;
  out.tls = m[1] == "ssl" || m[1] == "mqtts";
  out.host = m[2];
  out.port = std::stoi(m[3]);
  if (out.port < 1 || out.port > 65535)
    return tl::unexpected("port " + std::string(m[3]) + " is out of range 1-65535");
  return out;
}

tl::expected<ListenAddress, std::string> parseListenAddress(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return tl::unexpected("expected ADDRESS:PORT, e.g. 127.0.0.1:9464, not '" + text + "'");
  ListenAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  unsigned char addr[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, a.host.c_str(), addr) != 1 &&
      ::inet_pton(AF_INET6, a.host.c_str(), addr) != 1)
    return tl::unexpected("'" + a.host + "' is not an IP address (use 127.0.0.1, 0.0.0.0 or [::1])");
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(port) < 1 || std::stoi(port) > 65535)
    return tl::unexpected("port '" + port + "' is not 1-65535");
  a.port = std::stoi(port);
  return a;
}

namespace {
std::string readMetrics(SettingsReader& top) {
  SettingsReader r(top.file(), top.map("metrics", false), "metrics", top.errors());
  std::string listen = r.string("listen", std::string());
  if (!listen.empty())
    if (auto a = parseListenAddress(listen); !a)
      top.errors().add(top.file(), r.lineOfKey("listen"), "metrics.listen: " + a.error());
  r.finish();
  return listen;
}
}  // namespace

tl::expected<Config, ConfigErrors> parseConfig(const std::string& text, const std::string& file) {
  ConfigErrors errors;
  if (const auto bad = findInvalidUtf8(text)) {
    errors.add(file, bad->line, bad->str());
    return tl::unexpected(errors);
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    errors.add(file, e.mark.line + 1, "YAML syntax error: " + e.msg);
    return tl::unexpected(errors);
  }
  if (!root.IsMap()) {
    errors.add(file, root.IsNull() ? 1 : lineOf(root), "expected a map of settings at the top level");
    return tl::unexpected(errors);
  }
  Config c;
  c.path = file;
  SettingsReader r(file, root, "config", errors);
  c.site = r.string("site", std::nullopt);
  checkName(r, "site", c.site);
  c.lane = r.string("lane", std::nullopt);
  checkName(r, "lane", c.lane);
  c.logLevel = r.choice("log_level", std::string("info"),
                        {"trace", "debug", "info", "warn", "error", "critical", "off"});
  c.stateDir = r.string("state_dir", std::string("/var/lib/lanegate"));
  checkAbsolutePath(r, "state_dir", c.stateDir);
  c.controlSocket = r.string("control_socket", std::string("/run/lanegate/control.sock"));
  checkAbsolutePath(r, "control_socket", c.controlSocket);
  // The admin socket goes beside the control socket unless it is named.
  c.adminSocket =
      r.string("admin_socket",
               (std::filesystem::path(c.controlSocket).parent_path() / "admin.sock").string());
  checkAbsolutePath(r, "admin_socket", c.adminSocket);
  for (const char* key : {"control_socket", "admin_socket"}) {
    const std::string& value =
        std::string(key) == "control_socket" ? c.controlSocket : c.adminSocket;
    if (value.size() >= 108)
      errors.add(file, r.lineOfKey(key),
                 "'" + std::string(key) + "' is longer than a Unix socket path may be (107 bytes)");
  }
  if (c.adminSocket == c.controlSocket)
    errors.add(file, r.lineOfKey("admin_socket"),
               "'admin_socket' must differ from 'control_socket' (their groups differ)");
  c.controlMaxConnections = static_cast<int>(r.integer("control_max_connections", 16, 1, 1024));
  c.controlIdleTimeoutS = r.number("control_idle_timeout_s", 60.0, 0.1, 86400.0);
  c.imsLibrary = r.string("ims_library", std::string("/etc/lanegate/ims/substances.yaml"));
  if (!c.imsLibrary.empty() && c.imsLibrary.front() != '/') {
    // Relative to the config file, like the drivers' profile paths.
    const auto dir = std::filesystem::path(file).parent_path();
    c.imsLibrary = (dir / c.imsLibrary).lexically_normal().string();
  }
  c.broker = readBroker(r, c.site, c.lane);
  c.outbox = readOutbox(r);
  c.decode = readDecode(r);
  c.metricsListen = readMetrics(r);
  c.devices = readDevices(r);
  r.finish();
  if (!errors.empty()) return tl::unexpected(errors);
  return c;
}

tl::expected<Config, ConfigErrors> loadConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigErrors errors;
    errors.add(path, 0, "cannot open config file: " + std::string(std::strerror(errno)));
    return tl::unexpected(errors);
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto config = parseConfig(text.str(), path);
  if (!config) return config;
  // The substance library is part of the configuration when a trace detector is.
  const bool hasIms = std::any_of(config->devices.begin(), config->devices.end(),
                                  [](const DeviceSpec& d) { return d.type == "ims"; });
  if (hasIms) {
    if (auto lib = loadSubstanceLibrary(config->imsLibrary); !lib) {
      ConfigErrors errors;
      errors.add(path, 0, "ims_library: " + lib.error());
      return tl::unexpected(errors);
    }
  }
  return config;
}

tl::expected<trace::SubstanceLibrary, std::string> loadSubstanceLibrary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (const auto bad = findInvalidUtf8(text.str()))
    return tl::unexpected(path + ":" + std::to_string(bad->line) + ": " + bad->str());
  return trace::SubstanceLibrary::parse(text.str(), path);
}

}  // namespace lanegate
