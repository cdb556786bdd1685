// DatagramChannel over a UDP socket: one sendmmsg() / recvmmsg() per batch, GSO runs on send,
// GRO buffers split on receipt, gathering straight from and returning views into memory that is
// never copied by this class.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/unique_fd.hpp"
#include "transport/datagram_channel.hpp"
#include "udp/udp_receive_ring.hpp"
#include "udp/udp_send_arena.hpp"

namespace hymig {

struct UdpChannelOptions {
  std::size_t max_datagram = 0;              // 0 = the largest the path allows
  bool gso = true;                           // coalesce equal-size runs when the kernel can
  bool gro = true;                           // accept coalesced buffers when the kernel can
  int socket_buffer_bytes = 64 * 1024 * 1024;
};

class UdpDatagramChannel final : public DatagramChannel {
 public:
  // Binds an ephemeral UDP port on `bind_host` (numeric or a name, bracketed IPv6 allowed; usually
  // ReliableChannel::local_host(), so both channels take the same route; a wildcard such as 0.0.0.0
  // would make local_endpoint() useless to the peer). Throws Error{usage} for a
  // bad host, Error{io} when the socket cannot be made or bound.
  static std::unique_ptr<UdpDatagramChannel> open(const std::string& bind_host, std::size_t max_datagram = 0);
  static std::unique_ptr<UdpDatagramChannel> open(const std::string& bind_host, const UdpChannelOptions& options);

  std::string transport_name() const override { return "udp"; }
  BulkTransport wire_kind() const override { return BulkTransport::udp; }

  // Before connect(): the requested size capped by the family's UDP limit. After: also capped by
  // the route's MTU minus the IP and UDP headers, as the kernel knew it at connect() time. If the
  // path shrinks later, this stays (the session's datagrams are sized by it) and send_batch()
  // goes on with datagrams the kernel fragments (see path_shrinks()).
  std::size_t max_datagram() const override { return max_datagram_; }

  std::string local_endpoint() const override { return local_endpoint_; }

  // Takes "HOST:PORT" from the peer's local_endpoint(); connect()s the socket, so the kernel drops
  // datagrams from anyone else from then on. May be called again to change peers.
  void connect(std::string_view peer_endpoint) override;
  std::string endpoint_host(std::string_view peer_endpoint) const override;

  // Throws std::logic_error before connect(); Error{peer_vanished} once the peer's port is closed
  // (ICMP port unreachable); Error{io} for other failures. An ICMP "fragmentation needed" from the
  // path is not a failure: the batch is sent again, in fragments (path_shrinks()).
  std::size_t send_batch(std::span<const OutDatagram> datagrams) override;

  // Datagrams of a coalesced buffer that do not fit `out` are kept for the next call; while some
  // are kept, poll_fd() stays readable and the next call returns them without waiting.
  std::size_t receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) override;

  // The socket's receive queue (SO_MEMINFO: memory the kernel holds for it, about 1.1-1.5x the bytes).
  std::uint64_t receive_backlog_bytes() const override;

  // Sets the send buffer to ~1 ms of the rate (at least 128 KiB, two GSO messages), when the rate
  // moved by more than a quarter since it was last set.
  void pace(double bytes_per_s) override;

  // An epoll descriptor watching the socket and a "datagrams kept in user space" eventfd.
  int poll_fd() const override { return epoll_.get(); }

  DatagramStats stats() const override { return stats_; }

  // Beyond the interface: what the kernel granted, for reports and tests.
  bool gso_enabled() const { return gso_; }
  // Times the path MTU was found below max_datagram() after an ICMP "fragmentation needed" (or
  // "packet too big") from the path; from the first one on, datagrams larger than the path leave
  // this host in IP fragments (the largest payload that fits the path unfragmented: narrowed_path()).
  std::uint64_t path_shrinks() const { return path_shrinks_; }
  std::size_t narrowed_path() const { return narrowed_path_; }
  bool gro_enabled() const { return gro_; }
  std::string peer_endpoint() const { return peer_endpoint_; }
  int socket_fd() const { return socket_.get(); }

 private:
  UdpDatagramChannel() = default;

  GsoLimits gso_limits() const;
  // After EMSGSIZE from a send: true (and narrowed_path_ set) when the route's path MTU is now
  // below the datagrams this channel sends.
  bool path_shrank();
  void update_pending_signal();
  [[noreturn]] void fail_send(int err, std::size_t message_bytes);

  UniqueFd socket_;
  int send_buffer_ = 0;  // what pace() last asked for (the kernel doubles it); 0: not yet
  UniqueFd pending_event_;  // readable while ring_ holds datagrams not yet handed out
  UniqueFd epoll_;
  bool pending_signalled_ = false;

  int family_ = 0;
  std::size_t requested_max_ = 0;
  std::size_t max_datagram_ = 0;
  bool connected_ = false;
  std::size_t narrowed_path_ = 0;  // 0: the path carries max_datagram_ whole
  std::uint64_t path_shrinks_ = 0;
  // EMSGSIZE reports answered by sending again without a datagram accepted since: a socket that
  // returns EMSGSIZE for every send (IP_PMTUDISC_DO set from outside) fails after a few.
  static constexpr unsigned kMaxPathReports = 4;
  unsigned unanswered_path_reports_ = 0;
  bool gso_ = false;
  bool gro_ = false;
  std::string local_endpoint_;
  std::string peer_endpoint_;

  UdpSendArena send_arena_;
  UdpReceiveRing receive_ring_;
  DatagramStats stats_;
};

}  // namespace hymig
