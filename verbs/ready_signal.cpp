#include "verbs/ready_signal.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "core/error.hpp"

namespace hymig::verbs {

ReadySignal::ReadySignal(const std::string& what) : what_(what) {
  epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("cannot create an epoll set for " + what_);
  held_event_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!held_event_) throw_errno("cannot create an eventfd for " + what_);
  watch(held_event_.get());
}

void ReadySignal::watch(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("cannot watch descriptor for " + what_);
}

void ReadySignal::set_held(bool held) {
  if (held == held_) return;
  std::uint64_t value = 1;
  const ssize_t rc = held ? ::write(held_event_.get(), &value, sizeof value)
                          : ::read(held_event_.get(), &value, sizeof value);
  (void)rc;  // an eventfd write of 1 or a read of a non-zero counter cannot fail
  held_ = held;
}

}  // namespace hymig::verbs
