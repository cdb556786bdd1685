#include "verbs/rc_credit_window.hpp"

#include <algorithm>

namespace hymig::verbs {

RcCreditWindow::RcCreditWindow(RcConnection& connection, unsigned recv_slots)
    : connection_(connection), batch_(std::max(1u, recv_slots / 4)) {
  word_ = allocate_aligned(64);
  word_mr_.reset(ibv_reg_mr(connection_.pd(), word_.get(), 64, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE));
  if (!word_mr_)
    throw_errno("cannot register the credit word of the " + connection_.where() +
                " (RLIMIT_MEMLOCK too low? `ulimit -l`)");
}

void RcCreditWindow::describe(RcConnectInfo& info) const {
  info.credit_rkey = word_mr_->rkey;
  info.credit_addr = reinterpret_cast<std::uint64_t>(word_.get());
}

void RcCreditWindow::established(const RcConnectInfo& peer) {
  peer_ = peer;
  peer_slots_ = peer.recv_slots;
}

std::uint64_t RcCreditWindow::available() const {
  // The peer RDMA-WRITEs this word; read it as the device left it.
  const std::uint64_t returned = __atomic_load_n(reinterpret_cast<const std::uint64_t*>(word_.get()), __ATOMIC_ACQUIRE);
  const std::uint64_t limit = peer_slots_ + returned;
  return limit > spent_ ? limit - spent_ : 0;
}

// Writes our running count of re-posted slots into the peer's credit word: one inline RDMA WRITE,
// no receive WQE consumed on either side.
void RcCreditWindow::give_back(bool force) {
  if (!connection_.connected() || reposted_ == reported_) return;
  if (!force && reposted_ - reported_ < batch_) return;
  connection_.wait_until([&] { return connection_.credit_writes_in_flight() < kMaxCreditWrites; });
  const std::uint64_t value = reposted_;
  ibv_sge sge{reinterpret_cast<std::uintptr_t>(&value), sizeof value, 0};  // inline: copied at post
  ibv_send_wr wr{};
  wr.wr_id = RcConnection::kCreditWrId;
  wr.sg_list = &sge;
  wr.num_sge = 1;
  wr.opcode = IBV_WR_RDMA_WRITE;
  wr.send_flags = IBV_SEND_SIGNALED | IBV_SEND_INLINE;
  wr.wr.rdma.remote_addr = peer_.credit_addr;
  wr.wr.rdma.rkey = peer_.credit_rkey;
  connection_.post(&wr, "a credit write");
  connection_.add_credit_write();
  reported_ = value;
}

}  // namespace hymig::verbs
