// Telling the service manager how the daemon is (sd_notify: READY=1 once it listens, STATUS=
// lines, STOPPING=1 on SIGTERM). A no-op outside systemd (no NOTIFY_SOCKET).
#pragma once

#include <string>

namespace hymig::cli {

void notify_ready(const std::string& status);
void notify_status(const std::string& status);
void notify_stopping();

}  // namespace hymig::cli
