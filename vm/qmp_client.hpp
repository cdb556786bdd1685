// A client of QEMU's machine protocol (QMP) over its unix socket: the greeting, capability
// negotiation, commands matched to their answers by id, asynchronous events queued on the side,
// file descriptors passed along (SCM_RIGHTS, for getfd), and a deadline on every wait.
//
// QEMU serves one client per QMP socket at a time: while hymig holds it, another tool needs a
// second -qmp socket.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/unique_fd.hpp"
#include "vm/qmp_endpoint.hpp"

namespace hymig::vm {

// QEMU answered a command with an error: class (e.g. "GenericError") and description.
class QmpError : public Error {
 public:
  QmpError(const std::string& command, std::string error_class, std::string desc);
  const std::string& error_class() const { return class_; }
  const std::string& desc() const { return desc_; }

 private:
  std::string class_, desc_;
};

// The "return" value of QEMU's answer `reply` to `command`; QmpError for an "error" answer,
// Error{protocol} for one with neither. (Used by every QmpEndpoint.)
nlohmann::json qmp_return(const std::string& command, const nlohmann::json& reply);

class QmpClient final : public QmpEndpoint {
 public:
  // Connects to the QMP socket at `path` (retrying until `timeout` while it is not there yet or
  // refuses), reads the greeting and leaves negotiation mode (qmp_capabilities). Error{usage} when
  // `path` exists but is no socket; Error{timeout}/{io} otherwise.
  static QmpClient connect(const std::string& path, std::chrono::milliseconds timeout);

  QmpClient(QmpClient&&) = default;
  QmpClient& operator=(QmpClient&&) = default;

  // Runs `command` with `args` (an object, or null for none) and returns its "return" value.
  // Events arriving meanwhile are queued. Throws QmpError when QEMU answers with an error,
  // Error{timeout} after `timeout`, Error{peer_vanished} when QEMU closed the socket (it exited).
  nlohmann::json execute(const std::string& command, const nlohmann::json& args = nullptr);
  nlohmann::json execute(const std::string& command, const nlohmann::json& args, std::chrono::milliseconds timeout) override;
  // The same, passing `fd` with the command (QEMU keeps a duplicate): getfd, add-fd.
  nlohmann::json execute_with_fd(const std::string& command, const nlohmann::json& args, int fd) override;
  // Reads events until QEMU closes the socket.
  bool wait_closed(std::chrono::milliseconds timeout) override;
  std::string where() const override { return "the QEMU at " + path_; }

  // The oldest queued event, or the next to arrive within `timeout`; std::nullopt if none.
  std::optional<nlohmann::json> next_event(std::chrono::milliseconds timeout);
  void clear_events() { events_.clear(); }

  // Default deadline of execute() (10 s).
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  const std::string& path() const { return path_; }
  const nlohmann::json& greeting() const { return greeting_; }
  pid_t peer_pid() const { return peer_pid_; }  // QEMU's process (SO_PEERCRED)

 private:
  QmpClient(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  void send_line(const std::string& line, int fd, std::chrono::steady_clock::time_point deadline);
  // The next complete JSON message, or std::nullopt at the deadline.
  std::optional<nlohmann::json> read_message(std::chrono::steady_clock::time_point deadline);
  nlohmann::json run(const std::string& command, const nlohmann::json& args, int fd, std::chrono::milliseconds timeout);

  UniqueFd fd_;
  std::string path_;
  std::string inbuf_;
  std::deque<nlohmann::json> events_;
  nlohmann::json greeting_;
  std::uint64_t next_id_ = 1;
  pid_t peer_pid_ = 0;
  std::chrono::milliseconds timeout_{10000};
};

}  // namespace hymig::vm
