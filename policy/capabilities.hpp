// What one side can do, exchanged at connect time as JSON so the plan can be chosen from both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "protocol/wire.hpp"  // kProtocolVersion

namespace hymig {

// Version of the capability exchange and of the protocol it announces.

struct Capabilities {
  unsigned protocol_version = kProtocolVersion;
  bool udp = false;
  bool udp_gso = false;  // UDP_SEGMENT: one send hands the kernel many datagrams
  bool udp_gro = false;  // UDP_GRO: one receive returns many coalesced datagrams
  bool tcp = false;
  bool rdma_ud = false;
  bool rdma_rc = false;
  // The RDMA device is emulated in software (rdma_rxe, siw): RoCE without the offload, slower than
  // the kernel's own UDP/TCP path on the same link.
  bool rdma_software = false;
  unsigned path_mtu = 0;
  std::optional<std::uint64_t> link_speed_mbps;
  unsigned cores = 0;   // CPUs this side may use (0: unknown, a peer older than the field)
  bool zstd = false;    // takes zstd-compressed pages in datagrams
  std::string host;
};

// Probes this host. With a peer, the MTU and speed are those of the route to it; without one,
// those of the largest-MTU up non-loopback link (loopback's when there is none). RDMA UD and RC
// are offered when an active RDMA port has a RoCE v2 GID for `local_host` (the address this side
// of the connection uses; without it, the route's source address to the peer, or any RoCE v2
// address at all when there is no peer). Throws Error.
Capabilities probe_capabilities(const std::optional<std::string>& peer_host,
                                const std::optional<std::string>& local_host = std::nullopt);

nlohmann::json to_json(const Capabilities& caps);

// Validates every field (presence, type, range) and throws Error{protocol} naming the first bad
// one. Unknown fields are ignored so that a newer peer can add some.
Capabilities capabilities_from_json(const nlohmann::json& j);

}  // namespace hymig
