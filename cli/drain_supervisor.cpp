#include "cli/drain_supervisor.hpp"

#include <poll.h>
#include <signal.h>

#include <fmt/format.h>

#include "cli/child_process.hpp"
#include "core/error.hpp"
#include "policy/drain_request.hpp"
#include "protocol/wire.hpp"

namespace hymig::cli {
namespace {

}  // namespace

DrainSupervisor::DrainSupervisor(std::string hymig, std::string key_file, std::string connect)
    : hymig_(std::move(hymig)), key_file_(std::move(key_file)), connect_(std::move(connect)) {}

DrainSupervisor::~DrainSupervisor() {
  cancel();
  if (watcher_.joinable()) watcher_.join();
}

void DrainSupervisor::start(const nlohmann::json& args) {
  const auto argv = drain_command_line(hymig_, key_file_, connect_, args);
  const std::lock_guard lock(mutex_);
  if (state_["state"] == "running") throw Error(ErrorKind::refused, "a drain of this node is running already");
  if (watcher_.joinable()) watcher_.join();  // the last one ended: its watcher is done
  child_ = std::make_unique<ChildProcess>(ChildProcess::spawn(argv));
  state_ = {{"state", "running"},
            {"args", args},
            {"started_unix", std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count()}};
  watcher_ = std::thread([this] { watch(); });
}

bool DrainSupervisor::cancel() {
  const std::lock_guard lock(mutex_);
  if (state_["state"] != "running" || !child_) return false;
  child_->signal(SIGTERM);
  state_["cancel_requested"] = true;
  return true;
}

nlohmann::json DrainSupervisor::status() const {
  const std::lock_guard lock(mutex_);
  return state_;
}

void DrainSupervisor::watch() {
  std::vector<std::string> lines, errors;
  while (true) {
    int out, err;
    {
      const std::lock_guard lock(mutex_);
      out = child_->stdout_fd();
      err = child_->stderr_fd();
    }
    pollfd fds[2] = {{out, POLLIN, 0}, {err, POLLIN, 0}};
    ::poll(fds, 2, 200);
    const std::lock_guard lock(mutex_);
    const bool open = child_->read_available(lines);
    for (auto& l : lines) {
      if (l.rfind("{\"drain\":", 0) == 0) {
        auto j = nlohmann::json::parse(l, nullptr, false);
        if (!j.is_discarded()) state_["live"] = std::move(j["drain"]);
      } else if (!l.empty()) {
        errors.push_back(printable(l, 600));
        if (errors.size() > 20) errors.erase(errors.begin());
      }
    }
    lines.clear();
    if (const auto code = child_->poll_exit(); code && !open) {
      state_["state"] = "done";
      state_["exit_code"] = *code;
      auto report = nlohmann::json::parse(child_->stdout_text(), nullptr, false);
      if (!report.is_discarded() && report.is_object()) {
        // Each attempt's full migration report stays in the child's output only: status stays small.
        if (report.contains("domains") && report["domains"].is_array())
          for (auto& d : report["domains"])
            if (d.is_object() && d.contains("attempts") && d["attempts"].is_array())
              for (auto& a : d["attempts"])
                if (a.is_object()) a.erase("report");
        state_["report"] = std::move(report);
      }
      if (*code != 0 && !errors.empty()) state_["error"] = errors.back();
      child_.reset();
      return;
    }
  }
}

}  // namespace hymig::cli
