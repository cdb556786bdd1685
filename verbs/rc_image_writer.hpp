// One-sided RDMA WRITEs of an RC channel (RemoteWriter): the source registers its image once, the
// destination exposes its own (address, key, length), and the final delta's pages go straight into
// it, merged into WRITEs of at most a SEND's size, posted in chains whose last request is
// signalled, with at most a window of them in flight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "transport/reliable_channel.hpp"
#include "verbs/rc_connection.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class RcImageWriter {
 public:
  // `window`: WRITEs in flight at most; chains of half of it.
  RcImageWriter(RcConnection& connection, unsigned window);
  void established(std::size_t chunk_bytes) { chunk_bytes_ = chunk_bytes; }

  RemoteImage expose_target(std::span<std::byte> region);
  void register_source(std::span<const std::byte> region);
  void set_remote_target(const RemoteImage& remote);
  // Usage errors (outside the source region) and protocol errors (outside the peer's window) are
  // thrown before anything is queued.
  void check_range(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes) const;
  void write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes);
  void post_writes();
  void wait_writes();
  std::uint64_t bytes_written() const { return write_bytes_; }

 private:
  void wait_for_write_room();
  void queue_write(std::uint64_t local_offset, std::uint64_t remote_offset, std::size_t bytes);

  RcConnection& connection_;
  std::size_t chunk_bytes_ = 0;
  const std::byte* source_base_ = nullptr;
  std::size_t source_bytes_ = 0;
  RemoteImage remote_{};
  bool have_remote_ = false;
  std::vector<ibv_send_wr> write_wr_;  // the chain being filled, not yet posted
  std::vector<ibv_sge> write_sge_;
  unsigned write_pending_ = 0;
  unsigned write_window_ = 8;  // WRITEs in flight at most (posted, completion not seen)
  unsigned write_chain_ = 4;   // WRITEs per chain (the last one signalled)
  std::uint64_t write_bytes_ = 0;
  // Memory owned by the caller; registered after the connection's PD and released before it.
  std::shared_ptr<ibv_mr> source_mr_;  // register_source(): the image WRITEs gather from
  std::shared_ptr<ibv_mr> target_mr_;  // expose_target(): the image the peer WRITEs into
};

}  // namespace hymig::verbs
