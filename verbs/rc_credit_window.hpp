// Flow control of an RC channel's message SENDs, by credits instead of RNR retries: the sender may
// have as many SENDs unconsumed as the receiver posted slots; the receiver RDMA-WRITEs its running
// count of re-posted slots into the sender's registered credit word (8 bytes, inline, no receive
// slot used on either side), in batches of a quarter of its slots.
#pragma once

#include <cstdint>

#include "verbs/rc_connection.hpp"
#include "verbs/rc_wire.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class RcCreditWindow {
 public:
  // Credit WRITEs in flight at once.
  static constexpr unsigned kMaxCreditWrites = 4;

  // Registers the credit word in the connection's PD; `recv_slots` sets the batch.
  RcCreditWindow(RcConnection& connection, unsigned recv_slots);

  // What goes into the connect request / reply, and what the peer's said.
  void describe(RcConnectInfo& info) const;
  void established(const RcConnectInfo& peer);

  // The sending side: SENDs we may still post, and one spent.
  std::uint64_t available() const;
  void spend() { ++spent_; }

  // The receiving side: a slot re-posted (the initial posts are the peer's starting credit, not
  // returned credit: start() resets the count after them), and the count written back to the peer
  // once a batch is due or `force`.
  void start() { reposted_ = 0; }
  void slot_reposted() {
    ++reposted_;
    give_back(false);
  }
  void give_back(bool force);

 private:
  RcConnection& connection_;
  AlignedBytes word_;  // the peer writes its re-posted count here
  MrPtr word_mr_;
  RcConnectInfo peer_{};
  unsigned peer_slots_ = 0;
  std::uint64_t spent_ = 0;     // data SENDs ever posted (credits used)
  std::uint64_t reposted_ = 0;  // slots re-posted since the start (the peer's credit)
  std::uint64_t reported_ = 0;  // last value written to the peer
  unsigned batch_ = 1;
};

}  // namespace hymig::verbs
