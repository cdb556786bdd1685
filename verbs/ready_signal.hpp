// The descriptor a channel hands out as poll_fd(): an epoll set over the descriptors that announce
// new work (completion channel, CM event channel) plus an eventfd that stays readable while the
// channel holds work it already took off the device (completions polled but not yet returned, or a
// CQ not drained because the caller's batch was full). Only transitions of the "held" state cost a
// system call.
#pragma once

#include <string>

#include "core/unique_fd.hpp"

namespace hymig::verbs {

class ReadySignal {
 public:
  // `what` names the owner in errors. Throws Error{io}.
  explicit ReadySignal(const std::string& what);

  void watch(int fd);          // add a descriptor to the set (readable = new work)
  void set_held(bool held);    // the channel holds work: keep fd() readable until cleared
  int fd() const { return epoll_.get(); }

 private:
  std::string what_;
  UniqueFd epoll_;
  UniqueFd held_event_;
  bool held_ = false;
};

}  // namespace hymig::verbs
