#include "verbs/ud_datagram_channel.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>

#include "core/error.hpp"

namespace hymig::verbs {

namespace {

constexpr std::size_t kGrhBytes = 40;      // every UD receive starts with the GRH (RoCE v2 IPv4: the
                                           // IPv4 header sits in its last 20 bytes)
constexpr std::size_t kGrhOffset = 24;     // buffer layout: [24 pad][40 GRH][payload at +64, aligned]
constexpr std::size_t kPayloadOffset = kGrhOffset + kGrhBytes;
constexpr std::uint8_t kHopLimit = 64;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

std::uint32_t random_bits(std::uint32_t mask) {
  std::random_device rd;
  std::uint32_t v = 0;
  while (v == 0) v = rd() & mask;
  return v;
}

}  // namespace

std::unique_ptr<UdDatagramChannel> UdDatagramChannel::open(const std::string& local_ip, std::size_t max_datagram) {
  UdChannelOptions options;
  options.max_datagram = max_datagram;
  return open(local_ip, options);
}

std::unique_ptr<UdDatagramChannel> UdDatagramChannel::open(const std::string& local_ip, const UdChannelOptions& options) {
  if (!ip_to_gid(local_ip))
    throw Error(ErrorKind::usage, "UD channel address '" + local_ip + "' is not a numeric IPv4/IPv6 address; "
                                  "give the IP of the RoCE interface (e.g. 10.9.0.1)");
  const std::optional<RoceAddress> port = find_roce_gid(local_ip);
  if (!port)
    throw Error(ErrorKind::io, "no RDMA device has a RoCE v2 GID for " + local_ip +
                                   " (rdma link add rxe0 type rxe netdev IF? `rdma link show` lists the devices)");
  if (!port->active)
    throw Error(ErrorKind::io, "RDMA port " + port->device + "/" + std::to_string(port->port) + " holding " + local_ip +
                                   " is not ACTIVE (is its network interface up? `ibv_devinfo -d " + port->device + "`)");
  std::unique_ptr<UdDatagramChannel> ch(new UdDatagramChannel());
  ch->port_ = *port;
  ch->where_ = port->device + " port " + std::to_string(port->port) + " (" + local_ip + ")";
  ch->setup(options);
  return ch;
}

void UdDatagramChannel::setup(const UdChannelOptions& options) {
  domain_ = domain_of_device(options.devices.get(), port_.device);
  ibv_context* const ctx = domain_->context();
  ibv_device_attr dev{};
  if (const int rc = ibv_query_device(ctx, &dev); rc != 0) throw_errno("cannot query RDMA device " + where_, rc);
  ibv_port_attr pattr{};
  if (const int rc = ibv_query_port(ctx, port_.port, &pattr); rc != 0) throw_errno("cannot query " + where_, rc);
  const unsigned mtu = mtu_enum_to_bytes(pattr.active_mtu);
  if (mtu == 0) throw Error(ErrorKind::io, where_ + " reports no valid active MTU");
  port_.active_mtu = mtu;

  // A UD message is one packet: it must fit the path MTU. The engine chunks pages to this size.
  max_datagram_ = options.max_datagram == 0 ? mtu : std::min<std::size_t>(options.max_datagram, mtu);
  slot_bytes_ = round_up(max_datagram_, 64);
  recv_capacity_ = kGrhBytes + mtu;  // sized by the port, not by max_datagram_: a larger message
                                     // from a peer would otherwise fail the receive WQE
  recv_stride_ = round_up(kPayloadOffset + mtu, 64);

  const unsigned max_wr = unsigned(std::max(dev.max_qp_wr, 16));
  const unsigned max_cqe = unsigned(std::max(dev.max_cqe, 16));
  send_depth_ = std::clamp(options.send_depth, 16u, std::min(max_wr, max_cqe));
  recv_count_ = std::clamp(options.receive_buffers, 16u, std::min(max_wr, max_cqe));
  signal_every_ = std::max(1u, send_depth_ / 4);
  // Headers and unregistered parts need one SGE; a chunked page needs a second. A few more let
  // whole small pages be gathered; beyond that, parts are copied.
  max_sge_ = unsigned(std::clamp(dev.max_sge, 1, 8));

  send_pool_ = allocate_aligned(std::size_t(send_depth_) * slot_bytes_);
  recv_pool_ = allocate_aligned(std::size_t(recv_count_) * recv_stride_);
  send_mr_.reset(
      ibv_reg_mr(domain_->pd(), send_pool_.get(), std::size_t(send_depth_) * slot_bytes_, IBV_ACCESS_LOCAL_WRITE));
  if (!send_mr_) throw_errno("cannot register " + std::to_string(send_depth_) + " UD send slots on " + where_ +
                             " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
  recv_mr_.reset(
      ibv_reg_mr(domain_->pd(), recv_pool_.get(), std::size_t(recv_count_) * recv_stride_, IBV_ACCESS_LOCAL_WRITE));
  if (!recv_mr_) throw_errno("cannot register " + std::to_string(recv_count_) + " UD receive buffers on " + where_ +
                             " (RLIMIT_MEMLOCK too low? `ulimit -l`)");

  send_cq_ = std::make_unique<CompletionQueue>(ctx, int(send_depth_), false, "UD send CQ on " + where_);
  recv_cq_ = std::make_unique<CompletionQueue>(ctx, int(recv_count_), true, "UD receive CQ on " + where_);
  ready_.watch(recv_cq_->fd());

  bring_up_qp();

  send_wrs_.resize(send_depth_);
  send_sges_.resize(std::size_t(send_depth_) * max_sge_);

  // Every receive buffer posted once, in one chained call.
  recv_wrs_.resize(recv_count_);
  recv_sges_.resize(recv_count_);
  lent_.reserve(recv_count_);
  dropped_.reserve(recv_count_);
  std::vector<std::uint32_t> all(recv_count_);
  for (std::uint32_t i = 0; i < recv_count_; ++i) {
    recv_sges_[i] = ibv_sge{reinterpret_cast<std::uintptr_t>(recv_buffer(i) + kGrhOffset), std::uint32_t(recv_capacity_),
                            recv_mr_->lkey};
    recv_wrs_[i] = ibv_recv_wr{};
    recv_wrs_[i].wr_id = i;
    recv_wrs_[i].sg_list = &recv_sges_[i];
    recv_wrs_[i].num_sge = 1;
    all[i] = i;
  }
  repost(all);
}

void UdDatagramChannel::bring_up_qp() {
  ibv_qp_init_attr init{};
  init.send_cq = send_cq_->get();
  init.recv_cq = recv_cq_->get();
  init.qp_type = IBV_QPT_UD;
  init.sq_sig_all = 0;
  init.cap.max_send_wr = send_depth_;
  init.cap.max_recv_wr = recv_count_;
  init.cap.max_send_sge = max_sge_;
  init.cap.max_recv_sge = 1;
  qp_.reset(ibv_create_qp(domain_->pd(), &init));
  if (!qp_) throw_errno("cannot create a UD queue pair on " + where_ + " (send depth " + std::to_string(send_depth_) +
                        ", " + std::to_string(recv_count_) + " receive buffers)");
  max_sge_ = std::min(max_sge_, init.cap.max_send_sge);

  local_.gid = port_.gid;
  local_.qpn = qp_->qp_num;
  local_.qkey = random_bits(0x7FFFFFFF);  // the high bit marks controlled Q_Keys: keep it clear
  local_.mtu = port_.active_mtu;

  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = port_.port;
  a.qkey = local_.qkey;
  if (const int rc = ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_QKEY); rc != 0)
    throw_errno("cannot move the UD queue pair on " + where_ + " to INIT", rc);
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTR;
  if (const int rc = ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE); rc != 0)
    throw_errno("cannot move the UD queue pair on " + where_ + " to RTR", rc);
  a = ibv_qp_attr{};
  a.qp_state = IBV_QPS_RTS;
  a.sq_psn = random_bits(0xFFFFFF);
  if (const int rc = ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE | IBV_QP_SQ_PSN); rc != 0)
    throw_errno("cannot move the UD queue pair on " + where_ + " to RTS", rc);
}

UdDatagramChannel::~UdDatagramChannel() {
  if (!qp_) return;
  // QP to ERR flushes every outstanding WR; take those completions (bounded) so nothing the device
  // still owns is freed under it, then the members go in the declared order.
  ibv_qp_attr a{};
  a.qp_state = IBV_QPS_ERR;
  if (ibv_modify_qp(qp_.get(), &a, IBV_QP_STATE) != 0) return;  // the QP is destroyed anyway
  drain_flushed(*recv_cq_, *send_cq_, recv_posted_ + (sends_posted_ - sends_completed_), wc_);
}

std::string UdDatagramChannel::endpoint_host(std::string_view peer_endpoint) const {
  return gid_to_text(parse_ud_endpoint(peer_endpoint).gid);
}

void UdDatagramChannel::connect(std::string_view peer_endpoint) {
  const UdEndpoint peer = parse_ud_endpoint(peer_endpoint);
  ibv_ah_attr ah{};
  ah.is_global = 1;  // RoCE: every packet carries a GRH (for v2, the IP header made from it)
  std::memcpy(ah.grh.dgid.raw, peer.gid.data(), 16);
  ah.grh.sgid_index = std::uint8_t(port_.gid_index);
  ah.grh.hop_limit = kHopLimit;
  ah.port_num = port_.port;
  AhPtr handle(ibv_create_ah(domain_->pd(), &ah));
  if (!handle)
    throw_errno("cannot make an address handle from " + where_ + " to UD peer " + std::string(peer_endpoint) +
                " (no route or neighbour to " + gid_to_text(peer.gid) + "?)");
  // Sends to the old peer may still be in flight (unsignalled WRs are never seen to finish): keep
  // its AH until the QP goes away instead of freeing it under the device.
  if (ah_) retired_ahs_.push_back(std::move(ah_));
  ah_ = std::move(handle);
  peer_ = peer;
  connected_ = true;
  max_datagram_ = std::min<std::size_t>(max_datagram_, peer.mtu);
}

void UdDatagramChannel::register_memory(std::span<std::byte> region) {
  if (region.empty()) return;
  for (const Region& r : regions_)
    if (r.begin == region.data() && r.size == region.size()) return;
  Region r;
  r.begin = region.data();
  r.size = region.size();
  regions_.push_back(std::move(r));
}

// lkey of a registered region holding [p, p+n), registering it on first use; 0 if none.
std::uint32_t UdDatagramChannel::lkey_for(const std::byte* p, std::size_t n) {
  auto holds = [&](const Region& r) { return p >= r.begin && p + n <= r.begin + r.size; };
  if (last_region_ >= regions_.size() || !holds(regions_[last_region_])) {
    auto it = std::find_if(regions_.begin(), regions_.end(), holds);
    if (it == regions_.end()) return 0;
    last_region_ = std::size_t(it - regions_.begin());
  }
  Region& r = regions_[last_region_];
  if (!r.tried) {
    r.tried = true;
    // LOCAL_WRITE as asked; a read-only mapping (a source image) only allows local read access.
    r.mr = domain_->register_region({r.begin, r.size}, IBV_ACCESS_LOCAL_WRITE, 0);
    if (!r.mr)
      registration_error_ = "cannot register " + std::to_string(r.size) + " bytes of image memory on " + where_ + ": " +
                            std::strerror(errno) + " (raise `ulimit -l`); copying those parts instead";
  }
  return r.mr ? r.mr->lkey : 0;
}

// Fills the SGEs of one datagram into `sge`; returns how many. Part 0 (the engine's header, memory
// it reuses at once) and parts outside registered memory are copied into the WR's slot; the rest is
// gathered by the device. One SGE is always kept for a final copy so the list cannot overflow.
std::size_t UdDatagramChannel::build_sges(const OutDatagram& d, std::size_t slot, ibv_sge* sge) {
  std::byte* const base = send_pool_.get() + slot * slot_bytes_;
  std::size_t used = 0;
  std::size_t ns = 0;
  const std::uint32_t slot_lkey = send_mr_->lkey;
  for (std::size_t k = 0; k < d.parts.size(); ++k) {
    const ConstBuffer& part = d.parts[k];
    if (part.size == 0) continue;
    const bool last = k + 1 == d.parts.size();
    const std::uint32_t lkey = k == 0 ? 0 : lkey_for(part.data, part.size);
    const std::uintptr_t addr = reinterpret_cast<std::uintptr_t>(part.data);
    if (lkey != 0) {
      if (ns > 0 && sge[ns - 1].lkey == lkey && sge[ns - 1].addr + sge[ns - 1].length == addr) {
        sge[ns - 1].length += std::uint32_t(part.size);  // adjacent pages of the image: one SGE
        ++ud_stats_.parts_gathered;
        continue;
      }
      if (ns + (last ? 1 : 2) <= max_sge_) {
        sge[ns++] = ibv_sge{addr, std::uint32_t(part.size), lkey};
        ++ud_stats_.parts_gathered;
        continue;
      }
    }
    if (used + part.size > slot_bytes_)
      throw Error(ErrorKind::usage, "UD datagram parts add up to more than the " + std::to_string(slot_bytes_) +
                                        "-byte send slot on " + where_);
    std::memcpy(base + used, part.data, part.size);
    const std::uintptr_t at = reinterpret_cast<std::uintptr_t>(base + used);
    if (ns > 0 && sge[ns - 1].lkey == slot_lkey && sge[ns - 1].addr + sge[ns - 1].length == at)
      sge[ns - 1].length += std::uint32_t(part.size);
    else
      sge[ns++] = ibv_sge{at, std::uint32_t(part.size), slot_lkey};
    used += part.size;
    ++ud_stats_.parts_copied;
  }
  return ns;
}

void UdDatagramChannel::fail_completion(const ibv_wc& wc, const char* queue) {
  throw Error(ErrorKind::io, std::string("UD ") + queue + " completion failed on " + where_ + ": " +
                                 ibv_wc_status_str(wc.status) + " (status " + std::to_string(wc.status) +
                                 "); the queue pair is in the error state: reopen the channel");
}

void UdDatagramChannel::reap_sends() {
  while (sends_completed_ != sends_posted_) {
    const std::size_t n = send_cq_->poll(wc_);
    for (std::size_t i = 0; i < n; ++i) {
      if (wc_[i].status != IBV_WC_SUCCESS) fail_completion(wc_[i], "send");
      sends_completed_ = std::max<std::uint64_t>(sends_completed_, wc_[i].wr_id + 1);
    }
    if (n < wc_.size()) break;
  }
}

std::size_t UdDatagramChannel::send_batch(std::span<const OutDatagram> datagrams) {
  if (!connected_) throw std::logic_error("UdDatagramChannel::send_batch called before connect()");
  if (datagrams.empty()) return 0;
  reap_sends();
  const std::size_t room = send_depth_ - std::size_t(sends_posted_ - sends_completed_);
  const std::size_t n = std::min(room, datagrams.size());
  if (n == 0) {
    ++stats_.send_would_block;
    return 0;
  }
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const OutDatagram& d = datagrams[i];
    if (d.bytes > max_datagram_)
      throw Error(ErrorKind::usage, "datagram of " + std::to_string(d.bytes) + " bytes exceeds max_datagram() = " +
                                        std::to_string(max_datagram_) + " of the UD channel on " + where_);
    const std::uint64_t seq = sends_posted_ + i;
    const std::size_t slot = std::size_t(seq % send_depth_);
    ibv_sge* sge = &send_sges_[slot * max_sge_];
    ibv_send_wr& wr = send_wrs_[i];
    wr = ibv_send_wr{};
    wr.wr_id = seq;
    wr.sg_list = sge;
    wr.num_sge = int(build_sges(d, slot, sge));
    wr.opcode = IBV_WR_SEND;
    // One completion per signal_every_ WRs frees all slots up to it.
    wr.send_flags = (seq + 1) % signal_every_ == 0 ? IBV_SEND_SIGNALED : 0;
    wr.wr.ud.ah = ah_.get();
    wr.wr.ud.remote_qpn = peer_.qpn;
    wr.wr.ud.remote_qkey = peer_.qkey;
    wr.next = i + 1 < n ? &send_wrs_[i + 1] : nullptr;
    bytes += d.bytes;
  }
  ibv_send_wr* bad = nullptr;
  const int rc = ibv_post_send(qp_.get(), send_wrs_.data(), &bad);
  std::size_t posted = n;
  if (rc != 0) {
    posted = bad ? std::size_t(bad - send_wrs_.data()) : 0;
    if (rc != ENOMEM || posted == 0) {
      if (rc == ENOMEM) {
        ++stats_.send_would_block;
        return 0;
      }
      throw_errno("ibv_post_send on the UD channel " + where_ + " (queue pair in error?)", rc);
    }
    bytes = 0;
    for (std::size_t i = 0; i < posted; ++i) bytes += datagrams[i].bytes;
  }
  sends_posted_ += posted;
  stats_.datagrams_sent += posted;
  stats_.bytes_sent += bytes;
  return posted;
}

void UdDatagramChannel::repost(std::vector<std::uint32_t>& slots) {
  if (slots.empty()) return;
  for (std::size_t i = 0; i < slots.size(); ++i)
    recv_wrs_[slots[i]].next = i + 1 < slots.size() ? &recv_wrs_[slots[i + 1]] : nullptr;
  ibv_recv_wr* bad = nullptr;
  const int rc = ibv_post_recv(qp_.get(), &recv_wrs_[slots[0]], &bad);
  if (rc != 0) {
    // Whatever was posted before `bad` counts; the rest stays with us (the QP is broken anyway).
    std::size_t posted = 0;
    while (posted < slots.size() && &recv_wrs_[slots[posted]] != bad) ++posted;
    recv_posted_ += unsigned(posted);
    throw_errno("ibv_post_recv on the UD channel " + where_ + " (queue pair in error?)", rc);
  }
  recv_posted_ += unsigned(slots.size());
  ran_dry_ = false;
  slots.clear();
}

// RoCE v2 puts the IPv4 header in the last 20 bytes of the GRH area (source address at +12 of it),
// an IPv6 header in all 40 (source GID at +8).
bool UdDatagramChannel::from_peer(const ibv_wc& wc, const std::byte* grh) const {
  if (wc.src_qp != peer_.qpn) return false;
  if (!(wc.wc_flags & IBV_WC_GRH)) return true;
  static constexpr std::uint8_t kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(peer_.gid.data(), kV4Mapped, 12) == 0) return std::memcmp(grh + 20 + 12, peer_.gid.data() + 12, 4) == 0;
  return std::memcmp(grh + 8, peer_.gid.data(), 16) == 0;
}

std::size_t UdDatagramChannel::poll_receives(std::span<InDatagram> out) {
  std::size_t n = 0;
  while (n < out.size()) {
    const std::size_t want = std::min(out.size() - n, wc_.size());
    const std::size_t got = recv_cq_->poll(std::span<ibv_wc>(wc_.data(), want));
    for (std::size_t i = 0; i < got; ++i) {
      const ibv_wc& wc = wc_[i];
      const auto slot = std::uint32_t(wc.wr_id);
      --recv_posted_;
      if (wc.status != IBV_WC_SUCCESS) {
        if (wc.status == IBV_WC_WR_FLUSH_ERR) fail_completion(wc, "receive");
        ++ud_stats_.receive_errors;
        dropped_.push_back(slot);
        continue;
      }
      const std::byte* grh = recv_buffer(slot) + kGrhOffset;
      if (wc.byte_len < kGrhBytes || (connected_ && !from_peer(wc, grh))) {
        ++ud_stats_.foreign_dropped;
        dropped_.push_back(slot);
        continue;
      }
      const std::size_t len = wc.byte_len - kGrhBytes;
      out[n++].bytes = std::span<const std::byte>(recv_buffer(slot) + kPayloadOffset, len);
      lent_.push_back(slot);
      stats_.bytes_received += len;
    }
    if (recv_posted_ == 0 && !ran_dry_) {
      ran_dry_ = true;  // every buffer is with us: the device had nowhere to put what came meanwhile
      ++ud_stats_.receive_queue_ran_dry;
    }
    if (got < want) break;
  }
  stats_.datagrams_received += n;
  return n;
}

std::size_t UdDatagramChannel::receive_batch(std::span<InDatagram> out, std::chrono::microseconds timeout) {
  if (out.empty()) return 0;
  // The previous call's views end here: their buffers go back to the device, with any dropped ones.
  repost(lent_);
  repost(dropped_);
  // No clock read for a call that does not wait (the engine's drain loop): under QEMU TCG the
  // clock is an HPET read behind a system call, tens of thousands of them per migration.
  std::chrono::steady_clock::time_point deadline{};
  if (timeout.count() > 0) deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t n = 0;
  bool drained = false;
  for (;;) {
    n += poll_receives(out.subspan(n));
    if (n == out.size()) break;
    repost(dropped_);
    if (recv_cq_->arm()) continue;  // armed just now: look once more before sleeping
    drained = true;                 // empty and armed: the next completion will wake poll_fd()
    if (n > 0 || timeout.count() <= 0) break;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero() || !recv_cq_->wait(left)) break;
    drained = false;
  }
  // A full batch may have left completions in the CQ that no event will announce.
  ready_.set_held(!drained);
  return n;
}

}  // namespace hymig::verbs
