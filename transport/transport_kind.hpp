// The kinds of channel a session runs over, as the policy picks them and notify names them (their
// spellings live in policy/plan.cpp for the command line and protocol/wire.cpp for the wire).
#pragma once

namespace hymig {

// What carries the page rounds: datagrams over UDP sockets or RoCE UD queue pairs, or the
// reliable channel itself (tcp: no datagrams at all).
enum class BulkTransport { udp, tcp, rdma_ud };
// Where the session ends up after notify/ready: the TCP connection it began on, or RDMA RC.
enum class ReliableTransport { tcp, rdma_rc };

inline bool uses_datagrams(BulkTransport t) { return t != BulkTransport::tcp; }

}  // namespace hymig
