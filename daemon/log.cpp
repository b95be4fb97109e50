#include "daemon/log.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

namespace lanegate::log {
namespace {

// Maps spdlog levels to syslog priorities for the journal's "<N>" prefix.
int syslogPriority(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::critical: return 2;
    case spdlog::level::err: return 3;
    case spdlog::level::warn: return 4;
    case spdlog::level::info: return 6;
    default: return 7;
  }
}

class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit StderrSink(bool journal) : journal_(journal) {
    set_pattern_(journal ? "%n: %v" : "%Y-%m-%d %H:%M:%S.%e %^%l%$ %n: %v");
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    if (journal_) std::fprintf(stderr, "<%d>", syslogPriority(msg.level));
    std::fwrite(buf.data(), 1, buf.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  bool journal_;
};

std::mutex gMutex;
std::shared_ptr<StderrSink> gSink;
spdlog::level::level_enum gLevel = spdlog::level::info;

std::shared_ptr<StderrSink> sink() {
  if (!gSink) gSink = std::make_shared<StderrSink>(std::getenv("JOURNAL_STREAM") != nullptr);
  return gSink;
}

}  // namespace

void init(const std::string& level) {
  std::lock_guard lock(gMutex);
  sink();
  gLevel = spdlog::level::from_str(level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(gLevel); });
}

void setLevel(const std::string& level) { init(level); }

std::shared_ptr<spdlog::logger> get(const std::string& module) {
  std::lock_guard lock(gMutex);
  if (auto l = spdlog::get(module)) return l;
  auto l = std::make_shared<spdlog::logger>(module, sink());
  l->set_level(gLevel);
  l->flush_on(spdlog::level::trace);  // stderr is unbuffered in spirit: tests read it live
  spdlog::register_logger(l);
  return l;
}

}  // namespace lanegate::log
