#include "verbs/rc_image_writer.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace hymig::verbs {

RcImageWriter::RcImageWriter(RcConnection& connection, unsigned window)
    : connection_(connection), write_window_(window), write_chain_(std::max(1u, window / 2)) {
  write_wr_.resize(write_chain_);
  write_sge_.resize(write_chain_);
}

RemoteImage RcImageWriter::expose_target(std::span<std::byte> image) {
  if (image.empty()) throw Error(ErrorKind::usage, "expose_target: an empty image");
  if (target_mr_) {
    if (target_mr_->addr == image.data() && target_mr_->length == image.size())
      return RemoteImage{reinterpret_cast<std::uint64_t>(image.data()), target_mr_->rkey, image.size()};
    throw std::logic_error("RcReliableChannel::expose_target: a different image is already exposed");
  }
  constexpr int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
  target_mr_ = connection_.domain().register_region(image, access, access);
  if (!target_mr_)
    throw_errno("cannot register the " + std::to_string(image.size()) + "-byte target image for RDMA writes by " +
                connection_.peer_address() + " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
  return RemoteImage{reinterpret_cast<std::uint64_t>(image.data()), target_mr_->rkey, image.size()};
}

void RcImageWriter::register_source(std::span<const std::byte> image) {
  if (image.empty()) throw Error(ErrorKind::usage, "register_source: an empty image");
  if (source_mr_) {
    if (source_base_ == image.data() && source_bytes_ == image.size()) return;
    throw std::logic_error("RcReliableChannel::register_source: a different image is already registered");
  }
  // Local write access makes the kernel pin the pages a private mapping really uses (without it an
  // untouched page would pin the shared zero page, and later writes to it would go elsewhere); a
  // read-only (file) mapping takes no write access, and its page-cache pages are the real ones.
  source_mr_ = connection_.domain().register_region(image, IBV_ACCESS_LOCAL_WRITE, 0);
  if (!source_mr_)
    throw_errno("cannot register the " + std::to_string(image.size()) + "-byte source image for RDMA writes to " +
                connection_.peer_address() + " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
  source_base_ = image.data();
  source_bytes_ = image.size();
}

void RcImageWriter::set_remote_target(const RemoteImage& remote) {
  remote_ = remote;
  have_remote_ = true;
}

void RcImageWriter::check_range(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) const {
  if (!source_mr_ || !have_remote_)
    throw std::logic_error("RcReliableChannel::write_remote before register_source and set_remote_target");
  if (local_offset > source_bytes_ || bytes > source_bytes_ - local_offset)
    throw Error(ErrorKind::usage, "write_remote: bytes " + std::to_string(local_offset) + "+" + std::to_string(bytes) +
                                      " outside the " + std::to_string(source_bytes_) + "-byte source region");
  if (remote_offset > remote_.bytes || bytes > remote_.bytes - remote_offset)
    throw Error(ErrorKind::protocol, "write_remote: bytes " + std::to_string(remote_offset) + "+" +
                                         std::to_string(bytes) + " outside the " + std::to_string(remote_.bytes) +
                                         "-byte window RC peer " + connection_.peer_address() + " exposed");
}

void RcImageWriter::write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) {
  while (bytes > 0) {
    const std::size_t k = std::min(bytes, chunk_bytes_);
    queue_write(local_offset, remote_offset, k);
    local_offset += k;
    remote_offset += k;
    bytes -= k;
  }
}

// Adds a range (at most one SEND's size) to the chain being filled: merged into the previous WRITE
// when it continues it on both sides and stays within a SEND's size, else a new request.
void RcImageWriter::queue_write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) {
  write_bytes_ += bytes;
  const auto addr = reinterpret_cast<std::uintptr_t>(source_base_) + local_offset;
  if (write_pending_ > 0) {
    ibv_sge& last = write_sge_[write_pending_ - 1];
    ibv_send_wr& last_wr = write_wr_[write_pending_ - 1];
    if (last.addr + last.length == addr &&
        last_wr.wr.rdma.remote_addr + last.length == remote_.address + remote_offset &&
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

void RcImageWriter::wait_writes() {
  post_writes();
  connection_.wait_until([&] { return connection_.image_writes_done() == connection_.image_writes_posted(); });
}

// Posts the filled chain with one doorbell; its last request is signalled, so every posted WRITE
// is followed by a completion that covers it.
void RcImageWriter::post_writes() {
  if (write_pending_ == 0) return;
  const std::uint64_t posted = connection_.image_writes_posted();
  for (unsigned i = 0; i < write_pending_; ++i) {
    ibv_send_wr& wr = write_wr_[i];
    wr.wr_id = RcConnection::kImageWrId | (posted + i + 1);
    wr.send_flags = i + 1 == write_pending_ ? IBV_SEND_SIGNALED : 0;
    wr.next = i + 1 < write_pending_ ? &write_wr_[i + 1] : nullptr;
  }
  connection_.post(write_wr_.data(), "an RDMA WRITE");
  connection_.add_image_writes(write_pending_);
  write_pending_ = 0;
}

// Room for one more WRITE in the window (posted and not known complete, plus the chain being
// filled). Waits in user space like the message stream; a peer that stops acknowledging is
// reported by the connection's watchdog within the io timeout.
void RcImageWriter::wait_for_write_room() {
  auto room = [&] {
    return connection_.image_writes_posted() - connection_.image_writes_done() + write_pending_ < write_window_;
  };
  connection_.reap_sends();
  if (room()) return;
  post_writes();  // what we filled must be on its way before we wait for it
  connection_.wait_until(room);
}

}  // namespace hymig::verbs
