// A child process whose stdout and stderr this program reads line by line (non-blocking), signalled
// through a pidfd (never a reused PID) and reaped by its owner. `hymig drain` runs each migration
// as a child `hymig migrate`: a crash or hang of one cannot take the drain or the others with it.
#pragma once

#include <sys/types.h>

#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "core/unique_fd.hpp"

namespace hymig::cli {

class ChildProcess {
 public:
  // Starts `argv` (argv[0] the program's path). Throws Error{io}.
  static ChildProcess spawn(const std::vector<std::string>& argv);

  ChildProcess(ChildProcess&& o) noexcept { *this = std::move(o); }
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  // A child still running when its handle goes is killed (SIGKILL) and reaped.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  int stdout_fd() const { return out_.get(); }
  int stderr_fd() const { return err_.get(); }

  // Reads what is there without waiting; complete lines of stderr go to `lines`, stdout is kept
  // whole (stdout_text). Returns false once both pipes reached their end.
  bool read_available(std::vector<std::string>& stderr_lines);
  const std::string& stdout_text() const { return stdout_; }

  void signal(int sig) const;  // nothing once it has been reaped
  // Reaps it if it ended: its exit code (128 + N for a death by signal N), else nullopt.
  std::optional<int> poll_exit();

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  UniqueFd pidfd_, out_, err_;
  std::string stdout_, stderr_partial_;
  std::optional<int> exit_;
};

}  // namespace hymig::cli
