#include "verbs/rc_reliable_channel.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/fd_wait.hpp"
#include "core/socket_address.hpp"
#include "verbs/device_discovery.hpp"

namespace hymig::verbs {

namespace {

constexpr std::uint64_t kCreditWrId = 1ull << 63;  // wr_id of credit WRITEs (data SENDs: the slot)
constexpr std::uint64_t kImageWrId = 1ull << 62;   // wr_id of image WRITEs: | their running count
constexpr unsigned kMaxCreditWrites = 4;           // credit WRITEs in flight at once
constexpr std::size_t kMaxSpillBytes = 64u << 20;  // received bytes kept off the slots, at most

std::string seconds(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) return std::to_string(t.count() / 1000) + " s";
  return std::to_string(t.count()) + " ms";
}

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
  // second loss before the next ACK stalls the QP (measured in the lab at 5 % loss, 8 MiB of 1 MiB
  // messages: 1.1 MB/s at 2^14, 1.7-2.0 at 2^13). A spurious timeout on a slow (TCG) host costs a
  // resend of at most 32 packets, nothing more.
  // Hardware: 2^18 = 1.07 s per try, 7 tries: a peer gone without a word is reported by the device
  // in ~7.5 s, inside the default 10 s io timeout, and a congested fabric does not trip it.
  return is_soft_roce(device) ? 13 : 18;
}

void set_rc_ack_timeout(rdma_cm_id* id) {
  std::uint8_t timeout = rc_ack_timeout_exponent(id->verbs);
  (void)rdma_set_option(id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &timeout, sizeof timeout);  // best effort
}

RcReliableChannel::RcReliableChannel(EventChannelPtr events, CmIdPtr id)
    : ready_("an RC reliable channel"), events_(std::move(events)), id_(std::move(id)) {}

std::unique_ptr<RcReliableChannel> RcReliableChannel::prepare(EventChannelPtr events, CmIdPtr id,
                                                              const RcOptions& options) {
  std::unique_ptr<RcReliableChannel> ch(new RcReliableChannel(std::move(events), std::move(id)));
  ch->setup(options);
  return ch;
}

void RcReliableChannel::setup(const RcOptions& options) {
  ibv_context* ctx = id_->verbs;
  if (!ctx) throw Error(ErrorKind::io, "the RDMA CM id has no device yet (address not resolved)");
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
  const std::string where = "RC connection " + local_address_ + " -> " + peer_address_;

  ibv_device_attr dev{};
  if (const int rc = ibv_query_device(ctx, &dev); rc != 0) throw_errno("cannot query the RDMA device of the " + where, rc);
  const unsigned max_wr = unsigned(std::max(dev.max_qp_wr, 16));
  std::size_t slot_bytes = options.slot_bytes;
  if (slot_bytes == 0) {
    // kSendPackets packets of the port's MTU (the path MTU can only be smaller: then a SEND is a
    // few packets more, still far from rdma_rxe's 64-packet ACK interval).
    ibv_port_attr port{};
    const unsigned mtu = ibv_query_port(ctx, id_->port_num ? id_->port_num : 1, &port) == 0
                             ? mtu_enum_to_bytes(port.active_mtu)
                             : 0;
    slot_bytes = std::size_t(kSendPackets) * (mtu ? mtu : 1024);
  }
  slot_bytes_ = std::clamp<std::size_t>(slot_bytes, 1024, 16u << 20);
  recv_count_ = std::clamp(options.recv_slots, 4u, std::min(65535u, max_wr));
  send_count_ = std::clamp(options.send_slots, 2u, max_wr - kMaxCreditWrites);
  credit_batch_ = std::max(1u, recv_count_ / 4);
  // By default as many WRITEs in flight as SENDs: the same packets in flight (see "Loss").
  write_window_ = std::clamp(options.write_window ? options.write_window : send_count_, 2u, max_wr / 2);
  write_chain_ = std::max(1u, write_window_ / 2);

  pd_.reset(ibv_alloc_pd(ctx));
  if (!pd_) throw_errno("cannot allocate a protection domain for the " + where);
  send_pool_ = allocate_aligned(std::size_t(send_count_) * slot_bytes_);
  recv_pool_ = allocate_aligned(std::size_t(recv_count_) * slot_bytes_);
  credit_word_ = allocate_aligned(64);
  const std::string memlock = " (RLIMIT_MEMLOCK too low? `ulimit -l`)";
  send_mr_.reset(ibv_reg_mr(pd_.get(), send_pool_.get(), std::size_t(send_count_) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE));
  if (!send_mr_) throw_errno("cannot register the send slots of the " + where + memlock);
  recv_mr_.reset(ibv_reg_mr(pd_.get(), recv_pool_.get(), std::size_t(recv_count_) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE));
  if (!recv_mr_) throw_errno("cannot register the receive slots of the " + where + memlock);
  credit_mr_.reset(ibv_reg_mr(pd_.get(), credit_word_.get(), 64, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
  if (!credit_mr_) throw_errno("cannot register the credit word of the " + where + memlock);

  // Room for a completion of every request the send queue can hold (a flush completes them all).
  send_cq_ = std::make_unique<CompletionQueue>(ctx, int(send_count_ + kMaxCreditWrites + write_window_), false,
                                               "RC send CQ of the " + where);
  recv_cq_ = std::make_unique<CompletionQueue>(ctx, int(recv_count_), true, "RC receive CQ of the " + where);
  ready_.watch(recv_cq_->fd());
  ready_.watch(events_->fd);  // a disconnect wakes poll_fd() too

  ibv_qp_init_attr init{};
  init.send_cq = send_cq_->get();
  init.recv_cq = recv_cq_->get();
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = send_count_ + kMaxCreditWrites + write_window_;
  init.cap.max_recv_wr = recv_count_;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  init.cap.max_inline_data = sizeof(std::uint64_t);  // credit WRITEs carry their 8 bytes inline
  if (rdma_create_qp(id_.get(), pd_.get(), &init) != 0) throw_errno("cannot create the queue pair of the " + where);
  qp_ = CmQp(id_.get());

  pend_wr_.resize(send_count_);
  write_wr_.resize(write_chain_);
  write_sge_.resize(write_chain_);
  pend_sge_.resize(send_count_);
  post_batch_ = std::max(1u, send_count_ / 2);
  free_send_slots_.reserve(send_count_);
  for (unsigned i = send_count_; i-- > 0;) free_send_slots_.push_back(i);
  ring_.resize(recv_count_);
  // Every slot posted before the connection exists: the peer may send the moment it is up.
  for (std::uint32_t i = 0; i < recv_count_; ++i) repost(i);
  reposted_total_ = 0;  // the initial posts are the peer's starting credit, not returned credit
}

RcConnectInfo RcReliableChannel::local_info() const {
  RcConnectInfo info;
  info.recv_slots = std::uint16_t(recv_count_);
  info.slot_bytes = std::uint32_t(slot_bytes_);
  info.credit_rkey = credit_mr_->rkey;
  info.credit_addr = reinterpret_cast<std::uint64_t>(credit_word_.get());
  return info;
}

void RcReliableChannel::established(const RcConnectInfo& peer) {
  peer_ = peer;
  chunk_bytes_ = std::min<std::size_t>(slot_bytes_, peer.slot_bytes);
  connected_ = true;
  // The passive side learns the peer's address for sure only now.
  const SocketAddress local = to_socket_address(rdma_get_local_addr(id_.get()));
  const SocketAddress remote = to_socket_address(rdma_get_peer_addr(id_.get()));
  if (local.length) {
    local_host_ = numeric_host(local);
    local_address_ = format_address(local);
  }
  if (remote.length) {
    peer_host_ = numeric_host(remote);
    peer_address_ = format_address(remote);
  }
}

RcReliableChannel::~RcReliableChannel() {
  if (!qp_.get()) return;
  // Tell the peer (DREQ: it sees DISCONNECTED at once instead of retrying into the void), flush
  // everything outstanding, take the flushed completions (bounded), then destroy in order.
  if (connected_ && !disconnected_) rdma_disconnect(id_.get());
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE);
  std::uint64_t outstanding = recv_posted_ + sends_in_flight_ + credit_writes_in_flight_ + (writes_posted_ - writes_done_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
  while (outstanding > 0 && std::chrono::steady_clock::now() < deadline) {
    std::size_t n = 0;
    try {
      n = recv_cq_->poll(wc_) + send_cq_->poll(wc_);
    } catch (const Error&) {
      break;
    }
    if (n == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    outstanding -= std::min<std::uint64_t>(outstanding, n);
  }
}

void RcReliableChannel::set_limits(std::size_t max_body, std::uint64_t max_payload) {
  limits_.max_body = max_body;
  limits_.max_payload = max_payload;
}

void RcReliableChannel::set_io_timeout(std::chrono::milliseconds timeout) {
  io_timeout_ = std::max(timeout, std::chrono::milliseconds(1));
}

void RcReliableChannel::ensure_usable() const {
  if (broken_)
    throw Error(broken_->kind(), "RC connection to " + peer_address_ + " is unusable after an earlier error: " +
                                     broken_->what());
}

template <typename F>
auto RcReliableChannel::guarded(F&& f) -> decltype(f()) {
  ensure_usable();
  try {
    return f();
  } catch (const Error& e) {
    broken_ = e;
    throw;
  } catch (const std::exception& e) {
    broken_ = Error(ErrorKind::io, e.what());
    throw;
  }
}

void RcReliableChannel::throw_if_failed() const {
  if (pending_failure_) throw *pending_failure_;
}

// ---- failures ------------------------------------------------------------------------------

void RcReliableChannel::check_cm_events() {
  while (auto ev = poll_cm_event(events_.get())) {
    if (ev->type == RDMA_CM_EVENT_DISCONNECTED) {
      disconnected_ = true;
      if (!pending_failure_)
        pending_failure_ = Error(ErrorKind::peer_vanished, "RC peer " + peer_address_ +
                                                               " disconnected (its hymig closed the connection or exited)");
    } else if (ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
      disconnected_ = true;
      pending_failure_ = Error(ErrorKind::io, "the RDMA device of the connection to " + peer_address_ + " was removed");
    }
    // TIMEWAIT_EXIT, ADDR_CHANGE and late duplicates change nothing for an established channel.
  }
}

void RcReliableChannel::fail_completion(const ibv_wc& wc, const char* queue) {
  const std::string status = std::string(ibv_wc_status_str(wc.status)) + " (status " + std::to_string(wc.status) + ")";
  switch (wc.status) {
    case IBV_WC_WR_FLUSH_ERR:
      check_cm_events();  // a disconnect explains the flush best
      throw_if_failed();
      throw Error(ErrorKind::peer_vanished, "RC connection to " + peer_address_ + " broke: " + queue +
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
        throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " refused our RDMA WRITE into its image (" + status +
                                             "): the address or key it exposed does not hold the range");
      throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " refused our " + queue + " (" + status +
                                           "): bad credit address or key in its connection data?");
    default:
      throw Error(ErrorKind::io, std::string("RC ") + queue + " to " + peer_address_ + " failed: " + status);
  }
}

// ---- send ----------------------------------------------------------------------------------

void RcReliableChannel::send(std::uint8_t type, std::span<const std::byte> body) { send_frame(type, body, {}); }

void RcReliableChannel::send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                                          std::span<const ConstBuffer> payload) {
  send_frame(type, body, payload);
}

void RcReliableChannel::send_frame(std::uint8_t type, std::span<const std::byte> body,
                                   std::span<const ConstBuffer> payload) {
  std::uint64_t payload_bytes = 0;
  for (const ConstBuffer& part : payload) payload_bytes += part.size;
  if (body.size() > 0xFFFFFFFFu)
    throw Error(ErrorKind::usage, "message body of " + std::to_string(body.size()) + " bytes for " + peer_address_ +
                                      " exceeds the frame limit of 4 GiB - 1; split it");
  guarded([&] {
    throw_if_failed();
    if (!connected_) throw std::logic_error("RcReliableChannel used before the connection was established");
    post_writes();
    const auto header = encode_rc_frame_header(RcFrameHeader{type, std::uint32_t(body.size()), payload_bytes});
    append(header.data(), header.size());
    append(body.data(), body.size());
    for (const ConstBuffer& part : payload) append(part.data, part.size);
    post_current_slot();  // a message ends with its SEND: the next header starts a fresh one
    flush_sends();
    stats_.bytes_sent += header.size() + body.size() + payload_bytes;
    ++stats_.messages_sent;
  });
}

void RcReliableChannel::append(const std::byte* data, std::size_t n) {
  while (n > 0) {
    if (current_slot_ < 0) {
      wait_for_send_room();
      current_slot_ = free_send_slots_.back();
      free_send_slots_.pop_back();
      current_fill_ = 0;
    }
    const std::size_t k = std::min(n, chunk_bytes_ - current_fill_);
    std::memcpy(send_slot(std::uint32_t(current_slot_)) + current_fill_, data, k);
    current_fill_ += k;
    data += k;
    n -= k;
    if (current_fill_ == chunk_bytes_) post_current_slot();
  }
}

void RcReliableChannel::post_current_slot() {
  if (current_slot_ < 0) return;
  const auto slot = std::uint32_t(current_slot_);
  current_slot_ = -1;
  if (current_fill_ == 0) {
    free_send_slots_.push_back(slot);
    return;
  }
  ibv_sge& sge = pend_sge_[pending_];
  sge = ibv_sge{reinterpret_cast<std::uintptr_t>(send_slot(slot)), std::uint32_t(current_fill_), send_mr_->lkey};
  ibv_send_wr& wr = pend_wr_[pending_];
  wr = ibv_send_wr{};
  wr.wr_id = slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  ++pending_;
  ++sends_posted_;  // its credit is spent now
  if (pending_ >= post_batch_) flush_sends();
}

// Posts the SENDs filled so far as one chain: one doorbell (a system call on Soft-RoCE, whose
// kernel then makes all their packets in one go) instead of one per SEND. A message's SENDs go out
// in chains of half the send slots (the other half is filled meanwhile), its end at once, and
// whatever is filled before any wait. Lab, 8 MiB in 1 MiB messages without loss: 14.7 MB/s one
// post per SEND, 16.3 in chains of 4 (one boot, 3 runs each; 2.5 -> 2.9 MB/s at 5 % loss).
void RcReliableChannel::flush_sends() {
  if (pending_ == 0) return;
  for (unsigned i = 0; i + 1 < pending_; ++i) pend_wr_[i].next = &pend_wr_[i + 1];
  pend_wr_[pending_ - 1].next = nullptr;
  note_posted();
  ibv_send_wr* bad = nullptr;
  if (const int rc = ibv_post_send(qp_.get(), pend_wr_.data(), &bad); rc != 0)
    throw_errno("cannot post a SEND to RC peer " + peer_address_ + " (queue pair in error?)", rc);
  sends_in_flight_ += pending_;
  pending_ = 0;
}

void RcReliableChannel::note_posted() {
  if (!awaiting_acks()) ++ack_epoch_;  // a new wait for acknowledgements starts
}

// The clock is read here, in waits only, not per completion (under QEMU TCG every clock read is a
// system call): the io timeout runs from the first wait that saw the latest progress.
void RcReliableChannel::check_acks() {
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
              "RC peer " + peer_address_ + " acknowledged nothing for " + seconds(io_timeout_) + " (" +
                  std::to_string(sends_in_flight_ + credit_writes_in_flight_) +
                  " of our writes outstanding, the device retransmitting in vain): host down, link cut, or its "
                  "process gone");
}

std::uint64_t RcReliableChannel::credits() const {
  // The peer RDMA-WRITEs this word; read it as the device left it.
  const std::uint64_t returned = __atomic_load_n(reinterpret_cast<const std::uint64_t*>(credit_word_.get()), __ATOMIC_ACQUIRE);
  const std::uint64_t limit = peer_.recv_slots + returned;
  return limit > sends_posted_ ? limit - sends_posted_ : 0;
}

void RcReliableChannel::reap_sends() {
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
        free_send_slots_.push_back(std::uint32_t(wc.wr_id));
      }
    }
    if (n < wc_.size()) return;
  }
}

void RcReliableChannel::wait_for_send_room() {
  reap_sends();
  throw_if_failed();
  if (!free_send_slots_.empty() && credits() > 0) return;
  flush_sends();  // what we filled must be on its way before we wait for it
  if (credits() == 0) ++credit_waits_;
  const auto deadline = std::chrono::steady_clock::now() + io_timeout_;
  auto pause = std::chrono::microseconds(0);
  for (;;) {
    // Keep our own receive side moving, so a peer that is itself blocked sending to us can go on
    // and reach the point where it reads (and returns our credit).
    if (credits() == 0) spill_receives();
    reap_sends();
    if (!free_send_slots_.empty() && credits() > 0) return;
    check_cm_events();
    throw_if_failed();
    check_acks();  // no free slot: SENDs in flight, which the peer's device must acknowledge
    if (std::chrono::steady_clock::now() >= deadline && credits() == 0)
      throw Error(ErrorKind::timeout, "RC peer " + peer_address_ + " consumed none of our messages for " +
                                          seconds(io_timeout_) + " — not reading, or the link is down?");
    if (pause.count() == 0) {
      std::this_thread::yield();
      pause = std::chrono::microseconds(20);
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
}

// ---- one-sided writes (RemoteWriter) ----------------------------------------------------------

RemoteImage RcReliableChannel::expose_target(std::span<std::byte> image) {
  if (image.empty()) throw Error(ErrorKind::usage, "expose_target: an empty image");
  if (target_mr_) {
    if (target_mr_->addr == image.data() && target_mr_->length == image.size())
      return RemoteImage{reinterpret_cast<std::uint64_t>(image.data()), target_mr_->rkey, image.size()};
    throw std::logic_error("RcReliableChannel::expose_target: a different image is already exposed");
  }
  target_mr_.reset(ibv_reg_mr(pd_.get(), image.data(), image.size(), IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
  if (!target_mr_)
    throw_errno("cannot register the " + std::to_string(image.size()) + "-byte target image for RDMA writes by " +
                peer_address_ + " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
  return RemoteImage{reinterpret_cast<std::uint64_t>(image.data()), target_mr_->rkey, image.size()};
}

void RcReliableChannel::register_source(std::span<const std::byte> image) {
  if (image.empty()) throw Error(ErrorKind::usage, "register_source: an empty image");
  if (source_mr_) {
    if (source_base_ == image.data() && source_bytes_ == image.size()) return;
    throw std::logic_error("RcReliableChannel::register_source: a different image is already registered");
  }
  auto* base = const_cast<std::byte*>(image.data());
  // Local write access makes the kernel pin the pages a private mapping really uses (without it an
  // untouched page would pin the shared zero page, and later writes to it would go elsewhere); a
  // read-only (file) mapping takes no write access, and its page-cache pages are the real ones.
  source_mr_.reset(ibv_reg_mr(pd_.get(), base, image.size(), IBV_ACCESS_LOCAL_WRITE));
  if (!source_mr_) source_mr_.reset(ibv_reg_mr(pd_.get(), base, image.size(), 0));
  if (!source_mr_)
    throw_errno("cannot register the " + std::to_string(image.size()) + "-byte source image for RDMA writes to " +
                peer_address_ + " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
  source_base_ = image.data();
  source_bytes_ = image.size();
}

void RcReliableChannel::set_remote_target(const RemoteImage& remote) {
  remote_ = remote;
  have_remote_ = true;
}

void RcReliableChannel::write_remote(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) {
  if (!source_mr_ || !have_remote_)
    throw std::logic_error("RcReliableChannel::write_remote before register_source and set_remote_target");
  if (local_offset > source_bytes_ || bytes > source_bytes_ - local_offset)
    throw Error(ErrorKind::usage, "write_remote: bytes " + std::to_string(local_offset) + "+" + std::to_string(bytes) +
                                      " outside the " + std::to_string(source_bytes_) + "-byte source region");
  if (remote_offset > remote_.bytes || bytes > remote_.bytes - remote_offset)
    throw Error(ErrorKind::protocol, "write_remote: bytes " + std::to_string(remote_offset) + "+" + std::to_string(bytes) +
                                         " outside the " + std::to_string(remote_.bytes) + "-byte window RC peer " +
                                         peer_address_ + " exposed");
  guarded([&] {
    throw_if_failed();
    if (!connected_) throw std::logic_error("RcReliableChannel used before the connection was established");
    while (bytes > 0) {
      const std::size_t k = std::min(bytes, chunk_bytes_);
      queue_write(local_offset, remote_offset, k);
      local_offset += k;
      remote_offset += k;
      bytes -= k;
    }
  });
}

// Adds a range (at most one SEND's size) to the chain being filled: merged into the previous WRITE
// when it continues it on both sides and stays within a SEND's size, else a new request.
void RcReliableChannel::queue_write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) {
  write_bytes_ += bytes;
  const auto addr = reinterpret_cast<std::uintptr_t>(source_base_) + local_offset;
  if (write_pending_ > 0) {
    ibv_sge& last = write_sge_[write_pending_ - 1];
    ibv_send_wr& last_wr = write_wr_[write_pending_ - 1];
    if (last.addr + last.length == addr && last_wr.wr.rdma.remote_addr + last.length == remote_.address + remote_offset &&
        last.length + bytes <= chunk_bytes_) {
      last.length += std::uint32_t(bytes);
      return;
    }
  }
  if (write_pending_ == write_chain_) post_writes();
  wait_for_write_room();
  ibv_sge& sge = write_sge_[write_pending_];
  sge = ibv_sge{addr, std::uint32_t(bytes), source_mr_->lkey};
  ibv_send_wr& wr = write_wr_[write_pending_];
  wr = ibv_send_wr{};
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.wr.rdma.remote_addr = remote_.address + remote_offset;
  wr.wr.rdma.rkey = remote_.key;
  ++write_pending_;
}

void RcReliableChannel::flush_writes() {
  guarded([&] {
    throw_if_failed();
    post_writes();
  });
}

void RcReliableChannel::wait_writes() {
  guarded([&] {
    throw_if_failed();
    post_writes();
    auto pause = std::chrono::microseconds(0);
    for (;;) {
      reap_sends();
      if (writes_done_ == writes_posted_) return;
      check_cm_events();
      throw_if_failed();
      check_acks();
      if (pause.count() == 0) {
        std::this_thread::yield();
        pause = std::chrono::microseconds(20);
      } else {
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::microseconds(1000));
      }
    }
  });
}

// Posts the filled chain with one doorbell; its last request is signalled, so every posted WRITE
// is followed by a completion that covers it.
void RcReliableChannel::post_writes() {
  if (write_pending_ == 0) return;
  for (unsigned i = 0; i < write_pending_; ++i) {
    ibv_send_wr& wr = write_wr_[i];
    wr.wr_id = kImageWrId | (writes_posted_ + i + 1);
    wr.send_flags = i + 1 == write_pending_ ? IBV_SEND_SIGNALED : 0;
    wr.next = i + 1 < write_pending_ ? &write_wr_[i + 1] : nullptr;
  }
  note_posted();
  ibv_send_wr* bad = nullptr;
  if (const int rc = ibv_post_send(qp_.get(), write_wr_.data(), &bad); rc != 0)
    throw_errno("cannot post an RDMA WRITE to RC peer " + peer_address_ + " (queue pair in error?)", rc);
  writes_posted_ += write_pending_;
  write_pending_ = 0;
}

// Room for one more WRITE in the window (posted and not known complete, plus the chain being
// filled). Waits in user space like wait_for_send_room(); a peer that stops acknowledging is
// reported by check_acks() within the io timeout.
void RcReliableChannel::wait_for_write_room() {
  auto room = [&] { return writes_posted_ - writes_done_ + write_pending_ < write_window_; };
  reap_sends();
  if (room()) return;
  post_writes();  // what we filled must be on its way before we wait for it
  auto pause = std::chrono::microseconds(0);
  for (;;) {
    reap_sends();
    if (room()) return;
    check_cm_events();
    throw_if_failed();
    check_acks();
    if (pause.count() == 0) {
      std::this_thread::yield();
      pause = std::chrono::microseconds(20);
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(1000));
    }
  }
}

// ---- credits -------------------------------------------------------------------------------

void RcReliableChannel::repost(std::uint32_t slot) {
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(recv_slot(slot)), std::uint32_t(slot_bytes_), recv_mr_->lkey};
  ibv_recv_wr wr{};
  wr.wr_id = slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (const int rc = ibv_post_recv(qp_.get(), &wr, &bad); rc != 0)
    throw_errno("cannot re-post a receive slot for RC peer " + peer_address_ + " (queue pair in error?)", rc);
  ++recv_posted_;
  ++reposted_total_;
  return_credits(false);
}

// Writes our running count of re-posted slots into the peer's credit word: one inline RDMA WRITE,
// no receive WQE consumed on either side.
void RcReliableChannel::return_credits(bool force) {
  if (!connected_ || reposted_total_ == reported_total_) return;
  if (!force && reposted_total_ - reported_total_ < credit_batch_) return;
  while (credit_writes_in_flight_ >= kMaxCreditWrites) {
    reap_sends();
    if (credit_writes_in_flight_ < kMaxCreditWrites) break;
    check_cm_events();
    throw_if_failed();
    check_acks();
    std::this_thread::yield();
  }
  const std::uint64_t value = reposted_total_;
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(&value), sizeof value, 0};  // inline: copied at post
  ibv_send_wr wr{};
  wr.wr_id = kCreditWrId;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
  wr.wr.rdma.remote_addr = peer_.credit_addr;
  wr.wr.rdma.rkey = peer_.credit_rkey;
  ibv_send_wr* bad = nullptr;
  if (const int rc = ibv_post_send(qp_.get(), &wr, &bad); rc != 0)
    throw_errno("cannot post a credit write to RC peer " + peer_address_ + " (queue pair in error?)", rc);
  note_posted();
  ++credit_writes_in_flight_;
  reported_total_ = value;
}

// ---- receive -------------------------------------------------------------------------------

void RcReliableChannel::poll_receives() {
  for (;;) {
    const std::size_t n = recv_cq_->poll(wc_);
    for (std::size_t i = 0; i < n; ++i) {
      const ibv_wc& wc = wc_[i];
      --recv_posted_;
      if (wc.status != IBV_WC_SUCCESS) {
        // Keep what arrived before: the failure is thrown once those bytes are handed out.
        if (!pending_failure_) {
          try {
            fail_completion(wc, "receive");
          } catch (const Error& e) {
            pending_failure_ = e;
          }
        }
        continue;
      }
      ring_[(ring_head_ + ring_size_) % ring_.size()] = Received{std::uint32_t(wc.wr_id), wc.byte_len};
      ++ring_size_;
    }
    if (n < wc_.size()) return;
  }
}

bool RcReliableChannel::has_buffered() const {
  return !spill_.empty() || ring_size_ > 0 || (have_current_ && cur_off_ < cur_len_);
}

void RcReliableChannel::spill_receives() {
  poll_receives();
  if (have_current_ && cur_slot_ >= 0 && spill_bytes_ < kMaxSpillBytes) {
    const auto slot = std::uint32_t(cur_slot_);
    cur_spill_.assign(cur_data_ + cur_off_, cur_data_ + cur_len_);
    cur_data_ = cur_spill_.data();
    cur_len_ = cur_spill_.size();
    cur_off_ = 0;
    cur_slot_ = -1;
    repost(slot);
  }
  while (ring_size_ > 0 && spill_bytes_ < kMaxSpillBytes) {
    const Received r = ring_[ring_head_];
    ring_head_ = (ring_head_ + 1) % ring_.size();
    --ring_size_;
    spill_.emplace_back(recv_slot(r.slot), recv_slot(r.slot) + r.len);
    spill_bytes_ += r.len;
    repost(r.slot);
  }
  return_credits(true);
  ready_.set_held(has_buffered());  // what was polled here no completion event will announce again
}

// poll_fd() readable exactly when a receive would find something. Completions taken off the CQ
// without waiting leave the completion event they raised unread on the armed CQ's channel: poll_fd
// would wake for messages already handed out (a caller that then receives with no wait gets
// nothing). So when nothing is buffered: read that event, re-arm, and look once more.
void RcReliableChannel::settle_ready() {
  if (!has_buffered() && recv_cq_->armed() && recv_cq_->consume_event()) {
    poll_receives();
    if (ring_size_ == 0 && recv_cq_->arm()) poll_receives();
  }
  ready_.set_held(has_buffered() || pending_failure_);  // a failure taken off the CQ is news too
}

// Makes the next SEND current; false if none arrived within `timeout`.
bool RcReliableChannel::next_send(std::chrono::nanoseconds timeout) {
  // receive(0) (an event loop's poll) reads no clock: under QEMU TCG that is a system call.
  std::chrono::steady_clock::time_point deadline{};
  if (timeout.count() > 0) deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!spill_.empty()) {
      cur_spill_ = std::move(spill_.front());
      spill_.pop_front();
      spill_bytes_ -= cur_spill_.size();
      cur_data_ = cur_spill_.data();
      cur_len_ = cur_spill_.size();
      cur_off_ = 0;
      cur_slot_ = -1;
      have_current_ = true;
      return true;
    }
    if (ring_size_ > 0) {
      const Received r = ring_[ring_head_];
      ring_head_ = (ring_head_ + 1) % ring_.size();
      --ring_size_;
      cur_data_ = recv_slot(r.slot);
      cur_len_ = r.len;
      cur_off_ = 0;
      cur_slot_ = r.slot;
      have_current_ = true;
      return true;
    }
    poll_receives();
    if (ring_size_ > 0) continue;
    throw_if_failed();
    if (recv_cq_->arm()) continue;  // armed just now: look once more before sleeping
    check_cm_events();
    if (pending_failure_) continue;  // take whatever completed before it, then throw
    check_acks();  // nothing buffered to hand out: a peer gone silent is the answer
    if (timeout.count() <= 0) return false;
    const auto now = std::chrono::steady_clock::now();
    auto left = deadline - now;
    if (left <= left.zero()) return false;
    // Send completions wake nobody: while some are due, look again when the io timeout would end.
    if (awaiting_acks()) left = std::min<std::chrono::steady_clock::duration>(left, last_ack_ + io_timeout_ - now + std::chrono::milliseconds(1));
    ready_.set_held(false);
    if (wait_fd(ready_.fd(), POLLIN, left)) recv_cq_->consume_event();
  }
}

void RcReliableChannel::release_current() {
  if (!have_current_) return;
  have_current_ = false;
  if (cur_slot_ >= 0) repost(std::uint32_t(cur_slot_));
  cur_slot_ = -1;
}

// Copies (or with dst == nullptr skips) the next n bytes of the stream; each stall is bounded by
// the io timeout. Slots go back to the device the moment they are emptied.
void RcReliableChannel::read_stream(std::byte* dst, std::uint64_t n, const char* what) {
  while (n > 0) {
    if (!have_current_) {
      if (!next_send(io_timeout_))
        throw Error(ErrorKind::timeout, "RC peer " + peer_address_ + " sent nothing for " + seconds(io_timeout_) +
                                            " in the middle of a " + what + " — link down or peer stuck?");
    }
    const std::size_t k = std::size_t(std::min<std::uint64_t>(n, cur_len_ - cur_off_));
    if (dst) {
      std::memcpy(dst, cur_data_ + cur_off_, k);
      dst += k;
    }
    cur_off_ += k;
    n -= k;
    stats_.bytes_received += k;
    if (cur_off_ == cur_len_) release_current();
  }
}

void RcReliableChannel::end_of_message() {
  if (have_current_ && cur_off_ < cur_len_)
    throw Error(ErrorKind::protocol, "RC peer " + peer_address_ + " sent " + std::to_string(cur_len_ - cur_off_) +
                                         " bytes after the end of a message in the same SEND: the stream is out of step");
  release_current();
}

std::optional<Message> RcReliableChannel::receive(std::chrono::milliseconds timeout) {
  if (payload_pending_ > 0)
    throw std::logic_error("RcReliableChannel::receive: the previous message's payload (" +
                           std::to_string(payload_pending_) + " bytes) was neither received nor discarded");
  return guarded([&] {
    auto m = receive_frame(timeout);
    settle_ready();
    return m;
  });
}

std::optional<Message> RcReliableChannel::receive_frame(std::chrono::milliseconds timeout) {
  if (!next_send(timeout)) return std::nullopt;
  // The header opens a SEND and lies wholly inside it (a SEND is at least 1 KiB).
  const RcFrameHeader h = [&] {
    try {
      return decode_rc_frame_header(std::span<const std::byte>(cur_data_, cur_len_), limits_);
    } catch (const Error& e) {
      throw Error(e.kind(), std::string(e.what()) + " (from " + peer_address_ + ")");
    }
  }();
  cur_off_ = kRcFrameHeaderBytes;
  stats_.bytes_received += kRcFrameHeaderBytes;
  if (cur_off_ == cur_len_) release_current();
  if (body_.size() < h.body_len) body_.resize(h.body_len);  // <= limits_.max_body, checked above
  read_stream(body_.data(), h.body_len, "message body");
  payload_pending_ = h.payload_len;
  if (h.payload_len == 0) end_of_message();
  ++stats_.messages_received;
  return Message{h.type, std::span<const std::byte>(body_.data(), h.body_len), h.payload_len};
}

void RcReliableChannel::receive_payload(std::span<const MutableBuffer> dst) {
  std::uint64_t total = 0;
  for (const MutableBuffer& b : dst) total += b.size;
  if (total != payload_pending_)
    throw std::logic_error("RcReliableChannel::receive_payload: buffers hold " + std::to_string(total) +
                           " bytes but the pending payload is " + std::to_string(payload_pending_));
  if (total == 0) return;
  guarded([&] {
    for (const MutableBuffer& b : dst) read_stream(b.data, b.size, "payload");
    payload_pending_ = 0;
    end_of_message();
    settle_ready();
  });
}

void RcReliableChannel::discard_payload() {
  if (payload_pending_ == 0) return;
  guarded([&] {
    read_stream(nullptr, payload_pending_, "payload");
    payload_pending_ = 0;
    end_of_message();
    settle_ready();
  });
}

}  // namespace hymig::verbs
