#pragma once
// lanegate.yaml as a plain struct, parsed and validated whole before anything starts.

#include <cstdint>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "drivers/driver.h"
#include "drivers/settings.h"
#include "trace/library.h"
#include "vision/decode.h"

namespace lanegate {

/// Where and how to reach the MQTT broker.
struct BrokerConfig {
  std::string uri;              ///< tcp://host:port or ssl://host:port
  std::string clientId;         ///< default lanegate-{site}-{lane}
  std::string credentialsFile;  ///< two lines: username, password; empty = anonymous
  std::string caFile;
  std::string certFile;
  std::string keyFile;
  int keepAliveS = 30;
  double reconnectMinS = 0.5;
  double reconnectMaxS = 30.0;
};

/// The durable outbox's limits.
struct OutboxConfig {
  std::uint64_t maxBytes = 1ull << 30;       ///< payload budget; telemetry evicted past it
  std::uint64_t minFreeBytes = 100ull << 20; ///< free-disk floor: below it nothing is accepted
  double ackTimeoutS = 300;                  ///< published alerts unacked longer are reported
  std::uint32_t ackedRetentionS = 7 * 86400; ///< acked alerts are kept this long
};

/// The whole daemon configuration.
struct Config {
  std::string path;  ///< the file it came from
  std::string site;
  std::string lane;
  std::string logLevel = "info";
  std::string stateDir = "/var/lib/lanegate";
  std::string controlSocket = "/run/lanegate/control.sock";  ///< group lanegate: read-only commands
  std::string adminSocket = "/run/lanegate/admin.sock";  ///< group lanegate-admin: every command
  int controlMaxConnections = 16;                        ///< per socket
  double controlIdleTimeoutS = 60;  ///< a connection waiting this long for a request is closed
  std::string imsLibrary = "/etc/lanegate/ims/substances.yaml";  ///< IMS substance library
  BrokerConfig broker;
  OutboxConfig outbox;
  vision::DecodeLimits decode;  ///< caps on what a scan bundle may make the daemon allocate
  /// metrics.listen: "" (off) or "ADDRESS:PORT" for /metrics and /healthz over HTTP.
  std::string metricsListen;
  std::vector<DeviceSpec> devices;
};

/// An HTTP listen address: an IP literal (IPv6 in brackets) and a port.
struct ListenAddress {
  std::string host;
  int port = 0;
};
/// Parses "127.0.0.1:9464", "[::1]:9464" or "0.0.0.0:9464"; why not, on error.
tl::expected<ListenAddress, std::string> parseListenAddress(const std::string& text);

/// Parses and validates a config file; on failure, every error found.
tl::expected<Config, ConfigErrors> loadConfig(const std::string& path);
/// Parses and validates config text (`file` names it in messages).
tl::expected<Config, ConfigErrors> parseConfig(const std::string& text, const std::string& file);

/// Reads and parses the IMS substance library (errors as "file:line: message").
tl::expected<trace::SubstanceLibrary, std::string> loadSubstanceLibrary(const std::string& path);

/// The parts of a broker URI.
struct BrokerUri {
  bool tls = false;
  std::string host;
  int port = 0;
};
/// Parses tcp://host:port or ssl://host:port (also mqtt:// and mqtts://); empty on error.
tl::expected<BrokerUri, std::string> parseBrokerUri(const std::string& uri);

}  // namespace lanegate
