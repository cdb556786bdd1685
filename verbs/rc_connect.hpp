// The source's side of an RC control connection: address and route resolution from a chosen local
// address (the lab's and a cluster's policy routing pick the path by source address), then the
// rdma_cm handshake, all under one deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "transport/reliable_channel.hpp"
#include "verbs/rc_reliable_channel.hpp"

namespace hymig::verbs {

// Connects from `local_ip` (numeric; bound as the source in rdma_resolve_addr) to "IP:PORT" or
// "[v6]:PORT". Throws Error{usage} for malformed text, Error{peer_vanished} when the peer rejects
// ("is `hymig serve` listening there with RDMA?"), Error{timeout} when nothing answers in time,
// Error{io} when no RDMA path exists from `local_ip`, Error{protocol} if the peer is not hymig.
std::unique_ptr<ReliableChannel> connect_rc(const std::string& local_ip, const std::string& endpoint,
                                            std::chrono::milliseconds timeout, const RcOptions& options = {});

}  // namespace hymig::verbs
