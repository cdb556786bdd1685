// The one place that knows which backend makes which channel of a session: the datagram lanes
// and the channel a session moves to, from what the policy chose (the source) or what notify
// names (the destination). The commands and the engine tests build sessions through it, so the
// wiring a test exercises is the product's. (QEMU registers multifd backends in an ops table;
// hymig's kinds are few and fixed, so a switch on the kind does.) A hymig built without rdma-core
// (HYMIG_WITH_VERBS=OFF) refuses the rdma_ud and rdma_rc kinds with Error{usage}, when asked.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "engine/destination_engine.hpp"
#include "engine/source_engine.hpp"
#include "transport/transport_kind.hpp"

namespace hymig::runtime {

// The source's side of one session. Its lanes: each call opens one datagram channel of `kind`
// (udp: a UDP socket, rdma_ud: a UD queue pair) on `local_host`, datagrams of at most
// `datagram_bytes` (0: the channel's own). Its move to RDMA RC: connects to the endpoint the
// destination's ready names. The UD lanes and the RC channel share one context and protection
// domain per RDMA device (verbs/verbs_domain.hpp); two sessions never do.
using ReliableConnector = std::function<std::unique_ptr<ReliableChannel>(const std::string& endpoint)>;
struct SourceBackends {
  DatagramFactory datagrams;
  ReliableConnector connect_rc;
};
SourceBackends source_backends(BulkTransport kind, const std::string& local_host, std::size_t datagram_bytes,
                               std::chrono::milliseconds rc_timeout);

// The destination's side of one session: its lanes, of the kind notify names, on `local_host`,
// and its end of the move to RDMA RC (a listener on `local_host`), sharing devices as above.
struct DestinationBackends {
  ReceiverDatagramFactory datagrams;
  ReliableAcceptorFactory rc_acceptors;
};
DestinationBackends destination_backends(const std::string& local_host);

}  // namespace hymig::runtime
