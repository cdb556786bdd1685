// ReliableChannel over an RDMA reliable-connected queue pair set up with librdmacm, composed of
// one part per concern: the connection (rc_connection.hpp: CM id, QP, failures, the ACK
// watchdog), the message stream (rc_message_stream.hpp: SENDs through registered slots), the
// credit window (rc_credit_window.hpp: flow control without RNR retries) and the image writer
// (rc_image_writer.hpp: one-sided WRITEs of the final delta). After a failure mid-message every
// call throws again (transport/failure_latch.hpp, as the TCP channel does).
// The reasoning and the lab figures behind each choice: docs/rc-channel.md.
#pragma once

#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "transport/failure_latch.hpp"
#include "transport/frame_limits.hpp"
#include "transport/reliable_channel.hpp"
#include "verbs/rc_connection.hpp"
#include "verbs/rc_credit_window.hpp"
#include "verbs/rc_image_writer.hpp"
#include "verbs/rc_message_stream.hpp"
#include "verbs/rc_wire.hpp"

namespace hymig::verbs {

struct RcOptions {
  unsigned recv_slots = 256;   // receive slots posted (= the peer's credits): 1 MiB at MTU 1024
  unsigned send_slots = 8;     // registered send slots (SENDs in flight)
  std::size_t slot_bytes = 0;  // SEND and receive-slot size; 0: kSendPackets x the port's MTU
  unsigned write_window = 0;   // image WRITEs in flight (RemoteWriter); 0: send_slots
  // The session's devices, shared with its UD lanes; null: a PD of its own.
  std::shared_ptr<DeviceScope> devices;
};

// Packets per SEND when RcOptions::slot_bytes is 0 (docs/rc-channel.md, "Loss").
inline constexpr unsigned kSendPackets = 4;

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
  rdma_cm_id* cm_id() const { return connection_->cm_id(); }
  rdma_event_channel* event_channel() const { return connection_->event_channel(); }

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
  int poll_fd() const override { return stream_->ready_fd(); }
  std::string local_host() const override { return connection_->local_host(); }
  std::string peer_host() const override { return connection_->peer_host(); }
  ReliableStats stats() const override { return stream_->stats(); }
  RemoteWriter* remote_writer() override { return this; }

  // RemoteWriter (rc_image_writer.hpp).
  RemoteImage expose_target(std::span<std::byte> region) override;
  void register_source(std::span<const std::byte> region) override;
  void set_remote_target(const RemoteImage& remote) override;
  void write_remote(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) override;
  void flush_writes() override;
  void wait_writes() override;
  std::uint64_t bytes_written() const override { return writer_->bytes_written(); }

  // Beyond the interface.
  std::string local_address() const { return connection_->local_address(); }  // "IP:PORT"
  std::string peer_address() const { return connection_->peer_address(); }
  ibv_qp* queue_pair() const { return connection_->qp(); }                // for fault-injection tests
  std::uint64_t credit_waits() const { return stream_->credit_waits(); }  // times a send waited for credit
  std::size_t send_bytes() const { return stream_->chunk_bytes(); }       // bytes per SEND (once established)

 private:
  explicit RcReliableChannel(EventChannelPtr events, CmIdPtr id);
  void setup(const RcOptions& options);
  void ensure_connected() const;

  FrameLimits limits_;
  FailureLatch latch_;
  std::uint64_t payload_pending_ = 0;

  // The connection first: the parts' memory registrations go before its PD, and its close() (in
  // our destructor) destroys the QP before them.
  std::unique_ptr<RcConnection> connection_;
  std::unique_ptr<RcCreditWindow> credits_;
  std::unique_ptr<RcMessageStream> stream_;
  std::unique_ptr<RcImageWriter> writer_;
};

}  // namespace hymig::verbs
