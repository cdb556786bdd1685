// The unreliable, batched datagram channel that carries the bulk page stream.
// Backends: udp/ (UDP sockets, sendmmsg/GSO/GRO), verbs/ (RoCE UD queue pairs), and the in-memory
// fake (testing/fake_channel.hpp) for engine tests. Datagrams may be lost, reordered, duplicated
// or corrupted; the engine validates every byte it receives.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "core/buffer.hpp"
#include "transport/transport_kind.hpp"

namespace hymig {

struct DatagramStats {
  std::uint64_t datagrams_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t send_would_block = 0;  // times the kernel/device queue was full
};

class DatagramChannel {
 public:
  virtual ~DatagramChannel() = default;

  // Name for reports: "udp", "ud", "fake".
  virtual std::string transport_name() const = 0;

  // What notify tells the destination to build to receive these datagrams: udp (sockets) or
  // rdma_ud (queue pairs). A test double names the kind it mimics.
  virtual BulkTransport wire_kind() const = 0;

  // Largest datagram (all parts together) this channel can carry to the peer.
  virtual std::size_t max_datagram() const = 0;

  // Opaque text the peer passes to connect(): for UDP "HOST:PORT", for UD "GID/QPN/QKEY".
  virtual std::string local_endpoint() const = 0;

  // Fix the peer. Datagrams from anyone else are dropped where the backend can (connected socket).
  // The endpoint comes from the peer: numeric only, never resolved by a name service.
  virtual void connect(std::string_view peer_endpoint) = 0;

  // The numeric address of the host a peer's endpoint belongs to (UDP: its IP; UD: the IP of its
  // RoCE v2 GID), for the engine to check it is the control connection's peer. Error{protocol}
  // when the text is malformed or not numeric.
  virtual std::string endpoint_host(std::string_view peer_endpoint) const = 0;

  // Memory the sender will gather from or the receiver will scatter into (the image). RDMA backends
  // register it once; socket backends ignore it.
  virtual void register_memory(std::span<std::byte> region) { (void)region; }

  // Queue as many datagrams as the channel accepts without blocking, in order; returns how many.
  // 0 means the send queue is full right now (try again after a short wait). Throws Error on a hard
  // failure. The parts' memory may be reused as soon as this returns.
  virtual std::size_t send_batch(std::span<const OutDatagram> datagrams) = 0;

  // Wait up to `timeout` for datagrams and return how many were stored in `out` (0 on timeout).
  // The views stay valid until the next receive_batch() call.
  virtual std::size_t receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) = 0;

  // The rate the sender paces this channel at (bytes/s). A channel over a kernel socket bounds the
  // bytes it keeps queued in the host (its qdisc, the device) to about a millisecond of it, as
  // TCP's small queues do for TCP: where the bottleneck is this host's own qdisc (a tc shaper),
  // a deeper queue of ours would push a TCP flow sharing it down to a sixth of the link.
  virtual void pace(double bytes_per_s) { (void)bytes_per_s; }

  // Bytes waiting to be received (kernel buffers, as the kernel accounts them; 0 where unknown): a
  // backlog here means this receiver is slower than what arrives, not that the path is full.
  virtual std::uint64_t receive_backlog_bytes() const { return 0; }

  // A descriptor that becomes readable when receive_batch() has something (for poll()).
  virtual int poll_fd() const = 0;

  virtual DatagramStats stats() const = 0;
};

}  // namespace hymig
