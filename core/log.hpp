// The process's one log: levelled lines on stderr through spdlog. Library code reports what the
// caller cannot see in a return value (a warning after a switch-over, say) here, never on stderr
// directly; the front end names the log once, before the first line.
#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace hymig {

enum class LogStyle {
  command,  // "hymig migrate: warning: ..." for a person at a terminal
  service,  // timestamped "[level]" lines; under systemd (JOURNAL_STREAM) a syslog priority first
};

// Names the log `hymig COMMAND` and picks its line style. Call before other threads log.
void set_log(const std::string& command, LogStyle style);

// The log (named "hymig", command style, until set_log is called).
spdlog::logger& logger();

}  // namespace hymig
