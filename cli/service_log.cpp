#include "cli/service_log.hpp"

#include <cstdlib>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace hymig::cli {
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

}  // namespace

spdlog::logger& service_log(const char* name) {
  static std::shared_ptr<spdlog::logger> logger = [name] {
    auto l = std::make_shared<spdlog::logger>(std::string("hymig ") + name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<SyslogPriority>('*');
    f->set_pattern(std::getenv("JOURNAL_STREAM") ? "%*%n: %v" : "%Y-%m-%d %H:%M:%S.%e %n: [%l] %v");
    l->set_formatter(std::move(f));
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}

}  // namespace hymig::cli
