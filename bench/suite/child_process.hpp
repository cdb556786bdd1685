// A program hymig-bench runs as one side of a measurement (hymig serve, iperf3 -s, a stream tool):
// started with posix_spawn, stdout and stderr into files, killed by PID if still running when the
// owner goes away, so a failed run never leaves a process behind.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hymig::bench {

struct ExitStatus {
  bool exited = false;  // false: killed by a signal
  bool timed_out = false;  // wait_or_stop had to stop it
  int code = -1;        // exit code, or the signal number
  double cpu_seconds = 0;  // user + system CPU of the process (wait4), once it ended
  bool ok() const { return exited && code == 0; }
  std::string describe() const;
};

class ChildProcess {
 public:
  // argv[0] is looked up in PATH when it has no slash. Output goes to out_file / err_file.
  ChildProcess(std::vector<std::string> argv, const std::string& out_file, const std::string& err_file);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& out_file() const { return out_; }
  const std::string& err_file() const { return err_; }
  std::string command_line() const;

  // Waits until the process ends or the timeout passes (then nullopt; it keeps running).
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // Sends sig, then waits up to grace; SIGKILL after that. Returns the final status.
  ExitStatus stop(int sig, std::chrono::milliseconds grace);
  // Waits up to timeout; a process still running then is stopped (stop(sig, grace)) and the
  // status says timed_out.
  ExitStatus wait_or_stop(std::chrono::milliseconds timeout, int sig = SIGTERM,
                          std::chrono::milliseconds grace = std::chrono::seconds(3));
  bool running();

 private:
  std::vector<std::string> argv_;
  std::string out_, err_;
  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
};

// Runs argv to completion (stdin from `input`), with a timeout; returns status and output.
struct CommandResult {
  ExitStatus status;
  std::string out, err;
};
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout);

// Polls `file` until a complete (newline-ended) line containing `marker` appears; returns the
// rest of that line after the marker. nullopt when `child` ended first or the timeout passed.
std::optional<std::string> wait_for_line(ChildProcess& child, const std::string& file, const std::string& marker,
                                         std::chrono::milliseconds timeout);

std::string read_file(const std::string& path);

// Pieces of a child's output for error notes and results.
std::string first_line(const std::string& text);
std::string last_plain_line(const std::string& text);  // the last line that is not a JSON object
nlohmann::json last_json_line(const std::string& text);  // the last line that parses as JSON (null: none)

// The first path that is an executable file: each candidate as given (PATH lookup for bare names).
std::optional<std::string> find_program(const std::vector<std::string>& candidates);

}  // namespace hymig::bench
