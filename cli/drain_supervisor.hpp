// The daemon's drain of its own node, asked for by `hymig drain --node HOST:PORT` (the Slurm hook's
// hand-off: a trigger program must return within minutes, the drain may take longer). One drain at
// a time, run as a child `hymig drain`; its live table and final report are kept for `hymig status`.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig::cli {

class ChildProcess;

class DrainSupervisor {
 public:
  // `hymig`: this program; `key_file` and `connect` (the node's libvirt URI) go to the child.
  DrainSupervisor(std::string hymig, std::string key_file, std::string connect);
  ~DrainSupervisor();  // cancels a running drain and waits for it (its migrations end cleanly)
  DrainSupervisor(const DrainSupervisor&) = delete;
  DrainSupervisor& operator=(const DrainSupervisor&) = delete;

  // Starts a drain with the options in `args` (from an authenticated query; every key checked,
  // every value typed and bounded). Throws Error{refused} while one runs, Error{protocol} for
  // bad arguments.
  void start(const nlohmann::json& args);
  // Asks the running drain to cancel (SIGTERM: nothing new starts). False when none runs.
  bool cancel();
  // {"state": "none" | "running" | "done", "started_unix", "args", "live" (the last table), and
  // when done "exit_code" and "report" (the child's JSON report) or "error"}.
  nlohmann::json status() const;

 private:
  void watch();

  const std::string hymig_, key_file_, connect_;
  mutable std::mutex mutex_;
  std::unique_ptr<ChildProcess> child_;
  std::thread watcher_;
  nlohmann::json state_ = {{"state", "none"}};
};

}  // namespace hymig::cli
