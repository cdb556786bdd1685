#include "vm/qmp_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace hymig::vm {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxQueuedEvents = 1000;

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
}

}  // namespace

QmpError::QmpError(const std::string& command, std::string error_class, std::string desc)
    : Error(ErrorKind::io, "QEMU refused " + command + ": " + desc + " (" + error_class + ")"),
      class_(std::move(error_class)), desc_(std::move(desc)) {}

QmpClient QmpClient::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path)
    throw Error(ErrorKind::usage, "QMP socket path '" + path + "' is empty or longer than " +
                                      std::to_string(sizeof addr.sun_path - 1) + " bytes");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("cannot create a unix socket for QMP");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
      QmpClient c(std::move(fd), path);
      ucred cred{};
      socklen_t len = sizeof cred;
      if (::getsockopt(c.fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) c.peer_pid_ = cred.pid;
      auto greeting = c.read_message(deadline);
      if (!greeting)
        throw Error(ErrorKind::timeout, "no QMP greeting on " + path + " within " + std::to_string(timeout.count()) +
                                            " ms: is another client holding this QMP socket? (QEMU serves one at a time)");
      if (!greeting->contains("QMP"))
        throw Error(ErrorKind::protocol, path + " does not speak QMP (greeting: " + greeting->dump().substr(0, 200) + ")");
      c.greeting_ = std::move(*greeting);
      c.run("qmp_capabilities", nullptr, -1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) +
                                                  std::chrono::milliseconds(1000));
      return c;
    }
    const int err = errno;
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      throw Error(ErrorKind::usage, "'" + path + "' is not a socket: pass QEMU's QMP socket (-qmp unix:PATH,server=on,wait=off)");
    if (err != ENOENT && err != ECONNREFUSED && err != EAGAIN)
      throw_errno("cannot connect to the QMP socket " + path, err);
    if (Clock::now() >= deadline)
      throw Error(ErrorKind::timeout, "cannot connect to the QMP socket " + path + " (" + std::strerror(err) + ") within " +
                                          std::to_string(timeout.count()) + " ms: is QEMU running with -qmp unix:" + path +
                                          ",server=on,wait=off?");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

nlohmann::json QmpClient::execute(const std::string& command, const nlohmann::json& args) {
  return run(command, args, -1, timeout_);
}

nlohmann::json QmpClient::execute(const std::string& command, const nlohmann::json& args,
                                  std::chrono::milliseconds timeout) {
  return run(command, args, -1, timeout);
}

bool QmpClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  try {
    while (Clock::now() < deadline) next_event(std::chrono::milliseconds(100));
  } catch (const Error& e) {
    return e.kind() == ErrorKind::peer_vanished;
  }
  return false;
}

nlohmann::json QmpClient::execute_with_fd(const std::string& command, const nlohmann::json& args, int fd) {
  return run(command, args, fd, timeout_);
}

void QmpClient::send_line(const std::string& line, int fd, Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < line.size()) {
    iovec iov{const_cast<char*>(line.data() + sent), line.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0 && sent == 0) {  // the descriptor rides with the first byte of the command
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_.get(), POLLOUT, 0};
      if (::poll(&p, 1, ms_until(deadline)) == 0)
        throw Error(ErrorKind::timeout, "QEMU does not read its QMP socket " + path_);
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      throw Error(ErrorKind::peer_vanished, "QEMU closed its QMP socket " + path_ + " (did it exit?)");
    throw_errno("cannot write to the QMP socket " + path_);
  }
}

std::optional<nlohmann::json> QmpClient::read_message(Clock::time_point deadline) {
  while (true) {
    const auto nl = inbuf_.find('\n');
    if (nl != std::string::npos) {
      const std::string line = inbuf_.substr(0, nl);
      inbuf_.erase(0, nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        throw Error(ErrorKind::protocol, "QEMU sent a line that is no JSON object on " + path_ + ": " + line.substr(0, 200));
      return j;
    }
    if (inbuf_.size() > (16u << 20)) throw Error(ErrorKind::protocol, "a QMP message over 16 MiB on " + path_);
    pollfd p{fd_.get(), POLLIN, 0};
    const int r = ::poll(&p, 1, ms_until(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw_errno("poll on the QMP socket " + path_);
    if (r == 0) return std::nullopt;
    char buf[65536];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      throw Error(ErrorKind::peer_vanished, "QEMU closed its QMP socket " + path_ + " (did it exit?)");
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) throw_errno("cannot read the QMP socket " + path_);
    inbuf_.append(buf, static_cast<std::size_t>(n));
  }
}

nlohmann::json QmpClient::run(const std::string& command, const nlohmann::json& args, int fd,
                              std::chrono::milliseconds timeout) {
  const std::string id = "hymig-" + std::to_string(next_id_++);
  nlohmann::json msg = {{"execute", command}, {"id", id}};
  if (!args.is_null()) msg["arguments"] = args;
  const auto deadline = Clock::now() + timeout;
  send_line(msg.dump() + "\n", fd, deadline);
  while (true) {
    auto m = read_message(deadline);
    if (!m)
      throw Error(ErrorKind::timeout, "QEMU did not answer " + command + " within " + std::to_string(timeout.count()) +
                                          " ms on " + path_);
    if (m->contains("event")) {
      events_.push_back(std::move(*m));
      if (events_.size() > kMaxQueuedEvents) events_.pop_front();  // nobody reads them: keep the newest
      continue;
    }
    // An answer to an earlier command that timed out carries that command's id: skip it. One
    // without an id answers input QEMU could not parse, which can only be ours.
    if (auto it = m->find("id"); it != m->end() && *it != id) continue;
    return qmp_return(command, *m);
  }
}

nlohmann::json qmp_return(const std::string& command, const nlohmann::json& reply) {
  if (auto e = reply.find("error"); e != reply.end())
    throw QmpError(command, e->value("class", std::string("?")), e->value("desc", std::string("?")));
  if (auto r = reply.find("return"); r != reply.end()) return *r;
  throw Error(ErrorKind::protocol, "QEMU answered " + command + " with neither return nor error: " + reply.dump().substr(0, 200));
}

std::optional<nlohmann::json> QmpClient::next_event(std::chrono::milliseconds timeout) {
  if (!events_.empty()) {
    auto e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  const auto deadline = Clock::now() + timeout;
  while (auto m = read_message(deadline)) {
    if (m->contains("event")) return m;
    // A late answer to a command that timed out: nothing waits for it any more.
  }
  return std::nullopt;
}

}  // namespace hymig::vm
