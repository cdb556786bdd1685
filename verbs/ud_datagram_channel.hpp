// DatagramChannel over a RoCE v2 unreliable-datagram queue pair: the bulk page stream on RDMA.
//
// Resources are made once at open(): a UD QP, a send CQ (polled) and a receive CQ with a
// completion channel (poll_fd), a registered pool of send slots and a registered pool of receive
// buffers posted in bulk. On the data path there is no allocation, no registration and, while the
// stream keeps the queues busy, no system call:
//   send_batch    one chained ibv_post_send per batch; a datagram's first part (the engine's header)
//                 is copied into the WR's send slot, parts inside registered memory (the image) are
//                 gathered by the device straight from there; one WR in N is signalled and its
//                 completion frees every slot before it.
//   receive_batch ibv_poll_cq in batches; views point into the receive buffers just past the 40-byte
//                 GRH; the buffers handed out are re-posted (one chained ibv_post_recv) at the start
//                 of the next call, which is as long as the interface keeps views valid.
#pragma once

#include <infiniband/verbs.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "transport/datagram_channel.hpp"
#include "verbs/completion_queue.hpp"
#include "verbs/device_discovery.hpp"
#include "verbs/ready_signal.hpp"
#include "verbs/ud_endpoint.hpp"
#include "verbs/verbs_domain.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

struct UdChannelOptions {
  std::size_t max_datagram = 0;     // 0: the port's active MTU (the most a UD message can carry)
  unsigned receive_buffers = 4096;  // posted receive buffers (capped by the device's max_qp_wr)
  unsigned send_depth = 1024;       // send queue depth = send slots (capped by the device)
  // The session's devices, shared with its other queue pairs; null: a device context of its own.
  std::shared_ptr<DeviceScope> devices;
};

// Beyond DatagramStats: what only a UD channel can tell.
struct UdStats {
  std::uint64_t receive_queue_ran_dry = 0;  // times every receive buffer was used up before being
                                            // re-posted: datagrams arriving then were dropped by the
                                            // device (a receive-queue overrun; the count of lost
                                            // datagrams itself is not observable)
  std::uint64_t foreign_dropped = 0;        // datagrams from a QPN/address other than the peer's
  std::uint64_t receive_errors = 0;         // receive completions with an error status
  std::uint64_t parts_gathered = 0;         // parts the device read straight from registered memory
  std::uint64_t parts_copied = 0;           // parts copied into a send slot (headers, unregistered memory)
};

class UdDatagramChannel final : public DatagramChannel {
 public:
  // Opens the active RoCE port whose RoCE v2 GID is `local_ip`. Throws Error{usage} for text that
  // is not a numeric IP, Error{io} when no RDMA port has that address ("no RDMA device has a RoCE v2
  // GID for 10.9.0.1 (rdma link add rxe0 type rxe netdev IF?)") or it is down, or a verbs call fails.
  static std::unique_ptr<UdDatagramChannel> open(const std::string& local_ip, std::size_t max_datagram = 0);
  static std::unique_ptr<UdDatagramChannel> open(const std::string& local_ip, const UdChannelOptions& options);

  // QP to ERR, drain (bounded), then destroy in order: never blocks on the peer.
  ~UdDatagramChannel() override;

  std::string transport_name() const override { return "ud"; }
  BulkTransport wire_kind() const override { return BulkTransport::rdma_ud; }

  // min(requested, port MTU); after connect() also capped by the peer's port MTU.
  std::size_t max_datagram() const override { return max_datagram_; }

  // "GID/QPN/QKEY/MTU" (verbs/ud_endpoint.hpp).
  std::string local_endpoint() const override { return format_ud_endpoint(local_); }

  // Parses the peer's endpoint (Error{protocol} when malformed), makes the address handle (RoCE v2:
  // GRH with the peer's GID, our GID index, hop limit 64). From then on datagrams from any other
  // source QPN or address are dropped (UdStats::foreign_dropped). May be called again.
  void connect(std::string_view peer_endpoint) override;
  // The GID as IPv6 text (an IPv4 RoCE v2 GID is IPv4-mapped).
  std::string endpoint_host(std::string_view peer_endpoint) const override;

  // Records the region; it is registered (once, whole) the first time a send gathers from it, so a
  // receiver that never sends from its image never pins it. If registration fails (e.g. the
  // RLIMIT_MEMLOCK of a non-root user), parts from it are copied instead: slower, still correct.
  void register_memory(std::span<std::byte> region) override;

  // std::logic_error before connect(); Error{usage} for a datagram above max_datagram(); Error{io}
  // when the QP has failed. Returns 0 when the send queue is full (never blocks).
  std::size_t send_batch(std::span<const OutDatagram> datagrams) override;

  // Error{io} when the QP has failed (flushed).
  std::size_t receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) override;

  // epoll set: the receive CQ's completion channel + a "completions kept" eventfd.
  int poll_fd() const override { return ready_.fd(); }

  DatagramStats stats() const override { return stats_; }

  // Beyond the interface: the port in use, UD-only counters, registration trouble (empty if none).
  const RoceAddress& port() const { return port_; }
  UdStats ud_stats() const { return ud_stats_; }
  std::string registration_error() const { return registration_error_; }
  unsigned receive_buffers() const { return recv_count_; }
  ibv_qp* queue_pair() const { return qp_.get(); }  // for fault-injection tests

 private:
  struct Region {
    const std::byte* begin = nullptr;
    std::size_t size = 0;
    std::shared_ptr<ibv_mr> mr;  // shared with the device's other queue pairs (verbs_domain.hpp)
    bool tried = false;  // registration attempted (mr null after a failure)
  };

  UdDatagramChannel() : ready_("a UD datagram channel") {}

  void setup(const UdChannelOptions& options);
  void bring_up_qp();
  std::uint32_t lkey_for(const std::byte* p, std::size_t n);
  std::size_t build_sges(const OutDatagram& d, std::size_t slot, ibv_sge* sge);
  void reap_sends();
  std::size_t poll_receives(std::span<InDatagram> out);
  bool from_peer(const ibv_wc& wc, const std::byte* grh) const;
  void repost(std::vector<std::uint32_t>& slots);
  [[noreturn]] void fail_completion(const ibv_wc& wc, const char* queue);
  std::byte* recv_buffer(std::size_t slot) const { return recv_pool_.get() + slot * recv_stride_; }

  ReadySignal ready_;
  RoceAddress port_;
  std::string where_;  // "rxe0 port 1 (10.9.0.1)"
  UdEndpoint local_{};
  UdEndpoint peer_{};
  bool connected_ = false;
  std::size_t max_datagram_ = 0;
  std::string registration_error_;

  // Declared in creation order; destroyed in reverse: QP, AH, CQs, MRs, pools, then the device's
  // context and PD (shared with the session's other queue pairs: verbs_domain.hpp).
  std::shared_ptr<VerbsDomain> domain_;
  AlignedBytes send_pool_;
  AlignedBytes recv_pool_;
  MrPtr send_mr_;
  MrPtr recv_mr_;
  std::vector<Region> regions_;
  std::unique_ptr<CompletionQueue> send_cq_;
  std::unique_ptr<CompletionQueue> recv_cq_;
  std::vector<AhPtr> retired_ahs_;  // earlier peers' AHs (connect() called again)
  AhPtr ah_;
  QpPtr qp_;

  // Send side: WR i of the stream uses slot i % send_depth_; a signalled completion of WR i means
  // every WR up to i is done (a QP completes its sends in order).
  std::size_t slot_bytes_ = 0;
  unsigned send_depth_ = 0;
  unsigned signal_every_ = 1;
  unsigned max_sge_ = 1;
  std::uint64_t sends_posted_ = 0;
  std::uint64_t sends_completed_ = 0;
  std::vector<ibv_send_wr> send_wrs_;
  std::vector<ibv_sge> send_sges_;  // max_sge_ per WR
  std::size_t last_region_ = 0;

  // Receive side.
  unsigned recv_count_ = 0;
  std::size_t recv_stride_ = 0;
  std::size_t recv_capacity_ = 0;   // GRH + largest UD payload the port can deliver
  unsigned recv_posted_ = 0;
  bool ran_dry_ = false;
  std::vector<ibv_recv_wr> recv_wrs_;
  std::vector<ibv_sge> recv_sges_;
  std::vector<std::uint32_t> lent_;     // handed out by the last receive_batch: re-post next call
  std::vector<std::uint32_t> dropped_;  // consumed without being handed out: re-post soon
  std::array<ibv_wc, 64> wc_{};

  DatagramStats stats_;
  UdStats ud_stats_;
};

}  // namespace hymig::verbs
