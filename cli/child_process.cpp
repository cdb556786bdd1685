#include "cli/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.hpp"

extern char** environ;

namespace hymig::cli {

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), STDERR_FILENO);
  // The child starts with default signal handling whatever this process installed.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv.at(0).c_str(), &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    throw_errno("cannot start " + argv.at(0));
  }
  ChildProcess c;
  c.pid_ = pid;
  c.pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(err_r.get(), F_SETFL, O_NONBLOCK);
  c.out_ = std::move(out_r);
  c.err_ = std::move(err_r);
  return c;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
    out_ = std::move(o.out_);
    err_ = std::move(o.err_);
    stdout_ = std::move(o.stdout_);
    stderr_partial_ = std::move(o.stderr_partial_);
    exit_ = std::exchange(o.exit_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0 || exit_) return;
  signal(SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool ChildProcess::read_available(std::vector<std::string>& lines) {
  char buf[16384];
  auto drain = [&](UniqueFd& fd, auto&& take) {
    while (fd) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        take(std::string_view(buf, std::size_t(n)));
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) fd.reset();
      if (n < 0 && errno == EINTR) continue;
      return;
    }
  };
  drain(out_, [&](std::string_view s) {
    if (stdout_.size() < (4u << 20)) stdout_.append(s);  // a report is a few KiB; more is not ours
  });
  drain(err_, [&](std::string_view s) {
    stderr_partial_.append(s);
    std::size_t nl;
    while ((nl = stderr_partial_.find('\n')) != std::string::npos) {
      lines.push_back(stderr_partial_.substr(0, nl));
      stderr_partial_.erase(0, nl + 1);
    }
    if (stderr_partial_.size() > 65536) {  // a line that never ends
      lines.push_back(std::move(stderr_partial_));
      stderr_partial_.clear();
    }
  });
  if (!err_ && !stderr_partial_.empty()) {
    lines.push_back(std::move(stderr_partial_));
    stderr_partial_.clear();
  }
  return out_ || err_;
}

void ChildProcess::signal(int sig) const {
  if (exit_ || pid_ <= 0) return;
  if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0);
  else ::kill(pid_, sig);
}

std::optional<int> ChildProcess::poll_exit() {
  if (exit_) return exit_;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r != pid_) return std::nullopt;
  exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return exit_;
}

}  // namespace hymig::cli
