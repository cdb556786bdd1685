// ReliableChannel over an RDMA reliable-connected queue pair set up with librdmacm.
// Messages (verbs/rc_wire.hpp) are cut into SENDs of a few path-MTU packets copied through
// registered slots; flow control is by credits the receiver RDMA-WRITEs back (never RNR retries);
// small SENDs and a short ACK timeout keep go-back-N recovery fast under loss; a peer that
// acknowledges nothing for an io timeout is gone. One-sided writes (RemoteWriter) carry the final
// delta into the peer's registered image. After a failure mid-message every call throws again.
// The reasoning and the lab figures behind each choice: docs/rc-channel.md.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <array>
#include <chrono>
#include <deque>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "transport/reliable_channel.hpp"
#include "verbs/cm_events.hpp"
#include "verbs/completion_queue.hpp"
#include "verbs/rc_wire.hpp"
#include "verbs/ready_signal.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

struct RcOptions {
  unsigned recv_slots = 256;         // receive slots posted (= the peer's credits): 1 MiB at MTU 1024
  unsigned send_slots = 8;           // registered send slots (SENDs in flight)
  std::size_t slot_bytes = 0;        // SEND and receive-slot size; 0: kSendPackets x the port's MTU
  unsigned write_window = 0;         // image WRITEs in flight (RemoteWriter); 0: send_slots
};

// Packets per SEND when RcOptions::slot_bytes is 0 (see "Loss" above).
inline constexpr unsigned kSendPackets = 4;
// retry_count of the QPs: 7 (see "Loss" above).
inline constexpr unsigned kRcRetryCount = 7;

// The rdma_cm connection parameters both ends use; `info` (the encoded RcConnectInfo) must outlive
// the rdma_connect / rdma_accept call.
rdma_conn_param rc_conn_param(const std::array<std::byte, kRcConnectBytes>& info);
// The QP's local ACK timeout (4.096 us x 2^exponent): 13 (33.6 ms) on Soft-RoCE, whose device
// retries forever, so the timeout only sets how fast a loss is repaired; 18 (1.07 s) on hardware.
// Decided from the id's device (route resolved or connect request).
std::uint8_t rc_ack_timeout_exponent(ibv_context* device);
// Sets it on the id before rdma_connect / rdma_accept.
void set_rc_ack_timeout(rdma_cm_id* id);
// True for Soft-RoCE (rdma_rxe: vendor id 0xFFFFFF).
bool is_soft_roce(ibv_context* device);

class RcReliableChannel final : public ReliableChannel, public RemoteWriter {
 public:
  static constexpr std::chrono::milliseconds kDefaultIoTimeout{10'000};

  // For RcListener and connect_rc: takes a cm_id whose device is known (route resolved, or a
  // connect request) and its own event channel; makes PD, CQs, QP and slots and posts the receive
  // slots, so the peer may send the moment the connection is up. Throws Error{io}.
  static std::unique_ptr<RcReliableChannel> prepare(EventChannelPtr events, CmIdPtr id, const RcOptions& options);
  // What goes into the connect request / accept reply.
  RcConnectInfo local_info() const;
  // Once RDMA_CM_EVENT_ESTABLISHED is in: the peer's slots and credit word.
  void established(const RcConnectInfo& peer);
  rdma_cm_id* cm_id() const { return id_.get(); }
  rdma_event_channel* event_channel() const { return events_.get(); }

  // rdma_disconnect, QP to ERR, bounded drain, destroy in order: never waits for the peer.
  ~RcReliableChannel() override;

  std::string transport_name() const override { return "rc"; }
  void set_limits(std::size_t max_body, std::uint64_t max_payload) override;
  void set_io_timeout(std::chrono::milliseconds timeout) override;

  // Error{usage} for a body above 4 GiB - 1; Error{timeout} when the peer returns no credit for the
  // io timeout (it reads nothing); Error{peer_vanished} when the peer disconnected or its device
  // acknowledged nothing for the io timeout. Returns once everything is copied into send slots and
  // posted.
  void send(std::uint8_t type, std::span<const std::byte> body) override;
  void send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                         std::span<const ConstBuffer> payload) override;

  // std::nullopt if no message starts to arrive within `timeout`; once it has, each stall is
  // bounded by the io timeout. Error{peer_vanished} when the peer disconnected (after every
  // message it sent before has been received) or, while we wait, its device acknowledged none of
  // our outstanding sends for the io timeout; Error{protocol} for a malformed frame.
  // std::logic_error if the previous message's payload was neither received nor discarded.
  std::optional<Message> receive(std::chrono::milliseconds timeout) override;
  void receive_payload(std::span<const MutableBuffer> dst) override;
  void discard_payload() override;

  // epoll set: receive CQ's completion channel, the CM event channel (a disconnect wakes it), and
  // a "received SENDs kept" eventfd.
  int poll_fd() const override { return ready_.fd(); }
  std::string local_host() const override { return local_host_; }
  std::string peer_host() const override { return peer_host_; }
  ReliableStats stats() const override { return stats_; }
  RemoteWriter* remote_writer() override { return this; }

  // RemoteWriter (see "One-sided writes" above).
  RemoteImage expose_target(std::span<std::byte> region) override;
  void register_source(std::span<const std::byte> region) override;
  void set_remote_target(const RemoteImage& remote) override;
  void write_remote(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) override;
  void flush_writes() override;
  void wait_writes() override;
  std::uint64_t bytes_written() const override { return write_bytes_; }

  // Beyond the interface.
  std::string local_address() const { return local_address_; }  // "IP:PORT"
  std::string peer_address() const { return peer_address_; }
  ibv_qp* queue_pair() const { return qp_.get(); }              // for fault-injection tests
  std::uint64_t credit_waits() const { return credit_waits_; }   // times a send waited for credit
  std::size_t send_bytes() const { return chunk_bytes_; }         // bytes per SEND (once established)

 private:
  struct Received {
    std::uint32_t slot = 0;
    std::uint32_t len = 0;
  };

  explicit RcReliableChannel(EventChannelPtr events, CmIdPtr id);
  void setup(const RcOptions& options);

  // send side
  void send_frame(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload);
  void append(const std::byte* data, std::size_t n);
  void post_current_slot();
  void flush_sends();
  void wait_for_send_room();
  std::uint64_t credits() const;
  void reap_sends();
  bool awaiting_acks() const { return sends_in_flight_ + credit_writes_in_flight_ > 0 || writes_posted_ > writes_done_; }
  void note_posted();
  void check_acks();  // Error{peer_vanished} once awaiting_acks() for the io timeout without one
  // one-sided writes
  void post_writes();
  void wait_for_write_room();
  void queue_write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes);

  // receive side
  std::optional<Message> receive_frame(std::chrono::milliseconds timeout);
  bool next_send(std::chrono::nanoseconds timeout);
  void poll_receives();
  void spill_receives();
  bool has_buffered() const;
  void read_stream(std::byte* dst, std::uint64_t n, const char* what);
  void end_of_message();
  void release_current();
  void repost(std::uint32_t slot);
  void return_credits(bool force);
  void throw_if_failed() const;
  void settle_ready();

  void check_cm_events();
  [[noreturn]] void fail_completion(const ibv_wc& wc, const char* queue);
  void ensure_usable() const;
  template <typename F>
  auto guarded(F&& f) -> decltype(f());
  std::byte* send_slot(std::uint32_t i) const { return send_pool_.get() + std::size_t(i) * slot_bytes_; }
  std::byte* recv_slot(std::uint32_t i) const { return recv_pool_.get() + std::size_t(i) * slot_bytes_; }

  ReadySignal ready_;
  std::string local_host_, peer_host_, local_address_, peer_address_;
  RcLimits limits_;
  std::chrono::milliseconds io_timeout_ = kDefaultIoTimeout;
  std::optional<Error> broken_;
  bool disconnected_ = false;
  bool connected_ = false;
  ReliableStats stats_;
  std::uint64_t credit_waits_ = 0;

  // Declared in creation order; destroyed in reverse: QP, CQs, MRs, pools, PD, cm_id, event channel.
  EventChannelPtr events_;
  CmIdPtr id_;
  PdPtr pd_;
  AlignedBytes send_pool_;
  AlignedBytes recv_pool_;
  AlignedBytes credit_word_;  // the peer writes its re-posted count here
  MrPtr send_mr_;
  MrPtr recv_mr_;
  MrPtr credit_mr_;
  MrPtr source_mr_;  // register_source(): the image WRITEs gather from (memory owned by the caller)
  MrPtr target_mr_;  // expose_target(): the image the peer WRITEs into (memory owned by the caller)
  std::unique_ptr<CompletionQueue> send_cq_;
  std::unique_ptr<CompletionQueue> recv_cq_;
  CmQp qp_;

  std::size_t slot_bytes_ = 0;
  unsigned recv_count_ = 0;
  unsigned send_count_ = 0;
  RcConnectInfo peer_{};
  std::size_t chunk_bytes_ = 0;  // SEND size: min(our slots, the peer's)

  // send side state
  std::vector<std::uint32_t> free_send_slots_;
  std::int64_t current_slot_ = -1;  // slot being filled
  std::size_t current_fill_ = 0;
  std::uint64_t sends_posted_ = 0;  // data SENDs ever posted (credits used)
  unsigned sends_in_flight_ = 0;
  std::vector<ibv_send_wr> pend_wr_;  // filled, not yet posted (credit spent)
  std::vector<ibv_sge> pend_sge_;
  unsigned pending_ = 0;
  unsigned post_batch_ = 1;           // SENDs per chain (flush_sends)
  unsigned credit_writes_in_flight_ = 0;
  std::uint64_t ack_epoch_ = 0;      // bumped by every reaped completion and the first post after none
  std::uint64_t checked_epoch_ = 0;  // the epoch check_acks() last saw, at last_ack_
  std::chrono::steady_clock::time_point last_ack_{};

  // one-sided write state
  const std::byte* source_base_ = nullptr;
  std::size_t source_bytes_ = 0;
  RemoteImage remote_{};
  bool have_remote_ = false;
  std::vector<ibv_send_wr> write_wr_;  // the chain being filled, not yet posted
  std::vector<ibv_sge> write_sge_;
  unsigned write_pending_ = 0;
  unsigned write_window_ = 8;          // WRITEs in flight at most (posted, completion not seen)
  unsigned write_chain_ = 4;           // WRITEs per chain (the last one signalled)
  std::uint64_t writes_posted_ = 0;    // WRITE requests ever posted
  std::uint64_t writes_done_ = 0;      // of those, known complete (up to the last signalled one seen)
  std::uint64_t write_bytes_ = 0;

  // receive side state: SENDs spilled to our memory (oldest), then polled slots, then the CQ
  std::deque<std::vector<std::byte>> spill_;
  std::size_t spill_bytes_ = 0;
  std::vector<Received> ring_;  // polled, not yet consumed (at most recv_count_)
  std::size_t ring_head_ = 0, ring_size_ = 0;
  bool have_current_ = false;   // the SEND being consumed:
  const std::byte* cur_data_ = nullptr;
  std::size_t cur_len_ = 0, cur_off_ = 0;
  std::int64_t cur_slot_ = -1;  // its receive slot, or -1 when it lives in cur_spill_
  std::vector<std::byte> cur_spill_;
  unsigned recv_posted_ = 0;
  std::uint64_t reposted_total_ = 0;  // slots re-posted since the start (the peer's credit)
  std::uint64_t reported_total_ = 0;  // last value written to the peer
  unsigned credit_batch_ = 1;
  std::optional<Error> pending_failure_;  // disconnect/flush seen; thrown once nothing is buffered
  std::vector<std::byte> body_;
  std::uint64_t payload_pending_ = 0;
  std::array<ibv_wc, 32> wc_{};
};

}  // namespace hymig::verbs
