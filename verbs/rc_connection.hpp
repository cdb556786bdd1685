// The connection under an RC channel: the rdma_cm id and its event channel, the protection domain,
// the two completion queues and the queue pair; what the peer's CM events and failed completions
// mean; and the send queue's accounting, which every part of the channel posts into (message
// SENDs, credit WRITEs, image WRITEs) and whose silence for an io timeout means the peer is gone.
// The parts on top: rc_message_stream.hpp, rc_credit_window.hpp, rc_image_writer.hpp.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/error.hpp"
#include "verbs/cm_events.hpp"
#include "verbs/completion_queue.hpp"
#include "verbs/rc_wire.hpp"
#include "verbs/verbs_domain.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

// retry_count of the QPs: 7 (docs/rc-channel.md, "Loss").
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

// Who is told when a message SEND completes: its send slot is free again.
class SendSlotSink {
 public:
  virtual void send_slot_free(std::uint32_t slot) = 0;

 protected:
  ~SendSlotSink() = default;
};

// Sizes of the send queue, decided by the channel from the device's limits.
struct RcQueueSizes {
  unsigned send_slots = 0;     // message SENDs in flight
  unsigned credit_writes = 0;  // credit WRITEs in flight
  unsigned image_writes = 0;   // image WRITEs in flight
  unsigned recv_slots = 0;
  std::size_t slot_bytes = 0;  // receive-slot size (for the error a too-long SEND makes)
};

class RcConnection {
 public:
  // wr_id tags on the send queue; a message SEND's wr_id is its slot.
  static constexpr std::uint64_t kCreditWrId = 1ull << 63;
  static constexpr std::uint64_t kImageWrId = 1ull << 62;  // | the WRITE's running count

  // Takes a cm_id whose device is known (route resolved, or a connect request) and its own event
  // channel. Throws Error{io} when it has no device.
  RcConnection(EventChannelPtr events, CmIdPtr id);
  // Takes the device's shared PD (verbs_domain.hpp), then (open_queues) makes the CQs and the QP.
  // The parts register their memory between.
  void open_pd(DeviceScope* devices);
  void open_queues(const RcQueueSizes& sizes);
  // Once RDMA_CM_EVENT_ESTABLISHED is in (the passive side learns the peer's address only now).
  void established();
  // rdma_disconnect, QP to ERR, a bounded drain of `outstanding_receives` and everything on the
  // send queue, then the QP destroyed: never waits for the peer. The rest goes with the object.
  void close(std::uint64_t outstanding_receives);

  ibv_context* device() const { return id_->verbs; }
  ibv_pd* pd() const { return domain_->pd(); }
  VerbsDomain& domain() const { return *domain_; }
  ibv_qp* qp() const { return qp_.get(); }
  CompletionQueue& recv_cq() { return *recv_cq_; }
  rdma_cm_id* cm_id() const { return id_.get(); }
  rdma_event_channel* event_channel() const { return events_.get(); }
  int event_fd() const { return events_->fd; }
  bool connected() const { return connected_; }
  const std::string& where() const { return where_; }  // "RC connection A -> B", for setup errors
  std::string local_host() const { return local_host_; }
  std::string peer_host() const { return peer_host_; }
  std::string local_address() const { return local_address_; }
  std::string peer_address() const { return peer_address_; }
  std::chrono::milliseconds io_timeout() const { return io_timeout_; }
  void set_io_timeout(std::chrono::milliseconds timeout);

  // ---- failures: a disconnect or a flushed/failed completion, kept until the parts have handed
  // out what arrived before it.
  void check_cm_events();
  [[noreturn]] void fail_completion(const ibv_wc& wc, const char* queue);
  // Records a failed receive completion (the first one) instead of throwing it.
  void note_failed_receive(const ibv_wc& wc);
  bool failed() const { return pending_failure_.has_value(); }
  void throw_if_failed() const {
    if (pending_failure_) throw *pending_failure_;
  }

  // ---- the send queue. Every post goes through here, so the watchdog sees all of it.
  void post(ibv_send_wr* chain, const char* what);
  void add_sends(unsigned n) { sends_in_flight_ += n; }
  void add_credit_write() { ++credit_writes_in_flight_; }
  void add_image_writes(unsigned n) { writes_posted_ += n; }
  unsigned credit_writes_in_flight() const { return credit_writes_in_flight_; }
  std::uint64_t image_writes_posted() const { return writes_posted_; }
  std::uint64_t image_writes_done() const { return writes_done_; }
  // Takes every send-queue completion: frees SEND slots through `sink`, counts WRITEs, throws for
  // a failed one.
  void reap_sends();
  void set_send_slot_sink(SendSlotSink* sink) { sink_ = sink; }
  bool awaiting_acks() const {
    return sends_in_flight_ + credit_writes_in_flight_ > 0 || writes_posted_ > writes_done_;
  }
  // Error{peer_vanished} once awaiting_acks() for the io timeout without a completion.
  void check_acks();
  // Waits in user space until ready() (evaluated after taking the send queue's completions), each
  // round minding CM events, failures and the watchdog, so a peer gone is an error within the io
  // timeout.
  template <typename Ready>
  void wait_until(Ready&& ready);
  // When check_acks() would next find the io timeout over (for a wait on the receive side).
  std::chrono::steady_clock::time_point ack_deadline() const { return last_ack_ + io_timeout_; }

 private:
  void learn_addresses();

  std::string local_host_, peer_host_, local_address_, peer_address_, where_;
  std::chrono::milliseconds io_timeout_{10'000};
  std::size_t slot_bytes_ = 0;
  bool connected_ = false;
  bool disconnected_ = false;
  std::optional<Error> pending_failure_;

  SendSlotSink* sink_ = nullptr;
  unsigned sends_in_flight_ = 0;
  unsigned credit_writes_in_flight_ = 0;
  std::uint64_t writes_posted_ = 0;  // image WRITE requests ever posted
  std::uint64_t writes_done_ = 0;    // of those, known complete (up to the last signalled one seen)
  std::uint64_t ack_epoch_ = 0;      // bumped by every reaped completion and the first post after none
  std::uint64_t checked_epoch_ = 0;  // the epoch check_acks() last saw, at last_ack_
  std::chrono::steady_clock::time_point last_ack_{};
  std::array<ibv_wc, 32> wc_{};

  // Declared in creation order; destroyed in reverse: QP, CQs, the device's PD (if no other queue
  // pair holds it), cm_id, event channel. The parts' memory registrations go before the PD: the
  // channel declares this connection first.
  EventChannelPtr events_;
  CmIdPtr id_;
  std::shared_ptr<VerbsDomain> domain_;
  std::unique_ptr<CompletionQueue> send_cq_;
  std::unique_ptr<CompletionQueue> recv_cq_;
  CmQp qp_;
};

// Waits without a system call at first, then sleeping 20 us doubling to 1 ms.
class Backoff {
 public:
  void pause();

 private:
  std::chrono::microseconds pause_{0};
};

template <typename Ready>
void RcConnection::wait_until(Ready&& ready) {
  Backoff backoff;
  for (;;) {
    reap_sends();
    if (ready()) return;
    check_cm_events();
    throw_if_failed();
    check_acks();
    backoff.pause();
  }
}

}  // namespace hymig::verbs
