#include "core/log.hpp"

#include <cstdlib>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hymig {
namespace {

// %* in the pattern: the syslog priority of the message's level, as journald reads it.
class SyslogPriority final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const char* p = "<6>";
    switch (msg.level) {
      case spdlog::level::critical: p = "<2>"; break;
      case spdlog::level::err: p = "<3>"; break;
      case spdlog::level::warn: p = "<4>"; break;
      case spdlog::level::debug:
      case spdlog::level::trace: p = "<7>"; break;
      default: break;
    }
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<SyslogPriority>(); }
};

std::shared_ptr<spdlog::logger> make_log(const std::string& name, LogStyle style) {
  auto l = std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<SyslogPriority>('*');
  if (style == LogStyle::command) f->set_pattern("%n: %l: %v");
  else f->set_pattern(std::getenv("JOURNAL_STREAM") ? "%*%n: %v" : "%Y-%m-%d %H:%M:%S.%e %n: [%l] %v");
  l->set_formatter(std::move(f));
  l->flush_on(spdlog::level::trace);  // a line is on stderr before the process can die
  return l;
}

std::shared_ptr<spdlog::logger>& the_log() {
  static std::shared_ptr<spdlog::logger> l = make_log("hymig", LogStyle::command);
  return l;
}

}  // namespace

void set_log(const std::string& command, LogStyle style) { the_log() = make_log("hymig " + command, style); }

spdlog::logger& logger() { return *the_log(); }

}  // namespace hymig
