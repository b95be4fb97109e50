#pragma once
// One spdlog logger per module (daemon, mqtt, control, drivers, ...), all writing to
// stderr. Under systemd (JOURNAL_STREAM set) each line starts with the sd-daemon
// "<N>" priority prefix and carries no timestamp, since the journal adds its own.

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace lanegate::log {

/// Sets up the shared sink and the level of every logger (trace ... off).
void init(const std::string& level);
/// Changes the level of every logger, e.g. after a reload.
void setLevel(const std::string& level);
/// The logger of a module, created on first use.
std::shared_ptr<spdlog::logger> get(const std::string& module);

}  // namespace lanegate::log
