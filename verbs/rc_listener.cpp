#include "verbs/rc_listener.hpp"

#include <cerrno>
#include <cstring>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "verbs/cm_events.hpp"
#include "verbs/device_discovery.hpp"
#include "verbs/rc_wire.hpp"

namespace hymig::verbs {

namespace {

constexpr int kBacklog = 16;
constexpr std::chrono::seconds kHandshakeTime{10};  // REP -> RTU under a slow (TCG) guest

}  // namespace

std::unique_ptr<RcListener> RcListener::open(const std::string& local_ip, std::uint16_t port, const RcOptions& options) {
  const SocketAddress address = resolve_host(local_ip, port, SOCK_STREAM, true).front();
  const std::string where = format_address(address);
  std::unique_ptr<RcListener> l(new RcListener());
  l->options_ = options;
  l->events_ = make_event_channel("an RC listener on " + where);
  rdma_cm_id* raw = nullptr;
  if (rdma_create_id(l->events_.get(), &raw, nullptr, RDMA_PS_TCP) != 0)
    throw_errno("cannot create an RDMA CM id to listen on " + where);
  l->id_.reset(raw);
  if (rdma_bind_addr(raw, const_cast<sockaddr*>(address.get())) != 0) {
    const int err = errno;
    std::string hint;
    if (err == EADDRINUSE) hint = " — another listener has that port; pick another one or 0";
    else if (!find_roce_gid(local_ip)) hint = " — no RDMA device has a RoCE v2 GID for " + local_ip +
                                              " (rdma link add rxe0 type rxe netdev IF?)";
    throw Error(ErrorKind::io, "cannot bind an RDMA listener on " + where + ": " + std::strerror(err) + hint);
  }
  if (rdma_listen(raw, kBacklog) != 0) throw_errno("cannot listen for RDMA connections on " + where);
  l->port_ = ntohs(rdma_get_src_port(raw));
  SocketAddress bound = address;
  if (bound.family() == AF_INET) reinterpret_cast<sockaddr_in*>(&bound.storage)->sin_port = htons(l->port_);
  if (bound.family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&bound.storage)->sin6_port = htons(l->port_);
  l->endpoint_ = format_address(bound);
  return l;
}

std::unique_ptr<ReliableChannel> RcListener::accept(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto ev = wait_cm_event(events_.get(), deadline - std::chrono::steady_clock::now());
    if (!ev)
      throw Error(ErrorKind::timeout, "no RC connection arrived on " + endpoint_ + " within " +
                                          std::to_string(timeout.count()) + " ms");
    if (ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
      throw Error(ErrorKind::io, "the RDMA device of the listener on " + endpoint_ + " was removed");
    if (ev->type != RDMA_CM_EVENT_CONNECT_REQUEST) continue;

    CmIdPtr conn(ev->id);  // ours now: destroying it unaccepted rejects the request
    RcConnectInfo peer;
    try {
      peer = decode_rc_connect(ev->private_data);
    } catch (const Error&) {
      rdma_reject(conn.get(), nullptr, 0);  // not a hymig RC endpoint: refuse, keep listening
      continue;
    }
    // The connection gets its own event channel before anything else can happen on it.
    EventChannelPtr events = make_event_channel("an RC connection accepted on " + endpoint_);
    if (rdma_migrate_id(conn.get(), events.get()) != 0)
      throw_errno("cannot move an accepted RDMA connection on " + endpoint_ + " to its own event channel");
    auto ch = RcReliableChannel::prepare(std::move(events), std::move(conn), options_);
    const auto info = encode_rc_connect(ch->local_info());
    rdma_conn_param param = rc_conn_param(info);
    set_rc_ack_timeout(ch->cm_id());
    if (rdma_accept(ch->cm_id(), &param) != 0)
      throw_errno("cannot accept the RDMA connection from " + ch->peer_address() + " on " + endpoint_);
    const auto left = deadline - std::chrono::steady_clock::now();
    const auto est = wait_cm_event(ch->event_channel(), std::max<std::chrono::nanoseconds>(left, kHandshakeTime));
    if (!est)
      throw Error(ErrorKind::timeout, "RC connection from " + ch->peer_address() + " on " + endpoint_ +
                                          " was never established (no RTU): peer stuck or link down?");
    if (est->type != RDMA_CM_EVENT_ESTABLISHED)
      throw Error(ErrorKind::peer_vanished, "RC connection from " + ch->peer_address() + " on " + endpoint_ +
                                                " failed during its handshake: " + describe(*est));
    ch->established(peer);
    return ch;
  }
}

}  // namespace hymig::verbs
