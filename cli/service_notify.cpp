#include "cli/service_notify.hpp"

#include <systemd/sd-daemon.h>

namespace hymig::cli {

void notify_ready(const std::string& status) { ::sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }
void notify_status(const std::string& status) { ::sd_notifyf(0, "STATUS=%s", status.c_str()); }
void notify_stopping() { ::sd_notify(0, "STOPPING=1\nSTATUS=stopping: running sessions finish or abort"); }

}  // namespace hymig::cli
