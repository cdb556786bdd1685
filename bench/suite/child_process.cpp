#include "bench/suite/child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.hpp"

extern char** environ;

namespace hymig::bench {
namespace {

ExitStatus decode(int raw) {
  ExitStatus s;
  if (WIFEXITED(raw)) {
    s.exited = true;
    s.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    s.code = WTERMSIG(raw);
  }
  return s;
}

pid_t spawn(const std::vector<std::string>& argv, int in_fd, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (in_fd >= 0) posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
  else posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw Error(ErrorKind::io, "cannot start '" + argv[0] + "': " + std::strerror(rc));
  return pid;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  return std::string("killed by signal ") + (code > 0 ? ::strsignal(code) : "?");
}

ChildProcess::ChildProcess(std::vector<std::string> argv, const std::string& out_file, const std::string& err_file)
    : argv_(std::move(argv)), out_(out_file), err_(err_file) {
  pid_ = spawn(argv_, -1, out_, err_);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) stop(SIGKILL, std::chrono::milliseconds(2000));
}

std::string ChildProcess::command_line() const {
  std::string s;
  for (const auto& a : argv_) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int raw = 0;
    rusage usage{};
    const pid_t r = ::wait4(pid_, &raw, WNOHANG, &usage);
    if (r == pid_) {
      status_ = decode(raw);
      auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
      status_->cpu_seconds = sec(usage.ru_utime) + sec(usage.ru_stime);
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      status_ = ExitStatus{};
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool ChildProcess::running() { return !wait_for(std::chrono::milliseconds(0)); }

ExitStatus ChildProcess::stop(int sig, std::chrono::milliseconds grace) {
  if (!status_) {
    ::kill(pid_, sig);
    if (!wait_for(grace)) {
      ::kill(pid_, SIGKILL);
      wait_for(std::chrono::milliseconds(5000));
    }
  }
  return status_.value_or(ExitStatus{});
}

ExitStatus ChildProcess::wait_or_stop(std::chrono::milliseconds timeout, int sig, std::chrono::milliseconds grace) {
  if (auto st = wait_for(timeout)) return *st;
  ExitStatus st = stop(sig, grace);
  st.timed_out = true;
  return st;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string last_plain_line(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line.front() != '{') last = line;  // hymig's progress lines are JSON objects
  return last;
}

nlohmann::json last_json_line(const std::string& text) {
  std::istringstream in(text);
  nlohmann::json last;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.front() != '{') continue;
    try {
      last = nlohmann::json::parse(line);
    } catch (const std::exception&) {
    }
  }
  return last;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

CommandResult run_command(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout) {
  char out_t[] = "/tmp/hymig-bench-cmd-XXXXXX";
  const int tmp = ::mkstemp(out_t);
  if (tmp < 0) throw_errno("mkstemp for a command's output");
  ::close(tmp);
  const std::string out = out_t, err = out + ".err";
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) throw_errno("pipe for a command's input");
  CommandResult res;
  pid_t pid;
  try {
    pid = spawn(argv, pipefd[0], out, err);
  } catch (...) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    ::unlink(out.c_str());
    throw;
  }
  ::close(pipefd[0]);
  // Inputs here are a few lines (an nft ruleset): far below the pipe's capacity.
  if (!input.empty() && ::write(pipefd[1], input.data(), input.size()) < 0) {
  }
  ::close(pipefd[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int raw = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &raw, WNOHANG);
    if (r == pid) {
      res.status = decode(raw);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &raw, 0);
      res.status = ExitStatus{};
      res.err = "timed out after " + std::to_string(timeout.count()) + " ms\n";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  res.out = read_file(out);
  res.err += read_file(err);
  ::unlink(out.c_str());
  ::unlink(err.c_str());
  return res;
}

std::optional<std::string> wait_for_line(ChildProcess& child, const std::string& file, const std::string& marker,
                                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // Complete lines only: a tool that writes its line in pieces (std::cerr is unbuffered: the
    // marker, then the address) is read between them sometimes, and the part after the marker
    // was empty (a stream baseline then failed with "expected HOST:PORT, got ''").
    std::string text = read_file(file);
    const auto end = text.rfind('\n');
    text.resize(end == std::string::npos ? 0 : end + 1);
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      const auto at = line.find(marker);
      if (at != std::string::npos) return line.substr(at + marker.size());
    }
    if (!child.running() || std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::optional<std::string> find_program(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (c.find('/') != std::string::npos) {
      if (::access(c.c_str(), X_OK) == 0) return c;
      continue;
    }
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/bin:/bin");
    for (std::string d; std::getline(dirs, d, ':');) {
      const std::string full = d + "/" + c;
      struct stat st{};
      if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(full.c_str(), X_OK) == 0) return full;
    }
  }
  return std::nullopt;
}

}  // namespace hymig::bench
