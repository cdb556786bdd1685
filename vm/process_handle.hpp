// RAII handle on a process this program did not start (a QEMU reached through its QMP socket):
// a pidfd, so a signal can never hit a process that reused the PID, and its exit can be awaited.
#pragma once

#include <sys/types.h>

#include <chrono>

#include "core/unique_fd.hpp"

namespace hymig::vm {

class ProcessHandle {
 public:
  ProcessHandle() = default;
  // Throws Error{io} when the process does not exist (or pidfds are unsupported).
  explicit ProcessHandle(pid_t pid);

  pid_t pid() const { return pid_; }
  explicit operator bool() const { return static_cast<bool>(fd_); }

  bool exited() const;  // the process is gone (a zombie counts as gone)
  // Sends `sig`; false when the process is already gone.
  bool signal(int sig) const;
  // Waits until the process is gone; false after `timeout`.
  bool wait_exit(std::chrono::milliseconds timeout) const;
  // SIGKILL, then waits (at most `timeout`) until it is gone; false if it still is not.
  bool kill_and_wait(std::chrono::milliseconds timeout) const;

 private:
  UniqueFd fd_;
  pid_t pid_ = 0;
};

}  // namespace hymig::vm
