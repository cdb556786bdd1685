// The destination's RDMA listener: `hymig serve` with RC waits here for sources (librdmacm,
// RDMA_PS_TCP port space, so the port is an ordinary number beside the TCP one).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transport/reliable_channel.hpp"
#include "verbs/rc_reliable_channel.hpp"
#include "verbs/verbs_handles.hpp"

namespace hymig::verbs {

class RcListener {
 public:
  // Binds `local_ip` (numeric, the address of a RoCE port) and `port` (0: ephemeral) and listens.
  // Throws Error{usage} for a bad address, Error{io} naming the address when no RDMA device answers
  // for it or the port is taken.
  static std::unique_ptr<RcListener> open(const std::string& local_ip, std::uint16_t port = 0,
                                          const RcOptions& options = {});

  // "IP:PORT" (IPv6 as [addr]:port) the peer passes to connect_rc.
  std::string endpoint() const { return endpoint_; }
  std::uint16_t port() const { return port_; }

  // Readable when a connection request is waiting (the CM event channel, non-blocking).
  int poll_fd() const { return events_->fd; }

  // The next connection. Requests that are not from a hymig RC endpoint (bad private data) are
  // rejected and waiting goes on. Error{timeout} when none arrives within `timeout`; once one has
  // arrived, finishing its handshake may take up to 10 s more. Error{peer_vanished} if the peer
  // gives up during the handshake.
  std::unique_ptr<ReliableChannel> accept(std::chrono::milliseconds timeout);

 private:
  RcListener() = default;

  RcOptions options_;
  std::string endpoint_;
  std::uint16_t port_ = 0;
  EventChannelPtr events_;  // declared first: destroyed after the id
  CmIdPtr id_;
};

}  // namespace hymig::verbs
