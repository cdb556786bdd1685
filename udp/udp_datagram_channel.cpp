#include "udp/udp_datagram_channel.hpp"

#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "core/error.hpp"
#include "core/fd_wait.hpp"
#include "core/socket_address.hpp"
#include "udp/udp_socket_options.hpp"

namespace hymig {

std::unique_ptr<UdpDatagramChannel> UdpDatagramChannel::open(const std::string& bind_host, std::size_t max_datagram) {
  UdpChannelOptions options;
  options.max_datagram = max_datagram;
  return open(bind_host, options);
}

std::unique_ptr<UdpDatagramChannel> UdpDatagramChannel::open(const std::string& bind_host,
                                                             const UdpChannelOptions& options) {
  const SocketAddress address = resolve_host(bind_host, 0, SOCK_DGRAM, true).front();
  std::unique_ptr<UdpDatagramChannel> ch(new UdpDatagramChannel());
  const std::string where = format_address(address);

  ch->socket_ = UniqueFd(::socket(address.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!ch->socket_) throw_errno("cannot create a UDP socket to bind on " + where);
  const int fd = ch->socket_.get();
  enlarge_socket_buffers(fd, options.socket_buffer_bytes);
  if (::bind(fd, address.get(), address.length) != 0)
    throw_errno("cannot bind a UDP socket on " + where + " (is " + bind_host + " an address of this host?)");

  ch->family_ = address.family();
  ch->local_endpoint_ = format_address(local_address_of(fd));
  ch->requested_max_ = options.max_datagram;
  const std::size_t family_max = max_udp_payload(ch->family_);
  ch->max_datagram_ = options.max_datagram == 0 ? family_max : std::min(options.max_datagram, family_max);
  ch->gso_ = options.gso && probe_udp_gso(fd);
  ch->gro_ = options.gro && enable_udp_gro(fd);

  // poll_fd() must turn readable for datagrams queued in the kernel *or* kept in the ring.
  ch->pending_event_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!ch->pending_event_) throw_errno("cannot create an eventfd for UDP channel " + ch->local_endpoint_);
  ch->epoll_ = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
  if (!ch->epoll_) throw_errno("cannot create an epoll set for UDP channel " + ch->local_endpoint_);
  for (int watched : {fd, ch->pending_event_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = watched;
    if (::epoll_ctl(ch->epoll_.get(), EPOLL_CTL_ADD, watched, &ev) != 0)
      throw_errno("cannot watch the UDP socket of " + ch->local_endpoint_);
  }
  return ch;
}

std::string UdpDatagramChannel::endpoint_host(std::string_view peer_endpoint) const {
  return numeric_host(resolve_numeric_host_port(peer_endpoint, SOCK_DGRAM).front());
}

void UdpDatagramChannel::connect(std::string_view peer_endpoint) {
  const std::vector<SocketAddress> candidates = resolve_numeric_host_port(peer_endpoint, SOCK_DGRAM);
  const auto same_family = std::find_if(candidates.begin(), candidates.end(),
                                        [&](const SocketAddress& a) { return a.family() == family_; });
  if (same_family == candidates.end())
    throw Error(ErrorKind::usage, "peer datagram endpoint " + std::string(peer_endpoint) +
                                      " has no address of the family this channel is bound to (" + local_endpoint_ +
                                      "): bind both ends on IPv4 or both on IPv6");
  const std::string peer = format_address(*same_family);
  if (::connect(socket_.get(), same_family->get(), same_family->length) != 0)
    throw_errno("cannot connect UDP socket " + local_endpoint_ + " to " + peer);
  peer_endpoint_ = peer;
  connected_ = true;

  const std::size_t family_max = max_udp_payload(family_);
  std::size_t limit = requested_max_ == 0 ? family_max : std::min(requested_max_, family_max);
  if (const std::size_t path = path_max_udp_payload(socket_.get(), family_); path != 0) limit = std::min(limit, path);
  max_datagram_ = limit;
}

GsoLimits UdpDatagramChannel::gso_limits() const {
  GsoLimits limits;
  limits.enabled = gso_;
  // A segment must fit the path, or the kernel rejects the run (EINVAL): after the path shrank,
  // datagrams larger than it go one per msghdr, for the kernel to fragment.
  limits.max_segment = narrowed_path_ ? std::min(max_datagram_, narrowed_path_) : max_datagram_;
  return limits;
}

bool UdpDatagramChannel::path_shrank() {
  const std::size_t path = path_max_udp_payload(socket_.get(), family_);
  if (path == 0 || path >= max_datagram_) return false;
  narrowed_path_ = path;
  ++path_shrinks_;
  return true;
}

void UdpDatagramChannel::fail_send(int err, std::size_t message_bytes) {
  if (err == ECONNREFUSED)
    throw Error(ErrorKind::peer_vanished, "UDP peer " + peer_endpoint_ +
                                              " is gone (port unreachable): its hymig process exited or closed the channel");
  if (err == EMSGSIZE)
    throw Error(ErrorKind::io, "datagram of " + std::to_string(message_bytes) + " bytes from " + local_endpoint_ +
                                   " to " + peer_endpoint_ + " is too large for the path (max_datagram() = " +
                                   std::to_string(max_datagram_) + "); did the path MTU shrink?");
  throw_errno("sendmmsg from " + local_endpoint_ + " to " + peer_endpoint_, err);
}

std::size_t UdpDatagramChannel::send_batch(std::span<const OutDatagram> datagrams) {
  if (!connected_) throw std::logic_error("UdpDatagramChannel::send_batch called before connect()");
  std::size_t accepted = 0;
  while (accepted < datagrams.size()) {
    send_arena_.pack(datagrams.subspan(accepted), gso_limits());
    const std::size_t count = send_arena_.message_count();
    std::size_t sent = 0;
    bool repack = false;
    while (sent < count && !repack) {
      const int rc = ::sendmmsg(socket_.get(), send_arena_.messages() + sent, static_cast<unsigned>(count - sent), 0);
      if (rc > 0) {
        unanswered_path_reports_ = 0;
        for (std::size_t m = sent; m < sent + std::size_t(rc); ++m) {
          accepted += send_arena_.datagrams_in(m);
          stats_.datagrams_sent += send_arena_.datagrams_in(m);
          stats_.bytes_sent += send_arena_.bytes_in(m);
        }
        sent += std::size_t(rc);
        continue;
      }
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
        ++stats_.send_would_block;
        return accepted;
      }
      // A route without checksum offload (EIO) or segmentation limits (EINVAL) refuse GSO: drop to
      // one datagram per msghdr for the life of the channel and try the rest again.
      if ((err == EIO || err == EINVAL) && gso_ && send_arena_.segmented(sent)) {
        gso_ = false;
        repack = true;
        continue;
      }
      // EMSGSIZE here is the kernel passing on an ICMP "fragmentation needed" / "packet too big"
      // for a datagram already sent (the socket's pending error: this message did not go), and
      // the route's path MTU is lower now. The session's datagram size was agreed with the peer
      // and cannot change, so the stream goes on over the narrower path: the kernel fragments
      // datagrams larger than it at this end from now on (IP_PMTUDISC_WANT, Linux's default), and
      // no GSO run is formed for them. Sent again; a socket that refuses every time still fails.
      if (err == EMSGSIZE && unanswered_path_reports_ < kMaxPathReports && path_shrank()) {
        ++unanswered_path_reports_;
        repack = true;
        continue;
      }
      fail_send(err, send_arena_.bytes_in(sent));
    }
  }
  return accepted;
}

void UdpDatagramChannel::pace(double bytes_per_s) {
  // The kernel grants twice what is asked: ask for half a millisecond's bytes.
  const double want = std::clamp(bytes_per_s / 2000.0, 64.0 * 1024, 32.0 * 1024 * 1024);
  if (send_buffer_ > 0 && want > 0.75 * send_buffer_ && want < 1.25 * send_buffer_) return;
  const int bytes = static_cast<int>(want);
  if (::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof bytes) != 0)
    (void)::setsockopt(socket_.get(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);  // capped at wmem_max
  send_buffer_ = bytes;
}

std::uint64_t UdpDatagramChannel::receive_backlog_bytes() const {
  std::uint32_t info[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof info;
  if (::getsockopt(socket_.get(), SOL_SOCKET, SO_MEMINFO, info, &len) != 0 || len < sizeof(std::uint32_t) * (SK_MEMINFO_RMEM_ALLOC + 1))
    return 0;
  return info[SK_MEMINFO_RMEM_ALLOC];
}

void UdpDatagramChannel::update_pending_signal() {
  const bool pending = receive_ring_.has_pending();
  if (pending == pending_signalled_) return;
  std::uint64_t value = 1;
  // Only the transitions cost a system call; they happen when `out` was smaller than a GRO buffer.
  const ssize_t rc = pending ? ::write(pending_event_.get(), &value, sizeof value)
                             : ::read(pending_event_.get(), &value, sizeof value);
  (void)rc;
  pending_signalled_ = pending;
}

std::size_t UdpDatagramChannel::receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) {
  if (out.empty()) return 0;
  std::size_t n = 0;
  if (receive_ring_.has_pending()) {
    n = receive_ring_.drain(out);
  } else {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const std::size_t want = std::min(out.size(), UdpReceiveRing::kBuffers);
      mmsghdr* messages = receive_ring_.prepare(want);
      const int rc = ::recvmmsg(socket_.get(), messages, static_cast<unsigned>(want), MSG_DONTWAIT, nullptr);
      if (rc > 0) {
        receive_ring_.filled(std::size_t(rc));
        n = receive_ring_.drain(out);
        if (n > 0) break;
        continue;  // only truncated datagrams: look again
      }
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        // A zero timeout (the engine's drain) has its answer already: no ppoll to say it again.
        const auto left = deadline - std::chrono::steady_clock::now();
        if (left <= left.zero() || !wait_fd(socket_.get(), POLLIN, left)) return 0;
        continue;
      }
      if (err == ECONNREFUSED)
        throw Error(ErrorKind::peer_vanished, "UDP peer " + peer_endpoint_ + " is gone (port unreachable)");
      throw_errno("recvmmsg on UDP channel " + local_endpoint_, err);
    }
  }
  update_pending_signal();
  stats_.datagrams_received += n;
  for (std::size_t i = 0; i < n; ++i) stats_.bytes_received += out[i].bytes.size();
  return n;
}

}  // namespace hymig
