#include "verbs/rc_connect.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "core/error.hpp"
#include "core/socket_address.hpp"
#include "verbs/cm_events.hpp"
#include "verbs/device_discovery.hpp"
#include "verbs/rc_wire.hpp"

namespace hymig::verbs {

namespace {

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return int(std::clamp<std::int64_t>(left.count(), 1, INT_MAX));
}

}  // namespace

std::unique_ptr<ReliableChannel> connect_rc(const std::string& local_ip, const std::string& endpoint,
                                            std::chrono::milliseconds timeout, const RcOptions& options) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const SocketAddress src = resolve_host(local_ip, 0, SOCK_STREAM, true).front();
  const std::vector<SocketAddress> candidates = resolve_host_port(endpoint, SOCK_STREAM, false);
  const auto dst = std::find_if(candidates.begin(), candidates.end(),
                                [&](const SocketAddress& a) { return a.family() == src.family(); });
  if (dst == candidates.end())
    throw Error(ErrorKind::usage, "RC endpoint " + endpoint + " has no address of the family of " + local_ip +
                                      ": use IPv4 on both ends or IPv6 on both");
  const std::string what = "RC connection from " + local_ip + " to " + endpoint;
  const std::string no_device = find_roce_gid(local_ip) ? ""
                                                        : " — no RDMA device has a RoCE v2 GID for " + local_ip +
                                                              " (rdma link add rxe0 type rxe netdev IF?)";

  EventChannelPtr events = make_event_channel(what);
  CmIdPtr id;
  const auto fail = [&](const CmEvent& ev, const char* doing) {
    throw Error(ErrorKind::io, what + ": " + doing + " failed: " + describe(ev) +
                                   (no_device.empty() ? " — is the peer reachable from that address?" : no_device));
  };
  const auto next_event = [&](const char* doing) {
    for (;;) {
      const auto ev = wait_cm_event(events.get(), deadline - std::chrono::steady_clock::now());
      if (!ev) throw Error(ErrorKind::timeout, what + ": " + doing + " took longer than " + std::to_string(timeout.count()) + " ms");
      if (ev->id == id.get()) return *ev;  // not a late event of an earlier attempt's id
    }
  };

  // Address resolution in short attempts. The kernel (6.1's ib_core addr.c) looks the neighbour up
  // once, sends the ARP request and, if the answer is not there yet, checks again only when a
  // neighbour-update event comes or when the request's timeout is up. Over a fast link (a veth
  // pair, a guest's first connection) the ARP reply can arrive before the request is queued: the
  // event is missed and the resolution sits out its whole timeout (the lab saw 20 s of a 20 s
  // deadline). So each attempt gets a short timeout, at whose end the kernel looks again — by then
  // the neighbour is resolved and the attempt succeeds; a neighbour really unanswered ends the
  // attempt in ADDR_ERROR (-ETIMEDOUT), and a fresh id tries again until the caller's deadline.
  auto attempt = std::chrono::milliseconds(250);
  for (;;) {
    rdma_cm_id* raw = nullptr;
    if (rdma_create_id(events.get(), &raw, nullptr, RDMA_PS_TCP) != 0) throw_errno("cannot create an RDMA CM id for the " + what);
    id.reset(raw);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    const int attempt_ms = int(std::clamp<std::int64_t>(std::min(attempt, left).count(), 1, INT_MAX));
    if (rdma_resolve_addr(raw, const_cast<sockaddr*>(src.get()), const_cast<sockaddr*>(dst->get()), attempt_ms) != 0) {
      const int err = errno;
      throw Error(ErrorKind::io, what + ": cannot resolve the RDMA address: " + std::strerror(err) + no_device);
    }
    const CmEvent ev = next_event("address resolution");
    if (ev.type == RDMA_CM_EVENT_ADDR_RESOLVED) break;
    const bool again = ev.type == RDMA_CM_EVENT_ADDR_ERROR && ev.status == -ETIMEDOUT &&
                       std::chrono::steady_clock::now() < deadline;
    if (!again) {
      if (ev.type == RDMA_CM_EVENT_ADDR_ERROR && ev.status == -ETIMEDOUT)
        throw Error(ErrorKind::timeout, what + ": address resolution took longer than " + std::to_string(timeout.count()) +
                                            " ms (no ARP/ND answer from the peer's address?)");
      fail(ev, "address resolution");
    }
    attempt = std::min(attempt * 2, std::chrono::milliseconds(2000));
  }
  if (rdma_resolve_route(id.get(), remaining_ms(deadline)) != 0) throw_errno(what + ": cannot resolve the RDMA route");
  if (const CmEvent ev = next_event("route resolution"); ev.type != RDMA_CM_EVENT_ROUTE_RESOLVED) fail(ev, "route resolution");

  auto ch = RcReliableChannel::prepare(std::move(events), std::move(id), options);
  const auto info = encode_rc_connect(ch->local_info());
  rdma_conn_param param = rc_conn_param(info);
  set_rc_ack_timeout(ch->cm_id());
  if (rdma_connect(ch->cm_id(), &param) != 0) throw_errno(what + ": rdma_connect failed");

  const auto ev = wait_cm_event(ch->event_channel(), deadline - std::chrono::steady_clock::now());
  if (!ev) throw Error(ErrorKind::timeout, what + ": no answer within " + std::to_string(timeout.count()) + " ms — host down or wrong address?");
  switch (ev->type) {
    case RDMA_CM_EVENT_ESTABLISHED:
      break;
    case RDMA_CM_EVENT_REJECTED:
      throw Error(ErrorKind::peer_vanished, what + " refused: " + describe(*ev) +
                                                " — is `hymig serve` listening there with RDMA?");
    case RDMA_CM_EVENT_UNREACHABLE:
      throw Error(ErrorKind::timeout, what + ": peer unreachable: " + describe(*ev) + " — host down or wrong address?");
    default:
      throw Error(ErrorKind::io, what + " failed: " + describe(*ev));
  }
  ch->established(decode_rc_connect(ev->private_data));
  return ch;
}

}  // namespace hymig::verbs
