#include "verbs/rc_connection.hpp"

#include <algorithm>
#include <cstring>
#include <thread>

#include "core/socket_address.hpp"
#include "core/units.hpp"

namespace hymig::verbs {

namespace {

SocketAddress to_socket_address(const sockaddr* sa) {
  SocketAddress a;
  if (!sa) return a;
  const socklen_t len = sa->sa_family == AF_INET    ? sizeof(sockaddr_in)
                        : sa->sa_family == AF_INET6 ? sizeof(sockaddr_in6)
                                                    : 0;
  std::memcpy(&a.storage, sa, len);
  a.length = len;
  return a;
}

}  // namespace

rdma_conn_param rc_conn_param(const std::array<std::byte, kRcConnectBytes>& info) {
  rdma_conn_param p{};
  p.private_data = info.data();
  p.private_data_len = std::uint8_t(info.size());
  p.responder_resources = 0;  // no RDMA READ or atomics: credits are WRITEs
  p.initiator_depth = 0;
  // 7: on rdma_rxe "retry forever", so random loss never exhausts it (check_acks() finds a peer
  // that is gone); on hardware 7 retries, the most there is.
  p.retry_count = std::uint8_t(kRcRetryCount);
  p.rnr_retry_count = 3;  // credits make RNR impossible; if it ever happens, an error, not a stall
  return p;
}

bool is_soft_roce(ibv_context* device) {
  ibv_device_attr attr{};
  return device && ibv_query_device(device, &attr) == 0 && attr.vendor_id == 0xFFFFFF;  // RXE_VENDOR_ID
}

std::uint8_t rc_ack_timeout_exponent(ibv_context* device) {
  // Soft-RoCE: 4.096 us * 2^13 = 33.6 ms. Its retries never run out, so this only sets how long a
  // second loss before the next ACK stalls the QP (docs/rc-channel.md has the lab figures). A
  // spurious timeout on a slow (TCG) host costs a resend of at most 32 packets, nothing more.
  // Hardware: 2^18 = 1.07 s per try, 7 tries: a peer gone without a word is reported by the device
  // in ~7.5 s, inside the default 10 s io timeout, and a congested fabric does not trip it.
  return is_soft_roce(device) ? 13 : 18;
}

void set_rc_ack_timeout(rdma_cm_id* id) {
  std::uint8_t timeout = rc_ack_timeout_exponent(id->verbs);
  (void)rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);  // best effort
}

void Backoff::pause() {
  if (pause_.count() == 0) {
    std::this_thread::yield();
    pause_ = std::chrono::microseconds(20);
  } else {
    std::this_thread::sleep_for(pause_);
    pause_ = std::min(pause_ * 2, std::chrono::microseconds(1000));
  }
}

RcConnection::RcConnection(EventChannelPtr events, CmIdPtr id) : events_(std::move(events)), id_(std::move(id)) {
  if (!id_->verbs) throw Error(ErrorKind::io, "the RDMA CM id has no device yet (address not resolved)");
  learn_addresses();
}

void RcConnection::learn_addresses() {
  const SocketAddress local = to_socket_address(rdma_get_local_addr(id_.get()));
  const SocketAddress peer = to_socket_address(rdma_get_peer_addr(id_.get()));
  if (local.length) {
    local_host_ = numeric_host(local);
    local_address_ = format_address(local);
  }
  if (peer.length) {
    peer_host_ = numeric_host(peer);
    peer_address_ = format_address(peer);
  }
  where_ = "RC connection " + local_address_ + " -> " + peer_address_;
}

void RcConnection::open_pd(DeviceScope* devices) { domain_ = domain_of_context(devices, id_->verbs); }

void RcConnection::open_queues(const RcQueueSizes& sizes) {
  slot_bytes_ = sizes.slot_bytes;
  const unsigned send_wr = sizes.send_slots + sizes.credit_writes + sizes.image_writes;
  // Room for a completion of every request the send queue can hold (a flush completes them all).
  send_cq_ = std::make_unique<CompletionQueue>(id_->verbs, int(send_wr), false, "RC send CQ of the " + where_);
  recv_cq_ =
      std::make_unique<CompletionQueue>(id_->verbs, int(sizes.recv_slots), true, "RC receive CQ of the " + where_);

  ibv_qp_init_attr init{};
  init.send_cq = send_cq_->get();
  init.recv_cq = recv_cq_->get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = send_wr;
  init.cap.max_recv_wr = sizes.recv_slots;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = sizeof(std::uint64_t);  // credit WRITEs carry their 8 bytes inline
  if (rdma_create_qp(id_.get(), domain_->pd(), &init) != 0)
    throw_errno("cannot create the queue pair of the " + where_);
  qp_ = CmQp(id_.get());
}

void RcConnection::established() {
  connected_ = true;
  learn_addresses();
}

void RcConnection::set_io_timeout(std::chrono::milliseconds timeout) {
  io_timeout_ = std::max(timeout, std::chrono::milliseconds(1));
}

void RcConnection::close(std::uint64_t outstanding_receives) {
  if (!qp_.get()) return;
  // Tell the peer (DREQ: it sees DISCONNECTED at once instead of retrying into the void), flush
  // everything outstanding, take the flushed completions (bounded), then destroy the QP.
  if (connected_ && !disconnected_) rdma_disconnect(id_.get());
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE);
  drain_flushed(*recv_cq_, *send_cq_,
                outstanding_receives + sends_in_flight_ + credit_writes_in_flight_ + (writes_posted_ - writes_done_),
                wc_);
  qp_.reset();
}

// ---- failures ------------------------------------------------------------------------------

void RcConnection::check_cm_events() {
  while (auto ev = poll_cm_event(events_.get())) {
    if (ev->type == RDMA_CM_EVENT_DISCONNECTED) {
      disconnected_ = true;
      if (!pending_failure_)
        pending_failure_ =
            Error(ErrorKind::peer_vanished,
                  "RC peer " + peer_address_ + " disconnected (its hymig closed the connection or exited)");
    } else if (ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
      disconnected_ = true;
      pending_failure_ = Error(ErrorKind::io, "the RDMA device of the connection to " + peer_address_ + " was removed");
    }
    // TIMEWAIT_EXIT, ADDR_CHANGE and late duplicates change nothing for an established channel.
  }
}

void RcConnection::fail_completion(const ibv_wc& wc, const char* queue) {
  const std::string status = std::string(ibv_wc_status_str(wc.status)) + " (status " + std::to_string(wc.status) + ")";
  switch (wc.status) {
    case IBV_WC_WR_FLUSH_ERR:
      check_cm_events();  // a disconnect explains the flush best
      throw_if_failed();
      throw Error(ErrorKind::peer_vanished,
                  "RC connection to " + peer_address_ + " broke: " + queue +
                      " flushed, the queue pair is in the error state (connection torn down)");
    case IBV_WC_RETRY_EXC_ERR:
      throw Error(ErrorKind::peer_vanished, "RC peer " + peer_address_ + " stopped acknowledging (" + status +
                                                "): host down, link cut, or its process gone");
    case IBV_WC_RNR_RETRY_EXC_ERR:
      throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " had no receive slot for our " + queue + " (" +
                                           status + "): it broke the credit protocol");
    case IBV_WC_LOC_LEN_ERR:
      throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " sent a message larger than our " +
                                           std::to_string(slot_bytes_) + "-byte receive slots (" + status + ")");
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
      if (std::strcmp(queue, "image write") == 0)
        throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " refused our RDMA WRITE into its image (" +
                                             status + "): the address or key it exposed does not hold the range");
      throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " refused our " + queue + " (" + status +
                                           "): bad credit address or key in its connection data?");
    default: throw Error(ErrorKind::io, std::string("RC ") + queue + " to " + peer_address_ + " failed: " + status);
  }
}

void RcConnection::note_failed_receive(const ibv_wc& wc) {
  if (pending_failure_) return;
  try {
    fail_completion(wc, "receive");
  } catch (const Error& e) {
    pending_failure_ = e;
  }
}

// ---- the send queue --------------------------------------------------------------------------

void RcConnection::post(ibv_send_wr* chain, const char* what) {
  if (!awaiting_acks()) ++ack_epoch_;  // a new wait for acknowledgements starts
  ibv_send_wr* bad = nullptr;
  if (const int rc = ibv_post_send(qp_.get(), chain, &bad); rc != 0)
    throw_errno(std::string("cannot post ") + what + " to RC peer " + peer_address_ + " (queue pair in error?)", rc);
}

void RcConnection::reap_sends() {
  for (;;) {
    const std::size_t n = send_cq_->poll(wc_);
    if (n > 0) ++ack_epoch_;
    for (std::size_t i = 0; i < n; ++i) {
      const ibv_wc& wc = wc_[i];
      if (wc.wr_id & kImageWrId) {
        // A WRITE's completion covers every WRITE posted before it (completions come in order).
        if (wc.status != IBV_WC_SUCCESS) fail_completion(wc, "image write");
        writes_done_ = std::max(writes_done_, wc.wr_id & ~kImageWrId);
        continue;
      }
      const bool credit = (wc.wr_id & kCreditWrId) != 0;
      if (wc.status != IBV_WC_SUCCESS) fail_completion(wc, credit ? "credit write" : "send");
      if (credit) {
        --credit_writes_in_flight_;
      } else {
        --sends_in_flight_;
        if (sink_) sink_->send_slot_free(std::uint32_t(wc.wr_id));
      }
    }
    if (n < wc_.size()) return;
  }
}

// The clock is read here, in waits only, not per completion (under QEMU TCG every clock read is a
// system call): the io timeout runs from the first wait that saw the latest progress.
void RcConnection::check_acks() {
  if (!awaiting_acks()) return;
  reap_sends();
  if (!awaiting_acks()) return;
  const auto now = std::chrono::steady_clock::now();
  if (ack_epoch_ != checked_epoch_) {
    checked_epoch_ = ack_epoch_;
    last_ack_ = now;
    return;
  }
  if (now - last_ack_ < io_timeout_) return;
  check_cm_events();  // a disconnect explains it best
  throw_if_failed();
  throw Error(ErrorKind::peer_vanished,
              "RC peer " + peer_address_ + " acknowledged nothing for " + format_timeout(io_timeout_) + " (" +
                  std::to_string(sends_in_flight_ + credit_writes_in_flight_) +
                  " of our writes outstanding, the device retransmitting in vain): host down, link cut, or its "
                  "process gone");
}

}  // namespace hymig::verbs
