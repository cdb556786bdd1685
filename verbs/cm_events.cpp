#include "verbs/cm_events.hpp"

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/fd_wait.hpp"

namespace hymig::verbs {

EventChannelPtr make_event_channel(const std::string& purpose) {
  errno = 0;
  EventChannelPtr ch(rdma_create_event_channel());
  if (!ch) {
    const int err = errno;
    throw Error(ErrorKind::io, "cannot open the RDMA connection manager for " + purpose + ": " +
                                   (err ? std::strerror(err) : "no RDMA device") +
                                   " (no RDMA device, or modules rdma_ucm/ib_uverbs not loaded? `rdma link show`)");
  }
  const int flags = ::fcntl(ch->fd, F_GETFL);
  if (flags < 0 || ::fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw_errno("cannot make the RDMA CM event channel for " + purpose + " non-blocking");
  return ch;
}

std::optional<CmEvent> poll_cm_event(rdma_event_channel* channel) {
  rdma_cm_event* ev = nullptr;
  if (rdma_get_cm_event(channel, &ev) != 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return std::nullopt;
    throw_errno("reading the RDMA connection manager's events");
  }
  CmEvent out;
  out.type = ev->event;
  out.status = ev->status;
  out.id = ev->id;
  out.listen_id = ev->listen_id;
  // Connection events carry the peer's private data (connect request, established on the active
  // side, rejected); others have none.
  if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST || ev->event == RDMA_CM_EVENT_ESTABLISHED ||
      ev->event == RDMA_CM_EVENT_REJECTED) {
    const auto* p = static_cast<const std::byte*>(ev->param.conn.private_data);
    if (p) out.private_data.assign(p, p + ev->param.conn.private_data_len);
  }
  rdma_ack_cm_event(ev);
  return out;
}

std::optional<CmEvent> wait_cm_event(rdma_event_channel* channel, std::chrono::nanoseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto ev = poll_cm_event(channel)) return ev;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero() || !wait_fd(channel->fd, POLLIN, left)) return std::nullopt;
  }
}

std::string describe(const CmEvent& event) {
  return std::string(rdma_event_str(event.type)) + " (status " + std::to_string(event.status) + ")";
}

}  // namespace hymig::verbs
