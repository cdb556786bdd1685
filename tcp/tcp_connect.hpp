// The source's side of the control connection: a non-blocking connect with a deadline.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "tcp/tcp_reliable_channel.hpp"

namespace hymig {

// Connects to "HOST:PORT", trying each resolved address until one answers or `timeout` passes.
// Throws Error{usage} for malformed text or an unknown host, Error{peer_vanished} when every
// address refused ("cannot connect to 10.0.0.2:7000: Connection refused — is `hymig serve` running
// there?"), Error{timeout} when none answered in time, Error{io} otherwise (no route, ...).
// With `bind_host`, the connection leaves from that local address (a multi-homed node's fabric
// interface; the lab's policy routing keys on it); addresses of another family are skipped.
std::unique_ptr<TcpReliableChannel> connect_tcp(const std::string& host_port, std::chrono::milliseconds timeout,
                                                const std::string& bind_host = {});

}  // namespace hymig
