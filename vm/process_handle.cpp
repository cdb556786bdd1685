#include "vm/process_handle.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "core/error.hpp"

namespace hymig::vm {

ProcessHandle::ProcessHandle(pid_t pid) : pid_(pid) {
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) throw_errno("cannot open a pidfd for process " + std::to_string(pid));
  fd_.reset(static_cast<int>(fd));
}

bool ProcessHandle::exited() const { return wait_exit(std::chrono::milliseconds(0)); }

bool ProcessHandle::signal(int sig) const {
  if (!fd_) return false;
  return ::syscall(SYS_pidfd_send_signal, fd_.get(), sig, nullptr, 0) == 0;
}

bool ProcessHandle::wait_exit(std::chrono::milliseconds timeout) const {
  if (!fd_) return true;
  // A pidfd becomes readable when its process exits (zombie or reaped).
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    pollfd p{fd_.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int n = ::poll(&p, 1, static_cast<int>(std::max<long>(0, left.count())));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throw_errno("poll on the pidfd of process " + std::to_string(pid_));
  }
}

bool ProcessHandle::kill_and_wait(std::chrono::milliseconds timeout) const {
  signal(SIGKILL);
  return wait_exit(timeout);
}

}  // namespace hymig::vm
