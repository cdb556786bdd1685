#include "verbs/rc_reliable_channel.hpp"

#include <algorithm>
#include <stdexcept>

#include "verbs/device_discovery.hpp"

namespace hymig::verbs {

RcReliableChannel::RcReliableChannel(EventChannelPtr events, CmIdPtr id)
    : connection_(std::make_unique<RcConnection>(std::move(events), std::move(id))) {
  latch_.set_connection("RC connection to " + connection_->peer_address());
}

std::unique_ptr<RcReliableChannel> RcReliableChannel::prepare(EventChannelPtr events, CmIdPtr id,
                                                              const RcOptions& options) {
  std::unique_ptr<RcReliableChannel> ch(new RcReliableChannel(std::move(events), std::move(id)));
  ch->setup(options);
  return ch;
}

void RcReliableChannel::setup(const RcOptions& options) {
  RcConnection& c = *connection_;
  ibv_context* ctx = c.device();
  ibv_device_attr dev{};
  if (const int rc = ibv_query_device(ctx, &dev); rc != 0)
    throw_errno("cannot query the RDMA device of the " + c.where(), rc);
  const unsigned max_wr = unsigned(std::max(dev.max_qp_wr, 16));
  std::size_t slot_bytes = options.slot_bytes;
  if (slot_bytes == 0) {
    // kSendPackets packets of the port's MTU (the path MTU can only be smaller: then a SEND is a
    // few packets more, still far from rdma_rxe's 64-packet ACK interval).
    ibv_port_attr port{};
    const unsigned mtu = ibv_query_port(ctx, c.cm_id()->port_num ? c.cm_id()->port_num : 1, &port) == 0
                             ? mtu_enum_to_bytes(port.active_mtu)
                             : 0;
    slot_bytes = std::size_t(kSendPackets) * (mtu ? mtu : 1024);
  }
  RcQueueSizes sizes;
  sizes.slot_bytes = std::clamp<std::size_t>(slot_bytes, 1024, 16u << 20);
  sizes.recv_slots = std::clamp(options.recv_slots, 4u, std::min(65535u, max_wr));
  sizes.credit_writes = RcCreditWindow::kMaxCreditWrites;
  sizes.send_slots = std::clamp(options.send_slots, 2u, max_wr - sizes.credit_writes);
  // By default as many WRITEs in flight as SENDs: the same packets in flight (docs/rc-channel.md).
  sizes.image_writes = std::clamp(options.write_window ? options.write_window : sizes.send_slots, 2u, max_wr / 2);

  c.open_pd(options.devices.get());
  credits_ = std::make_unique<RcCreditWindow>(c, sizes.recv_slots);
  stream_ = std::make_unique<RcMessageStream>(c, *credits_, sizes.send_slots, sizes.recv_slots, sizes.slot_bytes);
  writer_ = std::make_unique<RcImageWriter>(c, sizes.image_writes);
  c.open_queues(sizes);
  stream_->post_all_receives();
}

RcConnectInfo RcReliableChannel::local_info() const {
  RcConnectInfo info;
  stream_->describe(info);
  credits_->describe(info);
  return info;
}

void RcReliableChannel::established(const RcConnectInfo& peer) {
  connection_->established();
  credits_->established(peer);
  stream_->established(peer);
  writer_->established(stream_->chunk_bytes());
  latch_.set_connection("RC connection to " + connection_->peer_address());
}

RcReliableChannel::~RcReliableChannel() { connection_->close(stream_ ? stream_->posted_receives() : 0); }

void RcReliableChannel::set_limits(std::size_t max_body, std::uint64_t max_payload) {
  limits_.max_body = max_body;
  limits_.max_payload = max_payload;
}

void RcReliableChannel::set_io_timeout(std::chrono::milliseconds timeout) { connection_->set_io_timeout(timeout); }

void RcReliableChannel::ensure_connected() const {
  connection_->throw_if_failed();
  if (!connection_->connected()) throw std::logic_error("RcReliableChannel used before the connection was established");
}

// ---- messages ------------------------------------------------------------------------------

void RcReliableChannel::send(std::uint8_t type, std::span<const std::byte> body) { send_with_payload(type, body, {}); }

void RcReliableChannel::send_with_payload(std::uint8_t type, std::span<const std::byte> body,
                                          std::span<const ConstBuffer> payload) {
  if (body.size() > 0xFFFFFFFFu)
    throw Error(ErrorKind::usage, "message body of " + std::to_string(body.size()) + " bytes for " +
                                      connection_->peer_address() + " exceeds the frame limit of 4 GiB - 1; split it");
  latch_.guarded([&] {
    ensure_connected();
    writer_->post_writes();
    stream_->send(type, body, payload);
  });
}

std::optional<Message> RcReliableChannel::receive(std::chrono::milliseconds timeout) {
  if (payload_pending_ > 0)
    throw std::logic_error("RcReliableChannel::receive: the previous message's payload (" +
                           std::to_string(payload_pending_) + " bytes) was neither received nor discarded");
  return latch_.guarded([&] {
    auto m = stream_->receive(timeout, limits_);
    if (m) payload_pending_ = m->payload_bytes;
    stream_->settle_ready();
    return m;
  });
}

void RcReliableChannel::receive_payload(std::span<const MutableBuffer> dst) {
  std::uint64_t total = 0;
  for (const MutableBuffer& b : dst) total += b.size;
  if (total != payload_pending_)
    throw std::logic_error("RcReliableChannel::receive_payload: buffers hold " + std::to_string(total) +
                           " bytes but the pending payload is " + std::to_string(payload_pending_));
  if (total == 0) return;
  latch_.guarded([&] {
    stream_->read_payload(dst);
    payload_pending_ = 0;
    stream_->settle_ready();
  });
}

void RcReliableChannel::discard_payload() {
  if (payload_pending_ == 0) return;
  latch_.guarded([&] {
    stream_->skip_payload(payload_pending_);
    payload_pending_ = 0;
    stream_->settle_ready();
  });
}

// ---- one-sided writes (RemoteWriter) ----------------------------------------------------------

RemoteImage RcReliableChannel::expose_target(std::span<std::byte> region) { return writer_->expose_target(region); }

void RcReliableChannel::register_source(std::span<const std::byte> region) { writer_->register_source(region); }

void RcReliableChannel::set_remote_target(const RemoteImage& remote) { writer_->set_remote_target(remote); }

void RcReliableChannel::write_remote(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) {
  writer_->check_range(local_offset, remote_offset, bytes);
  latch_.guarded([&] {
    ensure_connected();
    writer_->write(local_offset, remote_offset, bytes);
  });
}

void RcReliableChannel::flush_writes() {
  latch_.guarded([&] {
    connection_->throw_if_failed();
    writer_->post_writes();
  });
}

void RcReliableChannel::wait_writes() {
  latch_.guarded([&] {
    connection_->throw_if_failed();
    writer_->wait_writes();
  });
}

}  // namespace hymig::verbs
