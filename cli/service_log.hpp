// The daemon's log: levelled, timestamped lines on stderr (spdlog). Under systemd (JOURNAL_STREAM
// set) each line starts with its syslog priority (<6>, <4>, <3>) for journald, which stamps the
// time itself.
#pragma once

#include <spdlog/spdlog.h>

namespace hymig::cli {

// The logger `hymig NAME` writes to (created on first use).
spdlog::logger& service_log(const char* name = "serve");

}  // namespace hymig::cli
