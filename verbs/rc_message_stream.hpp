// An RC channel's messages as one byte stream each way: a message (verbs/rc_wire.hpp's header,
// body, payload) is copied into registered send slots and cut into SENDs of a few path-MTU
// packets, posted in chains; the receiver reads it back out of its receive slots, which go back to
// the device (and return credit) the moment they are emptied. A peer that sends while we are not
// reading is kept moving by spilling its SENDs into our own memory (bounded), so two peers blocked
// sending to each other both get on.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "transport/frame_limits.hpp"
#include "transport/reliable_channel.hpp"
#include "verbs/rc_connection.hpp"
#include "verbs/rc_credit_window.hpp"
#include "verbs/ready_signal.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class RcMessageStream final : public SendSlotSink {
 public:
  // Registers `send_slots` and `recv_slots` slots of `slot_bytes` in the connection's PD.
  RcMessageStream(RcConnection& connection, RcCreditWindow& credits, unsigned send_slots, unsigned recv_slots,
                  std::size_t slot_bytes);
  // Once the QP exists: every slot posted before the connection is up, so the peer may send the
  // moment it is.
  void post_all_receives();
  void describe(RcConnectInfo& info) const;
  void established(const RcConnectInfo& peer);

  // ---- sending: a whole message is in the slots and posted when it returns.
  void send(std::uint8_t type, std::span<const std::byte> body, std::span<const ConstBuffer> payload);
  std::size_t chunk_bytes() const { return chunk_bytes_; }  // bytes per SEND (once established)
  std::uint64_t credit_waits() const { return credit_waits_; }

  // ---- receiving (the channel's receive / receive_payload / discard_payload).
  std::optional<Message> receive(std::chrono::milliseconds timeout, const FrameLimits& limits);
  void read_payload(std::span<const MutableBuffer> dst);
  void skip_payload(std::uint64_t bytes);
  // poll_fd() readable exactly when a receive would find something.
  void settle_ready();
  int ready_fd() const { return ready_.fd(); }
  std::uint64_t posted_receives() const { return recv_posted_; }  // for the connection's drain
  ReliableStats& stats() { return stats_; }
  const ReliableStats& stats() const { return stats_; }

  void send_slot_free(std::uint32_t slot) override { free_send_slots_.push_back(slot); }

 private:
  struct Received {
    std::uint32_t slot = 0;
    std::uint32_t len = 0;
  };

  // send side
  void append(const std::byte* data, std::size_t n);
  void post_current_slot();
  void flush_sends();
  void wait_for_send_room();
  // receive side
  bool next_send(std::chrono::nanoseconds timeout);
  void poll_receives();
  void spill_receives();
  bool has_buffered() const;
  void read_stream(std::byte* dst, std::uint64_t n, const char* what);
  void end_of_message();
  void release_current();
  void repost(std::uint32_t slot);
  std::byte* send_slot(std::uint32_t i) const { return send_pool_.get() + std::size_t(i) * slot_bytes_; }
  std::byte* recv_slot(std::uint32_t i) const { return recv_pool_.get() + std::size_t(i) * slot_bytes_; }

  RcConnection& connection_;
  RcCreditWindow& credits_;
  ReadySignal ready_;
  ReliableStats stats_;
  std::size_t slot_bytes_ = 0;
  unsigned recv_count_ = 0;
  unsigned send_count_ = 0;
  std::size_t chunk_bytes_ = 0;  // SEND size: min(our slots, the peer's)
  std::uint64_t credit_waits_ = 0;
  AlignedBytes send_pool_;
  AlignedBytes recv_pool_;
  MrPtr send_mr_;
  MrPtr recv_mr_;

  // send side state
  std::vector<std::uint32_t> free_send_slots_;
  std::int64_t current_slot_ = -1;  // slot being filled
  std::size_t current_fill_ = 0;
  std::vector<ibv_send_wr> pend_wr_;  // filled, not yet posted (credit spent)
  std::vector<ibv_sge> pend_sge_;
  unsigned pending_ = 0;
  unsigned post_batch_ = 1;  // SENDs per chain (flush_sends)

  // receive side state: SENDs spilled to our memory (oldest), then polled slots, then the CQ
  std::deque<std::vector<std::byte>> spill_;
  std::size_t spill_bytes_ = 0;
  std::vector<Received> ring_;  // polled, not yet consumed (at most recv_count_)
  std::size_t ring_head_ = 0, ring_size_ = 0;
  bool have_current_ = false;  // the SEND being consumed:
  const std::byte* cur_data_ = nullptr;
  std::size_t cur_len_ = 0, cur_off_ = 0;
  std::int64_t cur_slot_ = -1;  // its receive slot, or -1 when it lives in cur_spill_
  std::vector<std::byte> cur_spill_;
  unsigned recv_posted_ = 0;
  std::vector<std::byte> body_;
  std::array<ibv_wc, 32> wc_{};
};

}  // namespace hymig::verbs
