#include "daemon/daemon.h"

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <iterator>
#include <variant>

#include <nlohmann/json.hpp>

#include "daemon/acks.h"
#include "daemon/events.h"
#include "daemon/log.h"
#include "daemon/reload.h"
#include "drivers/registry.h"
#include "drivers/xray_driver.h"
#include "lane/payloads.h"
#include "lane/trace_pipeline.h"

namespace lanegate {
namespace {
constexpr int kMaxTestAlerts = 100'000;
// The groups given to the control sockets (DESIGN "Paths and defaults").
constexpr const char* kControlGroup = "lanegate";
constexpr const char* kAdminGroup = "lanegate-admin";

// std::visit over a set of lambdas.
template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

nlohmann::json healthJson(const DeviceHealth& h) {
  nlohmann::json j{{"state", h.state}, {"faults", h.faults}};
  if (!h.detail.empty()) j["detail"] = h.detail;
  if (!h.readings.empty()) j["readings"] = h.readings;
  return j;
}
}  // namespace

Daemon::Daemon(Config config)
    : config_(std::move(config)),
      signals_(io_, SIGINT, SIGTERM, SIGHUP),
      statusTimer_(io_),
      notify_(io_, [this] { return stuck(); }),
      started_(std::chrono::system_clock::now()) {
  // Every type shows, also at zero, so a script need not know which exist.
  for (const char* type : {"org.lanegate.xray.hit", "org.lanegate.trace.hit", "org.lanegate.test"})
    alertsByType_[type] = 0;
}

Daemon::~Daemon() { stopDevices(); }

int Daemon::run() {
  auto logger = log::get("daemon");
  std::error_code ec;
  std::filesystem::create_directories(config_.stateDir, ec);
  if (ec) {
    logger->critical("{}: cannot create state_dir {}: {}", config_.path, config_.stateDir, ec.message());
    return 1;
  }
  // The outbox first: it keeps the session number the publisher's will carries.
  try {
    OutboxOptions o;
    o.path = config_.stateDir + "/outbox.db";
    o.maxBytes = config_.outbox.maxBytes;
    o.minFreeBytes = config_.outbox.minFreeBytes;
    o.ackedRetentionS = config_.outbox.ackedRetentionS;
    outbox_ = std::make_unique<Outbox>(io_, o);
  } catch (const std::exception& e) {
    logger->critical("{}: cannot open the outbox in {}: {}", config_.path, config_.stateDir, e.what());
    return 1;
  }
  try {
    publisher_ = std::make_unique<MqttPublisher>(io_, config_, outbox_->session(),
                                                 [this] { return statusJson(); });
  } catch (const std::exception& e) {
    logger->critical("{}: {}", config_.path, e.what());
    return 1;
  }
  delivery_ = std::make_unique<Delivery>(*outbox_, *publisher_);
  publisher_->subscribe(laneTopic(config_, "acks"),
                        [this](const std::string&, const std::string& payload) { onAck(payload); });
  publisher_->onConnected([this] {
    for (const auto& [name, h] : health_) publishDeviceStatus(name, h);
    for (const auto& name : std::set<std::string>(removedDevices_)) clearDeviceStatus(name);
  });
  // Two sockets, told apart by their groups: the kernel checks who may connect.
  const auto handler = [this](const nlohmann::json& req, std::shared_ptr<ControlReply> reply) {
    onControl(req, std::move(reply));
  };
  ControlSocketOptions co;
  co.path = config_.controlSocket;
  co.group = kControlGroup;
  co.commands = {"status", "devices", "outbox"};
  co.otherSocket = config_.adminSocket + " (group " + kAdminGroup + ")";
  co.maxConnections = static_cast<std::size_t>(config_.controlMaxConnections);
  co.idleTimeout =
      std::chrono::milliseconds(static_cast<long long>(config_.controlIdleTimeoutS * 1000));
  ControlSocketOptions ao = co;
  ao.path = config_.adminSocket;
  ao.group = kAdminGroup;
  ao.groupRequired = true;  // never left to the daemon's own group, whose members are not admins
  ao.commands.clear();
  ao.otherSocket.clear();
  ao.logPeers = true;
  controlOptions_ = co;
  adminOptions_ = ao;
  control_ = std::make_unique<ControlServer>(io_, co, handler);
  admin_ = std::make_unique<ControlServer>(io_, ao, handler);
  for (auto* server : {control_.get(), admin_.get()}) {
    if (auto err = server->listen(); !err.empty()) {
      logger->critical("{}", err);
      return 1;
    }
  }
  if (!config_.metricsListen.empty()) {
    auto where = parseListenAddress(config_.metricsListen);  // validated with the config
    if (!where) {
      logger->critical("{}: metrics.listen: {}", config_.path, where.error());
      return 1;
    }
    metrics_ = std::make_unique<MetricsServer>(
        io_, *where,
        MetricsServer::Handlers{[this] { return metricsText(); },
                                [this] {
                                  const auto issues = problems();
                                  std::string why;
                                  for (const auto& p : issues) why += (why.empty() ? "" : "; ") + p;
                                  return std::make_pair(issues.empty(), why);
                                }});
    if (auto err = metrics_->listen(); !err.empty()) {
      logger->critical("{}: {}", config_.path, err);
      return 1;
    }
  }
  waitSignals();
  startDevices();
  publisher_->start();
  checkStatus();
  logger->info("lanegated {} running: site {} lane {}, {} device(s), sockets {} and {}",
               LANEGATE_VERSION, config_.site, config_.lane, config_.devices.size(),
               config_.controlSocket, config_.adminSocket);
  notify_.ready();
  notify_.status(summaryLine());
  ready_ = true;
  // Every handler answers its own errors; should an exception still escape one, it ends
  // that handler's work, is logged, and the loop goes on (Asio allows run() again).
  while (true) {
    try {
      io_.run();
      break;
    } catch (const std::exception& e) {
      logger->critical("an event handler failed: {}; the daemon goes on", e.what());
    } catch (...) {
      logger->critical("an event handler failed with an unknown exception; the daemon goes on");
    }
  }
  logger->info("stopped");
  return 0;
}

void Daemon::waitSignals() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      try {
        (void)reload();  // it logs what it did
      } catch (const std::exception& e) {
        log::get("daemon")->error("reload failed: {}", e.what());
      }
      waitSignals();  // whatever happened, SIGTERM must still stop the daemon
      return;
    }
    log::get("daemon")->info("signal {}: stopping", sig);
    shutdown();
  });
}

void Daemon::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  notify_.stopping();
  control_->close();
  admin_->close();
  if (metrics_) metrics_->close();
  statusTimer_.cancel();
  stopDevices();
  publisher_->stop();
  signals_.cancel();
  // Everything that could still post (Paho, devices) is stopped or guarded: stop the
  // loop rather than wait for stray timers.
  io_.stop();
  outbox_->flush();  // commit the last published marks; accepted records are already safe
}

std::string Daemon::reload(nlohmann::json* outcome) {
  auto logger = log::get("daemon");
  notify_.reloading();
  auto fresh = loadConfig(config_.path);
  if (!fresh) {
    for (const auto& e : fresh.error().all()) logger->error("reload: {}", e.str());
    logger->error("reload: configuration not changed; still running on the previous one");
    notify_.reloaded();
    std::string errors = fresh.error().str();
    while (!errors.empty() && errors.back() == '\n') errors.pop_back();
    return "reload refused, still running on the previous configuration:\n" + errors;
  }
  ReloadPlan plan = planReload(config_, *fresh);
  for (const auto& key : plan.restartOnly)
    logger->warn("reload: {} changed; it takes effect only on restart (the running value is kept)",
                 key);
  stopDevices();
  // A device that leaves the config leaves the broker too: its retained status is cleared.
  for (const auto& old : config_.devices)
    if (std::none_of(plan.next.devices.begin(), plan.next.devices.end(),
                     [&](const DeviceSpec& d) { return d.name == old.name; }))
      removedDevices_.insert(old.name);
  for (const auto& d : plan.next.devices) removedDevices_.erase(d.name);
  config_ = std::move(plan.next);
  imsLibrary_.reset();  // read again on the next sample: a reload may follow a library edit
  log::setLevel(config_.logLevel);
  health_.clear();
  reported_.clear();
  faultsSeen_.clear();
  readingsFault_.clear();
  startDevices();
  for (const auto& name : std::set<std::string>(removedDevices_)) clearDeviceStatus(name);
  publisher_->publishStatus();
  std::string applied;
  for (const auto& key : plan.applied) applied += (applied.empty() ? "" : ", ") + key;
  logger->info("reloaded {}: {} device(s){}", config_.path, config_.devices.size(),
               applied.empty() ? "" : "; applied " + applied);
  if (outcome)
    *outcome = {{"reloaded", config_.path},
                {"devices", config_.devices.size()},
                {"applied", plan.applied},
                {"restart_only", plan.restartOnly}};
  notify_.reloaded();
  notify_.status(summaryLine());
  return "";
}

void Daemon::startDevices() {
  // One runner (thread) per TCP device, one per serial bus shared by its devices.
  std::vector<std::pair<std::string, std::vector<DeviceRunner::Device>>> groups;
  for (const auto& spec : config_.devices) {
    const DriverType* type = findDriverType(spec.type);
    if (!type) continue;  // validated before; cannot happen
    health_[spec.name] = DeviceHealth{};
    const std::string bus = serialBusOf(spec);
    auto group = bus.empty() ? groups.end()
                             : std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == bus; });
    if (group == groups.end()) {
      groups.emplace_back(bus.empty() ? spec.name : bus, std::vector<DeviceRunner::Device>{});
      group = std::prev(groups.end());
    }
    group->second.push_back({spec.name, type->create(spec)});
  }
  // Each X-ray scanner's inbox: its bundles become alerts through the outbox.
  for (const auto& spec : config_.devices) {
    if (spec.type != "xray") continue;
    const XrayLaneSettings s = readXrayLaneSettings(spec);
    XrayInboxOptions o;
    o.device = spec.name;
    o.inbox = s.inbox;
    o.stateDir = config_.stateDir;
    o.limits = config_.decode;
    o.workers = s.workers;
    o.queue = s.queue;
    o.retentionDays = s.retentionDays;
    o.retentionBytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.retentionMb)) << 20;
    calibrationMaxAgeH_[spec.name] = s.calibrationMaxAgeHours;
    auto inbox = std::make_unique<XrayInbox>(io_, o, *outbox_, identityOf(config_));
    inbox->onScan([this](const lane::ConveyanceRecord& c, const std::string& alertId) {
      onScan(c, alertId);
    });
    inbox->onAnalysed([this, name = spec.name](double seconds, const char* outcome) {
      analysisSeconds_.try_emplace(name, durationBuckets()).first->second.observe(seconds);
      ++scansAnalysed_[{name, outcome}];
    });
    if (auto err = inbox->start(); !err.empty()) {
      log::get("daemon")->error("{}", err);
      health_[spec.name].state = "fault";
      health_[spec.name].detail = err;
    }
    inboxes_.push_back(std::move(inbox));
  }
  for (auto& [label, devices] : groups) {
    if (devices.size() > 1)
      log::get("daemon")->info("serial bus {}: {} devices share one thread", label, devices.size());
    auto runner = std::make_unique<DeviceRunner>(
        io_, label, std::move(devices),
        [this](const std::string& n, const DeviceHealth& h) { onDeviceHealth(n, h); },
        [this](const std::string& n, Sample s) { onSample(n, std::move(s)); });
    runner->onCall([this](const std::string& n, const char* call,
                          std::chrono::steady_clock::duration took,
                          bool ok) { onDeviceCall(n, call, took, ok); });
    runner->start();
    runners_.push_back(std::move(runner));
  }
}

void Daemon::onSample(const std::string& device, Sample sample) {
  if (stopping_) return;
  std::visit(Overloaded{[&](TraceSample& t) { onTrace(device, std::move(t), sample.time); },
                        [&](ScannerState& s) { onScanner(device, s); }},
             sample.event);
}

void Daemon::onTrace(const std::string& device, TraceSample sample,
                     std::chrono::system_clock::time_point readAt) {
  auto logger = log::get("daemon");
  if (!imsLibrary_) {
    auto lib = loadSubstanceLibrary(config_.imsLibrary);
    if (!lib) {
      logger->error("{}: cannot analyse trace samples: {}", device, lib.error());
      return;
    }
    imsLibrary_ = std::move(*lib);
  }
  auto result = lane::evaluateTrace(device, std::move(sample), readAt, *imsLibrary_,
                                    config_.site + "/" + config_.lane);
  if (!result) {
    logger->error("{}: rejected a trace sample: {}", device, result.error());
    return;
  }
  // A reading no detector can have (a sensor or unit fault) makes the device `fault` until
  // a sample with sane readings arrives; an alarm or a match in that sample still alerts.
  if (auto& fault = readingsFault_[device]; fault != result->readingsProblem) {
    fault = result->readingsProblem;
    if (!fault.empty()) logger->error("{}: readings out of range: {}", device, fault);
    if (auto h = reported_.find(device); h != reported_.end()) onDeviceHealth(device, h->second);
  }
  if (!result->alert) {
    logger->debug("{}: trace sample {}", device, result->verdict);
    return;
  }
  // The sample belongs to the conveyance in the lane; a hit on one X-ray already flagged
  // is urgent and names that alert.
  correlator_.attribute(*result);
  RecordDraft d;
  // The detector's clock may be reset and repeat a sample_time: the outbox appends a
  // counter it commits with the record.
  d.id = result->id;
  d.numberedId = true;
  d.kind = RecordKind::alert;
  d.topic = laneTopic(config_, "alerts");
  // The event's time is the sample's, by the detector's clock, unless that clock is more
  // than a day from ours (reset, or never set): then when the sample was read.
  const auto sampleTime =
      std::chrono::system_clock::time_point(std::chrono::seconds(result->sampleTime));
  const auto skew = sampleTime > readAt ? sampleTime - readAt : readAt - sampleTime;
  lane::EventHead head{"org.lanegate.trace.hit",
                       "",
                       0,
                       device,
                       skew <= std::chrono::hours(24) ? sampleTime : readAt,
                       result->conveyance ? lane::subjectOf(*result->conveyance) : std::string(),
                       lane::dataSchemaUri("trace-hit-data"),
                       ""};
  // render runs on the outbox's writer thread: it gets copies, and data serialised once.
  d.render = [identity = identityOf(config_), head = std::move(head),
              data = lane::traceHitData(*result)](const RenderInfo& info) mutable {
    head.id = info.id;
    head.seq = info.seq;
    head.ackToken = info.ackToken;
    return lane::cloudEvent(identity, head, data);
  };
  logger->warn("{}: trace hit {}", device, result->id);
  acceptTraceHit(std::move(d), device, 0);
}

void Daemon::acceptTraceHit(RecordDraft draft, const std::string& device, int attempt) {
  // A trace hit has no file to wait in (an X-ray bundle waits in its inbox): one that the
  // outbox refuses (disk full, a write error) is kept here, a bounded number, and offered
  // again with backoff; the status reports it meanwhile.
  if (attempt == 0) {
    if (traceHitsWaiting_ >= kMaxTraceHitsWaiting) {
      ++traceHitsDropped_;
      log::get("daemon")->critical("{}: trace hit {} LOST: {} hits already wait for the outbox",
                                   device, draft.id, traceHitsWaiting_);
      return;
    }
    ++traceHitsWaiting_;
  }
  auto retry = draft;  // kept for another attempt; render is a copyable function
  outbox_->accept(std::move(draft), [this, retry = std::move(retry), device, attempt](
                                        const std::string& err, std::uint64_t) mutable {
    auto logger = log::get("daemon");
    if (err.empty()) {
      --traceHitsWaiting_;
      ++alertsByType_["org.lanegate.trace.hit"];
      if (attempt > 0)
        logger->info("{}: trace hit {} accepted after {} retries", device, retry.id, attempt);
      return;
    }
    if (stopping_) {
      logger->critical("{}: trace hit {} NOT accepted before stopping: {}", device, retry.id, err);
      return;
    }
    const auto delay = std::chrono::seconds(std::min(60, 1 << std::min(attempt, 6)));
    logger->error("{}: trace hit {} NOT accepted (attempt {}): {}; trying again in {} s", device,
                  retry.id, attempt + 1, err, delay.count());
    auto timer = std::make_shared<asio::steady_timer>(io_, delay);
    timer->async_wait([this, timer, retry = std::move(retry), device,
                       attempt](const boost::system::error_code& ec) mutable {
      if (ec || stopping_) return;
      acceptTraceHit(std::move(retry), device, attempt + 1);
    });
  });
}

void Daemon::onScanner(const std::string& device, const ScannerState& state) {
  switch (correlator_.onScannerState(state)) {
    case lane::Correlator::Change::entered:
      log::get("daemon")->info("lane: a conveyance entered the lane ({} lane_occupied)", device);
      break;
    case lane::Correlator::Change::left:
      log::get("daemon")->info("lane: the conveyance left the lane ({} lane_occupied)", device);
      break;
    case lane::Correlator::Change::none:
      break;
  }
}

void Daemon::onScan(const lane::ConveyanceRecord& conveyance, const std::string& alertId) {
  if (!alertId.empty()) ++alertsByType_["org.lanegate.xray.hit"];
  const std::string flagged = alertId.empty() ? "" : " (flagged by " + alertId + ")";
  if (correlator_.onScan(conveyance, alertId))
    log::get("daemon")->info("lane: conveyance of scan {} is in the lane{}", conveyance.scanId,
                             flagged);
  else
    log::get("daemon")->info(
        "lane: scan {}{} completed after its conveyance left the lane; trace hits are not tied to "
        "it",
        conveyance.scanId, flagged);
}

void Daemon::stopDevices() {
  for (auto& l : inboxes_) l->stop();
  inboxes_.clear();
  for (auto& r : runners_) r->stop();
  runners_.clear();
}

void Daemon::onDeviceHealth(const std::string& name, const DeviceHealth& reported) {
  auto it = health_.find(name);
  if (it == health_.end() || stopping_) return;  // a device removed by a reload
  reported_[name] = reported;
  // Faults count per driver instance (a reload makes new ones): sum the increases.
  auto& seen = faultsSeen_[name];
  faultsTotal_[name] += reported.faults >= seen ? reported.faults - seen : reported.faults;
  seen = reported.faults;
  DeviceHealth health = reported;
  if (const auto f = readingsFault_.find(name);
      f != readingsFault_.end() && !f->second.empty() && health.state == "ok") {
    health.state = "fault";
    health.detail = "readings out of range: " + f->second;
  }
  // An X-ray scanner is also due when its lane's calibration is missing or too old.
  for (const auto& l : inboxes_) {
    std::string why;
    if (l->device() == name && health.state == "ok" && l->calibrationDue(calibrationMaxAgeH_[name], why)) {
      health.state = "calibration_due";
      health.detail = why;
    }
  }
  // A PLC that cannot be read says nothing about the lane's occupancy any more.
  if ((health.state == "offline" || health.state == "out_of_service") &&
      calibrationMaxAgeH_.count(name))
    correlator_.onScannerLost();
  const bool changed = it->second.state != health.state || it->second.detail != health.detail;
  it->second = health;
  if (changed) publishDeviceStatus(name, health);
}

void Daemon::clearDeviceStatus(const std::string& name) {
  if (!publisher_->connected()) return;  // cleared on the next connection
  publisher_->publish(
      {laneTopic(config_, "devices/" + name + "/status"), "", 1, true, "", std::nullopt},
      [this, name](const std::string& err) {
        if (err.empty()) removedDevices_.erase(name);
      });
  log::get("daemon")->info("{}: left the config; its retained status is cleared", name);
}

void Daemon::publishDeviceStatus(const std::string& name, const DeviceHealth& health) {
  if (!publisher_->connected()) return;  // all are published again on connect
  nlohmann::json j = healthJson(health);
  j["device"] = name;
  j["time"] = lane::rfc3339(std::chrono::system_clock::now());
  publisher_->publish({laneTopic(config_, "devices/" + name + "/status"), lane::dumpJson(j), 1,
                       true, "application/json", std::nullopt},
                      nullptr);
}

nlohmann::json Daemon::outboxJson() {
  const auto st = outbox_->stats(config_.outbox.ackTimeoutS);
  // A line each: by state; bytes and evictions; what the control room has not acknowledged.
  // clang-format off
  return {{"pending", st.pending}, {"published", st.published}, {"acked", st.acked},
          {"oldest_pending_age_s", st.oldestPendingAgeS},
          {"payload_bytes", st.payloadBytes}, {"file_bytes", st.fileBytes}, {"evicted_telemetry", st.evicted},
          {"disk_fault", st.diskFault}, {"refusing", st.refusing},
          {"unacked_overdue", st.unackedOlderThan}, {"oldest_unacked_age_s", st.oldestUnackedAgeS},
          {"acks_applied", st.acksApplied}, {"acks_rejected", st.acksRejected + acksMalformed_}};
  // clang-format on
}

nlohmann::json Daemon::devicesJson() {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& spec : config_.devices) {
    nlohmann::json d{{"name", spec.name}, {"driver", spec.type}};
    if (const auto h = health_.find(spec.name); h != health_.end()) d.update(healthJson(h->second));
    for (const auto& l : inboxes_)
      if (l->device() == spec.name) d["scans"] = l->status();
    devices.push_back(std::move(d));
  }
  return {{"devices", std::move(devices)}};
}

nlohmann::json Daemon::statusObject() {
  nlohmann::json devices = nlohmann::json::object();
  for (const auto& [name, h] : health_) devices[name] = healthJson(h);
  nlohmann::json j{{"state", "online"},
                   {"site", config_.site},
                   {"lane", config_.lane},
                   {"version", LANEGATE_VERSION},
                   {"since", lane::rfc3339(started_)},
                   {"devices", devices}};
  if (!outbox_) return j;
  j["session"] = outbox_->session();
  const auto ob = outboxJson();
  j["acks_rejected"] = ob["acks_rejected"];
  j["outbox"] = {{"pending", ob["pending"]}, {"published", ob["published"]}, {"acked", ob["acked"]},
                 {"oldest_pending_age_s", ob["oldest_pending_age_s"]}, {"bytes", ob["file_bytes"]}};
  j["unacked_alerts"] = {{"count", ob["unacked_overdue"]},
                         {"older_than_s", config_.outbox.ackTimeoutS},
                         {"oldest_age_s", ob["oldest_unacked_age_s"]}};
  nlohmann::json faults = nlohmann::json::array();
  if (ob["disk_fault"] == true)
    faults.push_back({{"kind", "disk"},
                      {"detail", "alerts alone exceed the outbox budget; accepting alerts down to the free-disk floor"}});
  if (!ob["refusing"].get<std::string>().empty())
    faults.push_back({{"kind", "disk_full"},
                      {"detail", "new alerts are refused: " + ob["refusing"].get<std::string>()}});
  if (!outbox_->recoveryNote().empty())
    faults.push_back({{"kind", "outbox_recovered"}, {"detail", outbox_->recoveryNote()}});
  if (traceHitsWaiting_ > 0 || traceHitsDropped_ > 0)
    faults.push_back(
        {{"kind", "trace_hits_not_accepted"},
         {"detail",
          std::to_string(traceHitsWaiting_) +
              " trace hit(s) wait to be accepted into the outbox (retried with backoff); " +
              std::to_string(traceHitsDropped_) + " lost since start"}});
  j["faults"] = faults;
  return j;
}

void Daemon::checkStatus() {
  // Republish the retained status when what it reports (overdue acks, faults) changes;
  // counts that move with every alert are in `lanegatectl status`, not worth a publish.
  try {
    auto j = statusObject();
    const std::string summary = lane::dumpJson(j["unacked_alerts"]["count"]) +
                                lane::dumpJson(j["faults"]) + lane::dumpJson(j["acks_rejected"]);
    if (summary != lastStatusSummary_) {
      lastStatusSummary_ = summary;
      publisher_->publishStatus();
    }
    notify_.status(summaryLine(j));
  } catch (const std::exception& e) {
    log::get("daemon")->error("status check failed: {}", e.what());  // and again in 5 s
  }
  statusTimer_.expires_after(std::chrono::seconds(5));
  statusTimer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec && !stopping_) checkStatus();
  });
}

void Daemon::onAck(const std::string& payload) {
  auto ack = parseAck(payload);
  if (ack) {
    outbox_->markAcked(std::move(ack->id), std::move(ack->token),
                       {std::move(ack->by), std::move(ack->disposition)});
    return;
  }
  ++acksMalformed_;
  if (acksMalformed_ <= 10 || acksMalformed_ % 1000 == 0)
    log::get("daemon")->warn("ignored an ack ({} so far): {}: {}", acksMalformed_, ack.error(),
                             printableBytes(payload));
}

std::string Daemon::statusJson() {
  auto j = statusObject();
  j["time"] = lane::rfc3339(std::chrono::system_clock::now());
  return lane::dumpJson(j);
}

void Daemon::controlLine(std::string line, bool admin, std::shared_ptr<ControlReply> reply) {
  asio::post(io_, [this, line = std::move(line), admin, reply = std::move(reply)] {
    handleControlLine(
        line, admin ? adminOptions_ : controlOptions_, "an in-process caller",
        [this](const nlohmann::json& req, std::shared_ptr<ControlReply> r) {
          onControl(req, std::move(r));
        },
        reply);
  });
}

void Daemon::onControl(const nlohmann::json& request, std::shared_ptr<ControlReply> reply) {
  const std::string cmd = request["cmd"];
  if (cmd == "status") {
    auto j = statusObject();
    j["broker"] = {{"uri", config_.broker.uri},
                   {"connected", publisher_->connected()},
                   {"connections", publisher_->connections()},
                   {"last_error", publisher_->lastError()}};
    std::uint64_t total = 0;
    for (const auto& [type, n] : alertsByType_) total += n;
    j["alerts_accepted"] = total;
    j["alerts"] = alertsByType_;
    const auto issues = problems(j);
    j["verdict"] = {{"healthy", issues.empty()}, {"problems", issues}};
    j["config"] = config_.path;
    for (const auto& l : inboxes_) j["scans"][l->device()] = l->status();
    reply->line(j);
    reply->finish();
  } else if (cmd == "test-alert") {
    int count = 1;
    if (request.contains("count")) {
      if (!request["count"].is_number_integer() || request["count"].get<long long>() < 1 ||
          request["count"].get<long long>() > kMaxTestAlerts) {
        reply->finish("count must be an integer from 1 to " + std::to_string(kMaxTestAlerts));
        return;
      }
      count = request["count"].get<int>();
    }
    testAlerts(count, std::move(reply));
  } else if (cmd == "outbox") {
    reply->line(outboxJson());
    reply->finish();
  } else if (cmd == "devices") {
    reply->line(devicesJson());
    reply->finish();
  } else if (cmd == "reload") {
    nlohmann::json outcome;
    const std::string err = reload(&outcome);
    if (err.empty()) reply->line(outcome);
    reply->finish(err);
  } else if (cmd == "device-command") {
    deviceCommand(request, std::move(reply));
  } else {
    reply->finish("unknown command '" + cmd.substr(0, 64) + "'");
  }
}

void Daemon::deviceCommand(const nlohmann::json& request, std::shared_ptr<ControlReply> reply) {
  const auto text = [&](const char* key) {
    return request.contains(key) && request[key].is_string() ? request[key].get<std::string>() : std::string();
  };
  std::string device = text("device");
  const std::string type = text("type"), command = text("command");
  if (command.empty() || (device.empty() && type.empty())) {
    reply->finish("device-command needs \"command\" and \"device\" (or \"type\")");
    return;
  }
  if (device.empty()) {
    // No name: the lane's only device of that type (e.g. `calibrate xray dark`).
    std::vector<std::string> names;
    for (const auto& d : config_.devices)
      if (d.type == type) names.push_back(d.name);
    if (names.size() != 1) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      reply->finish(names.empty() ? "no " + type + " device in " + config_.path
                                  : "several " + type + " devices (" + list + "): name one");
      return;
    }
    device = names.front();
  }
  const auto spec = std::find_if(config_.devices.begin(), config_.devices.end(),
                                 [&](const DeviceSpec& d) { return d.name == device; });
  if (spec == config_.devices.end()) {
    std::string names;
    for (const auto& d : config_.devices) names += (names.empty() ? "" : ", ") + d.name;
    reply->finish("no device named '" + device + "' in " + config_.path +
                  (names.empty() ? " (it configures no devices)" : " (devices: " + names + ")"));
    return;
  }
  if (!type.empty() && spec->type != type) {
    reply->finish("device '" + device + "' is of type " + spec->type + ", not " + type);
    return;
  }
  const auto runner = std::find_if(runners_.begin(), runners_.end(),
                                   [&](const auto& r) { return r->serves(device); });
  if (runner == runners_.end()) {
    reply->finish("device '" + device + "' is not running");
    return;
  }
  log::get("daemon")->info("{}: {} requested on the control socket", device, command);
  reply->line({{"device", device}, {"command", command}, {"state", "queued"}});
  (*runner)->submit(device, Command{command}, [reply, device, command](const CommandResult& r) {
    reply->line({{"device", device}, {"command", command}, {"state", r.ok ? "ok" : "failed"},
                 {"message", r.message}});
    reply->finish(r.ok ? "" : device + ": " + (r.message.empty() ? command + " failed" : r.message));
  });
}

void Daemon::testAlerts(int count, std::shared_ptr<ControlReply> reply) {
  // Accept all at once; answer each id as it becomes safe, then finish.
  auto remaining = std::make_shared<int>(count);
  auto failed = std::make_shared<std::string>();
  for (int i = 0; i < count; ++i) {
    const std::string id = newEventId();
    RecordDraft d;
    d.id = id;
    d.kind = RecordKind::alert;
    d.topic = laneTopic(config_, "alerts");
    // render runs on the outbox's writer thread: give it copies
    d.render = [identity = identityOf(config_), asked = std::chrono::system_clock::now()](
                   const RenderInfo& info) { return makeTestAlert(identity, info, asked); };
    outbox_->accept(std::move(d), [this, id, reply, remaining, failed](const std::string& err,
                                                                             std::uint64_t seq) {
      if (err.empty()) {
        ++alertsByType_["org.lanegate.test"];
        reply->line({{"accepted", id}, {"seq", seq}});
      } else if (failed->empty()) {
        *failed = err;
      }
      if (--*remaining == 0) reply->finish(failed->empty() ? "" : "not accepted: " + *failed);
    });
  }
}

}  // namespace lanegate
