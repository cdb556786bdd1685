#include "verbs/rc_message_stream.hpp"

#include <poll.h>

#include <algorithm>
#include <cstring>

#include "core/fd_wait.hpp"
#include "core/units.hpp"
#include "verbs/rc_wire.hpp"

namespace hymig::verbs {

namespace {

constexpr std::size_t kMaxSpillBytes = 64u << 20;  // received bytes kept off the slots, at most

}  // namespace

RcMessageStream::RcMessageStream(RcConnection& connection, RcCreditWindow& credits, unsigned send_slots,
                                 unsigned recv_slots, std::size_t slot_bytes)
    : connection_(connection),
      credits_(credits),
      ready_("an RC reliable channel"),
      slot_bytes_(slot_bytes),
      recv_count_(recv_slots),
      send_count_(send_slots) {
  send_pool_ = allocate_aligned(std::size_t(send_count_) * slot_bytes_);
  recv_pool_ = allocate_aligned(std::size_t(recv_count_) * slot_bytes_);
  const std::string memlock = " (RLIMIT_MEMLOCK too low? `ulimit -l`)";
  send_mr_.reset(
      ibv_reg_mr(connection_.pd(), send_pool_.get(), std::size_t(send_count_) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE));
  if (!send_mr_) throw_errno("cannot register the send slots of the " + connection_.where() + memlock);
  recv_mr_.reset(
      ibv_reg_mr(connection_.pd(), recv_pool_.get(), std::size_t(recv_count_) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE));
  if (!recv_mr_) throw_errno("cannot register the receive slots of the " + connection_.where() + memlock);

  pend_wr_.resize(send_count_);
  pend_sge_.resize(send_count_);
  post_batch_ = std::max(1u, send_count_ / 2);
  free_send_slots_.reserve(send_count_);
  for (unsigned i = send_count_; i-- > 0;) free_send_slots_.push_back(i);
  ring_.resize(recv_count_);
  connection_.set_send_slot_sink(this);
}

void RcMessageStream::post_all_receives() {
  ready_.watch(connection_.recv_cq().fd());
  ready_.watch(connection_.event_fd());  // a disconnect wakes poll_fd() too
  for (std::uint32_t i = 0; i < recv_count_; ++i) repost(i);
  credits_.start();  // the initial posts are the peer's starting credit, not returned credit
}

void RcMessageStream::describe(RcConnectInfo& info) const {
  info.recv_slots = std::uint16_t(recv_count_);
  info.slot_bytes = std::uint32_t(slot_bytes_);
}

void RcMessageStream::established(const RcConnectInfo& peer) {
  chunk_bytes_ = std::min<std::size_t>(slot_bytes_, peer.slot_bytes);
}

// ---- send ----------------------------------------------------------------------------------

void RcMessageStream::send(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload) {
  std::uint64_t payload_bytes = 0;
  for (const ConstBuffer& part : payload) payload_bytes += part.size;
  const auto header = encode_rc_frame_header(RcFrameHeader{type, std::uint32_t(body.size()), payload_bytes});
  append(header.data(), header.size());
  append(body.data(), body.size());
  for (const ConstBuffer& part : payload) append(part.data, part.size);
  post_current_slot();  // a message ends with its SEND: the next header starts a fresh one
  flush_sends();
  stats_.bytes_sent += header.size() + body.size() + payload_bytes;
  ++stats_.messages_sent;
}

void RcMessageStream::append(const std::byte* data, std::size_t n) {
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

void RcMessageStream::post_current_slot() {
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
  credits_.spend();  // its credit is spent now
  if (pending_ >= post_batch_) flush_sends();
}

// Posts the SENDs filled so far as one chain: one doorbell (a system call on Soft-RoCE, whose
// kernel then makes all their packets in one go) instead of one per SEND. A message's SENDs go out
// in chains of half the send slots (the other half is filled meanwhile), its end at once, and
// whatever is filled before any wait (docs/rc-channel.md has the lab figures).
void RcMessageStream::flush_sends() {
  if (pending_ == 0) return;
  for (unsigned i = 0; i + 1 < pending_; ++i) pend_wr_[i].next = &pend_wr_[i + 1];
  pend_wr_[pending_ - 1].next = nullptr;
  connection_.post(pend_wr_.data(), "a SEND");
  connection_.add_sends(pending_);
  pending_ = 0;
}

void RcMessageStream::wait_for_send_room() {
  connection_.reap_sends();
  connection_.throw_if_failed();
  if (!free_send_slots_.empty() && credits_.available() > 0) return;
  flush_sends();  // what we filled must be on its way before we wait for it
  if (credits_.available() == 0) ++credit_waits_;
  const auto deadline = std::chrono::steady_clock::now() + connection_.io_timeout();
  Backoff backoff;
  for (;;) {
    // Keep our own receive side moving, so a peer that is itself blocked sending to us can go on
    // and reach the point where it reads (and returns our credit).
    if (credits_.available() == 0) spill_receives();
    connection_.reap_sends();
    if (!free_send_slots_.empty() && credits_.available() > 0) return;
    connection_.check_cm_events();
    connection_.throw_if_failed();
    connection_.check_acks();  // no free slot: SENDs in flight, which the peer's device must acknowledge
    if (std::chrono::steady_clock::now() >= deadline && credits_.available() == 0)
      throw Error(ErrorKind::timeout, "RC peer " + connection_.peer_address() + " consumed none of our messages for " +
                                          format_timeout(connection_.io_timeout()) +
                                          " — not reading, or the link is down?");
    backoff.pause();
  }
}

// ---- receive -------------------------------------------------------------------------------

void RcMessageStream::repost(std::uint32_t slot) {
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(recv_slot(slot)), std::uint32_t(slot_bytes_), recv_mr_->lkey};
  ibv_recv_wr wr{};
  wr.wr_id = slot;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad = nullptr;
  if (const int rc = ibv_post_recv(connection_.qp(), &wr, &bad); rc != 0)
    throw_errno("cannot re-post a receive slot for RC peer " + connection_.peer_address() + " (queue pair in error?)",
                rc);
  ++recv_posted_;
  credits_.slot_reposted();
}

void RcMessageStream::poll_receives() {
  for (;;) {
    const std::size_t n = connection_.recv_cq().poll(wc_);
    for (std::size_t i = 0; i < n; ++i) {
      const ibv_wc& wc = wc_[i];
      --recv_posted_;
      if (wc.status != IBV_WC_SUCCESS) {
        // Keep what arrived before: the failure is thrown once those bytes are handed out.
        connection_.note_failed_receive(wc);
        continue;
      }
      ring_[(ring_head_ + ring_size_) % ring_.size()] = Received{std::uint32_t(wc.wr_id), wc.byte_len};
      ++ring_size_;
    }
    if (n < wc_.size()) return;
  }
}

bool RcMessageStream::has_buffered() const {
  return !spill_.empty() || ring_size_ > 0 || (have_current_ && cur_off_ < cur_len_);
}

void RcMessageStream::spill_receives() {
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
  credits_.give_back(true);
  ready_.set_held(has_buffered());  // what was polled here no completion event will announce again
}

// Completions taken off the CQ without waiting leave the completion event they raised unread on
// the armed CQ's channel: poll_fd would wake for messages already handed out (a caller that then
// receives with no wait gets nothing). So when nothing is buffered: read that event, re-arm, and
// look once more.
void RcMessageStream::settle_ready() {
  CompletionQueue& cq = connection_.recv_cq();
  if (!has_buffered() && cq.armed() && cq.consume_event()) {
    poll_receives();
    if (ring_size_ == 0 && cq.arm()) poll_receives();
  }
  ready_.set_held(has_buffered() || connection_.failed());  // a failure taken off the CQ is news too
}

// Makes the next SEND current; false if none arrived within `timeout`.
bool RcMessageStream::next_send(std::chrono::nanoseconds timeout) {
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
    connection_.throw_if_failed();
    if (connection_.recv_cq().arm()) continue;  // armed just now: look once more before sleeping
    connection_.check_cm_events();
    if (connection_.failed()) continue;  // take whatever completed before it, then throw
    connection_.check_acks();            // nothing buffered to hand out: a peer gone silent is the answer
    if (timeout.count() <= 0) return false;
    const auto now = std::chrono::steady_clock::now();
    auto left = deadline - now;
    if (left <= left.zero()) return false;
    // Send completions wake nobody: while some are due, look again when the io timeout would end.
    if (connection_.awaiting_acks())
      left = std::min<std::chrono::steady_clock::duration>(
          left, connection_.ack_deadline() - now + std::chrono::milliseconds(1));
    ready_.set_held(false);
    if (wait_fd(ready_.fd(), POLLIN, left)) connection_.recv_cq().consume_event();
  }
}

void RcMessageStream::release_current() {
  if (!have_current_) return;
  have_current_ = false;
  if (cur_slot_ >= 0) repost(std::uint32_t(cur_slot_));
  cur_slot_ = -1;
}

// Copies (or with dst == nullptr skips) the next n bytes of the stream; each stall is bounded by
// the io timeout. Slots go back to the device the moment they are emptied.
void RcMessageStream::read_stream(std::byte* dst, std::uint64_t n, const char* what) {
  while (n > 0) {
    if (!have_current_) {
      if (!next_send(connection_.io_timeout()))
        throw Error(ErrorKind::timeout, "RC peer " + connection_.peer_address() + " sent nothing for " +
                                            format_timeout(connection_.io_timeout()) + " in the middle of a " + what +
                                            " — link down or peer stuck?");
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

void RcMessageStream::end_of_message() {
  if (have_current_ && cur_off_ < cur_len_)
    throw Error(ErrorKind::protocol,
                "RC peer " + connection_.peer_address() + " sent " + std::to_string(cur_len_ - cur_off_) +
                    " bytes after the end of a message in the same SEND: the stream is out of step");
  release_current();
}

std::optional<Message> RcMessageStream::receive(std::chrono::milliseconds timeout, const FrameLimits& limits) {
  if (!next_send(timeout)) return std::nullopt;
  // The header opens a SEND and lies wholly inside it (a SEND is at least 1 KiB).
  const RcFrameHeader h = [&] {
    try {
      return decode_rc_frame_header(std::span<const std::byte>(cur_data_, cur_len_), limits);
    } catch (const Error& e) {
      throw Error(e.kind(), std::string(e.what()) + " (from " + connection_.peer_address() + ")");
    }
  }();
  cur_off_ = kRcFrameHeaderBytes;
  stats_.bytes_received += kRcFrameHeaderBytes;
  if (cur_off_ == cur_len_) release_current();
  if (body_.size() < h.body_len) body_.resize(h.body_len);  // <= limits.max_body, checked above
  read_stream(body_.data(), h.body_len, "message body");
  if (h.payload_len == 0) end_of_message();
  ++stats_.messages_received;
  return Message{h.type, std::span<const std::byte>(body_.data(), h.body_len), h.payload_len};
}

void RcMessageStream::read_payload(std::span<const MutableBuffer> dst) {
  for (const MutableBuffer& b : dst) read_stream(b.data, b.size, "payload");
  end_of_message();
}

void RcMessageStream::skip_payload(std::uint64_t bytes) {
  read_stream(nullptr, bytes, "payload");
  end_of_message();
}

}  // namespace hymig::verbs
